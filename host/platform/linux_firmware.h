// Where the Linux firmware loader finds intel-ucode/FF-MM-SS, and installing a microcode
// file there so that the kernel reads ours, with rollback.
//
// The loader (drivers/base/firmware_loader/main.c, fw_get_filesystem_firmware()) tries, in
// order, the directories of fw_path[]: firmware_class.path (when set), then
// /lib/firmware/updates/RELEASE, /lib/firmware/updates, /lib/firmware/RELEASE,
// /lib/firmware; the first file of that name wins. Every path here is under a root prefix
// so tests run on a fake tree.
#ifndef UCODE_HOST_PLATFORM_LINUX_FIRMWARE_H_
#define UCODE_HOST_PLATFORM_LINUX_FIRMWARE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ucode::platform {

// The kernel's search directories, as host paths (no root prefix): `param_path` is
// firmware_class.path ("" when unset), `release` the kernel release.
std::vector<std::string> FirmwareSearchDirs(const std::string& param_path,
                                            const std::string& release);

// The files named `name` (e.g. "intel-ucode/06-8f-08") in `dirs` under `root`, in search
// order: the first is the one the kernel reads, the rest are shadowed.
std::vector<std::string> FindFirmware(const std::string& root,
                                      const std::vector<std::string>& dirs,
                                      const std::string& name);

// A microcode file installed for the kernel. The destination is the file the kernel reads
// now (replaced in place, the old one kept as NAME.ucode-prev), or, when no copy exists,
// `new_file_dir` (which must come before every other directory in the search that could
// hold one): either way nothing earlier in the search can shadow it. Written to a fresh O_EXCL|O_NOFOLLOW
// temporary, fsynced, renamed in place, then read back once so the kernel's read comes
// from the page cache. Destroying it without Keep() restores the previous state.
class InstalledFirmware {
 public:
  static absl::StatusOr<std::unique_ptr<InstalledFirmware>> Install(
      const std::string& root, const std::vector<std::string>& dirs, const std::string& name,
      const std::string& new_file_dir, absl::Span<const uint8_t> bytes);
  ~InstalledFirmware();
  InstalledFirmware(const InstalledFirmware&) = delete;
  InstalledFirmware& operator=(const InstalledFirmware&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& previous_path() const { return previous_path_; }
  // Leave the installed file in place (the kernel took it).
  void Keep() { kept_ = true; }
  // Put back what was there (the previous file, or no file); idempotent.
  void Rollback();

 private:
  InstalledFirmware() = default;

  std::string path_;
  std::string previous_path_;  // "" when there was no file
  bool kept_ = false;
  bool rolled_back_ = false;  // also true while nothing has been replaced yet
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_LINUX_FIRMWARE_H_
