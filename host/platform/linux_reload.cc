// LinuxPlatform's late load: install the file where the kernel reads it, then write
// microcode/reload and collect the kernel's verdict (arch/x86/kernel/cpu/microcode/core.c,
// reload_store() -> load_late_locked()).
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"
#include "host/microcode/selection.h"
#include "host/platform/linux_firmware.h"
#include "host/platform/linux_platform.h"

namespace ucode::platform {
namespace {

constexpr char kReload[] = "sys/devices/system/cpu/microcode/reload";
constexpr char kFirmwareClassPath[] = "sys/module/firmware_class/parameters/path";

int64_t MonotonicMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

struct KmsgLine {
  int64_t micros = -1;  // the record's timestamp (CLOCK_MONOTONIC µs), -1 if none
  std::string text;
};

// New kernel log records since `fd`'s position, microcode ones only. /dev/kmsg returns one
// record per read ("6,1234,5678,-;microcode: ..."); a fake regular file may hold several
// lines per read, so both are split by line.
std::vector<KmsgLine> ReadKmsg(int fd) {
  std::vector<KmsgLine> lines;
  if (fd < 0) return lines;
  std::string pending;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) continue;  // a record was overwritten; keep reading
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
  }
  for (absl::string_view line : absl::StrSplit(pending, '\n', absl::SkipEmpty())) {
    KmsgLine out;
    if (size_t semi = line.find(';'); semi != absl::string_view::npos) {
      std::vector<absl::string_view> prefix = absl::StrSplit(line.substr(0, semi), ',');
      if (prefix.size() >= 3 && !absl::SimpleAtoi(prefix[2], &out.micros)) out.micros = -1;
      line = line.substr(semi + 1);
    }
    if (!absl::StrContains(line, "microcode")) continue;
    out.text = std::string(line);
    lines.push_back(std::move(out));
  }
  return lines;
}

// A microcode file installed where the kernel will read it, its page cache warmed, the
// reload not yet written. Destroying it before a successful reload puts back what was
// there: the host is as it was.
class LinuxPreparedReload : public PreparedActivation {
 public:
  LinuxPreparedReload(LinuxPlatform& platform, std::function<int(const std::string&)> write,
                      std::unique_ptr<InstalledFirmware> file, std::string root,
                      std::vector<std::string> dirs, std::string name, absl::Duration prepare,
                      const Topology& topology, uint32_t revision)
      : platform_(platform),
        write_(std::move(write)),
        file_(std::move(file)),
        root_(std::move(root)),
        dirs_(std::move(dirs)),
        name_(std::move(name)),
        prepare_(prepare),
        topology_(topology),
        revision_(revision) {}

  Activation Activate() override;

 private:
  // Writes 1 to microcode/reload and collects the kernel's verdict. On failure the
  // previous file is restored.
  absl::StatusOr<KernelReloadOutcome> Reload();

  LinuxPlatform& platform_;
  std::function<int(const std::string&)> write_;
  std::unique_ptr<InstalledFirmware> file_;
  const std::string root_;
  const std::vector<std::string> dirs_;
  const std::string name_;
  const absl::Duration prepare_;
  const Topology topology_;
  const uint32_t revision_;
};

Activation LinuxPreparedReload::Activate() {
  Activation a{.window_name = kReloadWriteWindow, .prepare = prepare_};
  absl::StatusOr<KernelReloadOutcome> reload = Reload();
  if (reload.ok()) {
    a.activation_window = reload->elapsed;
    a.kernel_log = reload->kmsg_lines;
    a.reload = *std::move(reload);
  } else {
    a.reload_status = reload.status();
  }
  // The kernel did the rendezvous: each CPU's outcome is the revision it now reports.
  for (const LogicalCpu& c : topology_.cpus) {
    CpuResult r{.cpu = c.id};
    if (!c.online) {
      r.outcome = CpuOutcome::kOffline;
    } else if (absl::StatusOr<uint32_t> rev = ReadRevision(platform_, c.id); !rev.ok()) {
      r.detail = std::string(rev.status().message());
    } else {
      r.revision_after = *rev;
      if (!microcode::IsNewerRevision(revision_, *rev)) {
        r.outcome = c.thread == 0 ? CpuOutcome::kUpdated : CpuOutcome::kSibling;
      } else {
        r.detail = absl::StrFormat("revision 0x%x after reload, expected 0x%x", *rev, revision_);
      }
    }
    a.cpus.push_back(r);
  }
  return a;
}

