#include "host/platform/platform_choice.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"
#include "host/platform/emulated_config.h"
#include "host/platform/emulated_platform.h"
#include "host/platform/linux_platform.h"

namespace ucode::platform {
namespace {

absl::StatusOr<std::unique_ptr<Platform>> MakeEmulated(const PlatformChoice& choice) {
  // From DemoHostConfig(): the file, then the overrides (a later value for a key wins).
  EmulatedHostConfig config = DemoHostConfig();
  if (!choice.host_config_path.empty()) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                     microcode::ReadFileBytes(choice.host_config_path, kMaxHostConfigBytes));
    RETURN_IF_ERROR(ApplyEmulatedHostConfig(
        absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
        absl::StrCat("host config ", choice.host_config_path), config));
  }
  for (const std::string& o : choice.host_overrides) {
    // The caller's own argument: quoting it is safe.
    RETURN_IF_ERROR(ApplyEmulatedHostConfig(o, absl::StrCat("--host '", o, "'"), config));
  }
  RETURN_IF_ERROR(ValidateEmulatedHostConfig(config));
  ASSIGN_OR_RETURN(std::unique_ptr<EmulatedPlatform> p, EmulatedPlatform::Create(config));
  return std::unique_ptr<Platform>(std::move(p));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Platform>> MakePlatform(const PlatformChoice& choice) {
  if (choice.backend == kEmulatedBackend) return MakeEmulated(choice);
  if (choice.backend != kLinuxBackend) {
    return absl::InvalidArgumentError(absl::StrCat("platform '", choice.backend, "': expected ",
                                                   kEmulatedBackend, " or ", kLinuxBackend));
  }
  LinuxPlatformOptions options;
  options.root = choice.root.empty() ? "/" : choice.root;
  ASSIGN_OR_RETURN(std::unique_ptr<LinuxPlatform> p, LinuxPlatform::Create(options));
  return std::unique_ptr<Platform>(std::move(p));
}

}  // namespace ucode::platform
