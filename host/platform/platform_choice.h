// Which Platform a program runs on, as its options name it: the emulated host (the
// default: DemoHostConfig(), then a `key = value` file, then KEY=VALUE overrides) or the
// Linux backend under a root. Shared by `ucodectl` (--platform, --host-config, --host,
// --root) and `ucoded` (--platform, --host_config, --host, --root) so both read the same
// host the same way.
#ifndef UCODE_HOST_PLATFORM_PLATFORM_CHOICE_H_
#define UCODE_HOST_PLATFORM_PLATFORM_CHOICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "host/platform/platform.h"

namespace ucode::platform {

inline constexpr char kEmulatedBackend[] = "emulated";
inline constexpr char kLinuxBackend[] = "linux";

struct PlatformChoice {
  std::string backend = kEmulatedBackend;  // "emulated" or "linux"
  // Emulated: a `key = value` file (emulated_config.h; empty: none), then KEY=VALUE lines
  // applied after it, in order.
  std::string host_config_path;
  std::vector<std::string> host_overrides;
  std::string root = "/";  // linux: root of sysfs, /dev and the firmware directory
};

// The emulated host's files are small text; anything larger is refused unread.
inline constexpr size_t kMaxHostConfigBytes = 1 << 20;

// INVALID_ARGUMENT for an unknown backend or a bad host description (naming the key);
// the backend's own error when it cannot start (e.g. Linux without sysfs under root).
absl::StatusOr<std::unique_ptr<Platform>> MakePlatform(const PlatformChoice& choice);

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_PLATFORM_CHOICE_H_