absl::StatusOr<KernelReloadOutcome> LinuxPreparedReload::Reload() {
  KernelReloadOutcome out;
  out.installed_path = file_->path();
  out.previous_path = file_->previous_path();
  UniqueFd kmsg(open(platform_.Path("dev/kmsg").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (kmsg) lseek(kmsg.get(), 0, SEEK_END);
  const int64_t start_us = MonotonicMicros();
  const absl::Time start = absl::Now();
  const int err = write_(platform_.Path(kReload));
  out.elapsed = absl::Now() - start;
  platform_.NoteReloadTime(out.elapsed);
  for (KmsgLine& line : ReadKmsg(kmsg.get())) {
    // intel.c stage_microcode(): "Staging of patch revision 0x%x succeeded."
    if (absl::StrContains(line.text, "Staging of patch revision") && line.micros >= start_us) {
      out.staged_after = absl::Microseconds(line.micros - start_us);
    }
    out.kmsg_lines.push_back(std::move(line.text));
  }
  if (err != 0) {
    // The kernel did not take it: put the previous file back so the host is as it was.
    file_->Rollback();
    absl::Status s = ReloadErrnoStatus(err);
    std::string log;
    for (const std::string& l : out.kmsg_lines) absl::StrAppend(&log, log.empty() ? "" : " | ", l);
    return absl::Status(s.code(), log.empty() ? s.message()
                                              : absl::StrCat(s.message(), "; kernel: ", log));
  }
  file_->Keep();
  std::vector<std::string> found = FindFirmware(root_, dirs_, name_);
  if (!found.empty()) {
    out.kernel_path = found.front();
    out.shadowed.assign(found.begin() + 1, found.end());
  }
  return out;
}

}  // namespace

absl::Status ReloadErrnoStatus(int err) {
  switch (err) {
    case 0:
      return absl::OkStatus();
    case ENOENT:
      // load_late_locked(): UCODE_NFOUND. parse_microcode_blobs() skips images that are not
      // newer, and, only when force_minrev is set, images the minimal-revision rule calls
      // unsafe.
      return absl::FailedPreconditionError(
          "reload: -ENOENT: the kernel found no image to load in the file (none newer than the "
          "running revision, or only ones the minimal-revision rule rejects because the kernel "
          "runs with force_minrev)");
    case EBADFD:
      return absl::FailedPreconditionError(
          "reload: -EBADFD: the kernel rejected the firmware file as malformed (UCODE_ERROR)");
    case EBUSY:
      return absl::FailedPreconditionError(
          "reload: -EBUSY: a CPU is offline; the kernel late-loads only with every primary "
          "thread online");
    case EIO:
      return absl::InternalError(
          "reload: -EIO: some CPUs failed or timed out during the late load (see kernel log)");
    case EINVAL:
      return absl::InvalidArgumentError("reload: -EINVAL: the kernel accepts only '1'");
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(
          "reload: permission denied (root needed; lockdown forbids late loading)");
    default:
      return ErrnoStatus(err, "reload");
  }
}

absl::StatusOr<std::unique_ptr<PreparedActivation>> LinuxPlatform::PrepareActivation(
    const Topology& topology, absl::Span<const uint8_t> update, uint32_t revision,
    const ActivationOptions&) {
  const std::vector<int> primaries = topology.CorePrimaries();
  if (primaries.empty()) return absl::FailedPreconditionError("no online primary thread");
  ASSIGN_OR_RETURN(microcode::CpuIdentity cpu, Identity(primaries.front()));
  const std::string reload = Path(kReload);
  if (access(reload.c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the kernel has late loading disabled: ", reload,
        " does not exist (CONFIG_MICROCODE_LATE_LOADING=n, or no microcode driver); nothing "
        "installed"));
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> param = ReadSysfsText(Path(kFirmwareClassPath));
  const std::string param_path = param.ok() ? *param : "";
  std::vector<std::string> dirs = FirmwareSearchDirs(param_path, KernelRelease());
  // request_microcode_fw(): "intel-ucode/%02x-%02x-%02x" of the CPU's own family, model,
  // stepping, never the image's primary signature.
  std::string name = absl::StrCat("intel-ucode/", microcode::FirmwareFileName(cpu.signature));
  const std::string root = Path("");
  ASSIGN_OR_RETURN(std::unique_ptr<InstalledFirmware> file,
                   InstalledFirmware::Install(root, dirs, name,
                                              param_path.empty() ? "/lib/firmware/updates"
                                                                 : param_path,
                                              update));
  const std::vector<std::string> found = FindFirmware(root, dirs, name);
  if (found.empty() || found.front() != file->path()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "installed ", file->path(), " but the kernel would read ",
        found.empty() ? std::string("nothing") : found.front(), "; rolled back"));
  }
  return std::unique_ptr<PreparedActivation>(new LinuxPreparedReload(
      *this, options_.write_reload, std::move(file), root, std::move(dirs), std::move(name),
      absl::Now() - start, topology, revision));
}

}  // namespace ucode::platform
