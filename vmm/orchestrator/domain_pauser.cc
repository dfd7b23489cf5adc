#include "vmm/orchestrator/domain_pauser.h"

#include <iterator>

#include "absl/strings/str_cat.h"

namespace ucode::orchestrator {
namespace {

constexpr const char* kPauseModeNames[] = {"auto", "freeze", "suspend"};  // by PauseMode

}  // namespace

absl::Status ParsePauseMode(absl::string_view text, PauseMode* mode) {
  for (size_t m = 0; m < std::size(kPauseModeNames); ++m) {
    if (text == kPauseModeNames[m]) {
      *mode = static_cast<PauseMode>(m);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--pause ", text, ": expected freeze, suspend or auto"));
}

const char* PauseModeName(PauseMode mode) { return kPauseModeNames[static_cast<int>(mode)]; }

}  // namespace ucode::orchestrator
