#include "vmm/guest/guest_programs.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vmm/guest/guest_blobs.h"

namespace ucode::guest {
namespace {

absl::Span<const uint8_t> Blob(const unsigned char* data, unsigned long size) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), size);
}

std::vector<GuestProgram> All() {
  return {
      {"spin", Blob(k_spin, k_spin_size), true},
      {"cli-spin", Blob(k_cli_spin, k_cli_spin_size), true},
      {"exit-storm", Blob(k_exit_storm, k_exit_storm_size), true},
      {"halt", Blob(k_halt, k_halt_size), false},
  };
}

}  // namespace

absl::StatusOr<GuestProgram> FindGuestProgram(absl::string_view name) {
  for (const GuestProgram& p : All()) {
    if (p.name == name) return p;
  }
  return absl::NotFoundError(absl::StrCat("no guest program '", name, "' (have: ",
                                          absl::StrJoin(GuestProgramNames(), ", "), ")"));
}

std::vector<absl::string_view> GuestProgramNames() {
  std::vector<absl::string_view> names;
  for (const GuestProgram& p : All()) names.push_back(p.name);
  return names;
}

}  // namespace ucode::guest
