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
  // One text, file first: ParseEmulatedHostConfig starts from DemoHostConfig() and a later
  // line for the same key wins, so overrides beat the file.
  std::string text;
  if (!choice.host_config_path.empty()) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                     microcode::ReadFileBytes(choice.host_config_path, kMaxHostConfigBytes));
    text.assign(bytes.begin(), bytes.end());
    text += "\n";
  }
  text += absl::StrJoin(choice.host_overrides, "\n");
  ASSIGN_OR_RETURN(EmulatedHostConfig config, ParseEmulatedHostConfig(text));
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
