#include "host/platform/linux_platform.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"

namespace ucode::platform {
namespace {

constexpr char kCpuDir[] = "sys/devices/system/cpu";

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("read ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

absl::StatusOr<int> ReadInt(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadText(path));
  int v;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: '%s' is not a number", path, text));
  }
  return v;
}

// "0-3,8,10-11" (the kernel's cpulist format).
absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> range = absl::StrSplit(part, '-');
    int lo, hi;
    if (range.size() > 2 || !absl::SimpleAtoi(range[0], &lo) ||
        !absl::SimpleAtoi(range.back(), &hi) || hi < lo || hi > 1 << 16) {
      return absl::InvalidArgumentError(absl::StrCat("cpu list '", text, "'"));
    }
    for (int c = lo; c <= hi; ++c) out.push_back(c);
  }
  return out;
}

// An mmap of /dev/mem; Read32/Write32 are volatile accesses (uncached per the O_SYNC open).
class DevMemWindow : public MmioWindow {
 public:
  DevMemWindow(void* map, size_t map_size, size_t delta)
      : map_(map), map_size_(map_size), base_(static_cast<uint8_t*>(map) + delta) {}
  ~DevMemWindow() override { munmap(map_, map_size_); }
  uint32_t Read32(uint32_t offset) override {
    return *reinterpret_cast<volatile uint32_t*>(base_ + offset);
  }
  void Write32(uint32_t offset, uint32_t value) override {
    *reinterpret_cast<volatile uint32_t*>(base_ + offset) = value;
  }

 private:
  void* map_;
  size_t map_size_;
  uint8_t* base_;
};

int DefaultWriteReload(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  if (write(fd.get(), "1", 1) != 1) return errno;
  return 0;
}

absl::Status WriteFileSynced(const std::string& path, absl::Span<const uint8_t> bytes) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", path));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(errno, absl::StrCat("write ", path));
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

// New kernel log records since `fd`'s position, microcode ones only. /dev/kmsg returns one
// record per read ("6,1234,5678,-;microcode: ..."); a fake regular file may hold several
// lines per read, so both are split by line.
std::vector<std::string> ReadKmsg(int fd) {
  std::vector<std::string> lines;
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
    if (size_t semi = line.find(';'); semi != absl::string_view::npos) line = line.substr(semi + 1);
    if (absl::StrContains(line, "microcode")) lines.emplace_back(line);
  }
  return lines;
}

}  // namespace

absl::Status ReloadErrnoStatus(int err) {
  switch (err) {
    case 0:
      return absl::OkStatus();
    case ENOENT:
      return absl::FailedPreconditionError(
          "reload: -ENOENT: the kernel found no newer image it considers safe (not newer, or the "
          "minimal-revision rule without force_minrev)");
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

absl::StatusOr<std::unique_ptr<LinuxPlatform>> LinuxPlatform::Create(LinuxPlatformOptions options) {
  if (!options.write_reload) options.write_reload = DefaultWriteReload;
  if (options.root.empty()) options.root = "/";
  if (options.root.back() != '/') options.root += '/';
  struct stat st;
  const std::string cpu_dir = options.root + kCpuDir;
  if (stat(cpu_dir.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", cpu_dir));
  return std::unique_ptr<LinuxPlatform>(new LinuxPlatform(std::move(options)));
}

std::string LinuxPlatform::Path(const std::string& relative) const {
  return options_.root + relative;
}

absl::StatusOr<Topology> LinuxPlatform::GetTopology() {
  const std::string dir = Path(kCpuDir);
  ASSIGN_OR_RETURN(std::string present_text, ReadText(dir + "/present"));
  ASSIGN_OR_RETURN(std::vector<int> present, ParseCpuList(present_text));
  Topology topology;
  for (int id : present) {
    const std::string cpu = absl::StrCat(dir, "/cpu", id);
    LogicalCpu c{.id = id};
    // cpu0 usually has no `online` file: it cannot be taken offline.
    absl::StatusOr<int> online = ReadInt(cpu + "/online");
    c.online = !online.ok() || *online == 1;
    absl::StatusOr<int> package = ReadInt(cpu + "/topology/physical_package_id");
    absl::StatusOr<int> core = ReadInt(cpu + "/topology/core_id");
    absl::StatusOr<std::string> siblings = ReadText(cpu + "/topology/thread_siblings_list");
    if (package.ok() && core.ok() && siblings.ok()) {
      c.package = *package;
      c.core = *core;
      ASSIGN_OR_RETURN(std::vector<int> list, ParseCpuList(*siblings));
      c.thread = static_cast<int>(std::find(list.begin(), list.end(), id) - list.begin());
    } else {
      // Offline CPUs lose their topology directory; the kernel checks them itself.
      c.package = c.core = -1;
      c.thread = 1;
    }
    topology.cpus.push_back(c);
  }
  return topology;
}

absl::StatusOr<uint64_t> LinuxPlatform::ReadMsr(int cpu, uint32_t msr) {
  const std::string path = Path(absl::StrCat("dev/cpu/", cpu, "/msr"));
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return ErrnoStatus(errno, absl::StrFormat("open %s (is the msr module loaded?)", path));
  }
  uint64_t value;
  if (pread(fd.get(), &value, sizeof(value), msr) != sizeof(value)) {
    return ErrnoStatus(errno, absl::StrFormat("rdmsr 0x%x on cpu %d (EIO means #GP)", msr, cpu));
  }
  return value;
}

absl::Status LinuxPlatform::WriteMsr(int cpu, uint32_t msr, uint64_t value) {
  const std::string path = Path(absl::StrCat("dev/cpu/", cpu, "/msr"));
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrFormat("open %s (is the msr module loaded?)", path));
  if (pwrite(fd.get(), &value, sizeof(value), msr) != sizeof(value)) {
    return ErrnoStatus(errno, absl::StrFormat("wrmsr 0x%x on cpu %d", msr, cpu));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MmioWindow>> LinuxPlatform::MapMmio(uint64_t phys_addr,
                                                                  size_t size) {
  const std::string path = Path("dev/mem");
  UniqueFd fd(open(path.c_str(), O_RDWR | O_SYNC | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    return ErrnoStatus(err, err == EPERM || err == EACCES
                                ? absl::StrCat("open ", path,
                                               ": kernel lockdown or missing CAP_SYS_RAWIO")
                                : absl::StrCat("open ", path));
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t base = phys_addr & ~(page - 1);
  const size_t map_size = static_cast<size_t>((phys_addr + size - base + page - 1) & ~(page - 1));
  void* map = mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(),
                   static_cast<off_t>(base));
  if (map == MAP_FAILED) {
    const int err = errno;
    return ErrnoStatus(err, absl::StrFormat(
                                "mmap %s at 0x%x%s", path, phys_addr,
                                err == EPERM ? " (CONFIG_STRICT_DEVMEM or lockdown forbids it)"
                                             : ""));
  }
  return std::unique_ptr<MmioWindow>(
      new DevMemWindow(map, map_size, static_cast<size_t>(phys_addr - base)));
}

absl::StatusOr<uint32_t> LinuxPlatform::Signature(int cpu) const {
  ASSIGN_OR_RETURN(std::string cpuinfo, ReadText(Path("proc/cpuinfo")));
  int current = -1, family = -1, model = -1, stepping = -1;
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    const absl::string_view key = absl::StripAsciiWhitespace(kv[0]);
    int value;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(kv[1]), &value)) continue;
    if (key == "processor") current = value;
    if (current != cpu) continue;
    if (key == "cpu family") family = value;
    if (key == "model") model = value;
    if (key == "stepping") stepping = value;
  }
  if (family < 0 || model < 0 || stepping < 0) {
    return absl::NotFoundError(absl::StrFormat("%s: no family/model/stepping for cpu %d",
                                               Path("proc/cpuinfo"), cpu));
  }
  // CPUID(1).EAX layout (SDM Vol. 2A, CPUID): stepping 3:0, model 7:4, family 11:8,
  // extended model 19:16, extended family 27:20 (family 0xF + ext).
  const uint32_t base_family = family >= 0xF ? 0xF : family;
  const uint32_t ext_family = family >= 0xF ? family - 0xF : 0;
  return (ext_family << 20) | ((model >> 4) << 16) | (base_family << 8) | ((model & 0xF) << 4) |
         stepping;
}

absl::StatusOr<microcode::CpuIdentity> LinuxPlatform::Identity(int cpu) {
  microcode::CpuIdentity id;
  ASSIGN_OR_RETURN(id.signature, Signature(cpu));
  const std::string dir = Path(absl::StrCat(kCpuDir, "/cpu", cpu, "/microcode/"));
  ASSIGN_OR_RETURN(std::string version, ReadText(dir + "version"));
  ASSIGN_OR_RETURN(std::string flags, ReadText(dir + "processor_flags"));
  uint32_t mask = 0;
  if (!absl::SimpleHexAtoi(version, &id.current_revision) || !absl::SimpleHexAtoi(flags, &mask) ||
      mask == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: version '%s' / processor_flags '%s' unreadable", dir, version, flags));
  }
  id.platform_id = static_cast<uint32_t>(__builtin_ctz(mask));  // the kernel shows 1 << id
  return id;
}

absl::StatusOr<KernelReloadOutcome> LinuxPlatform::KernelReload(absl::Span<const uint8_t> update,
                                                                uint32_t signature) {
  KernelReloadOutcome out;
  const std::string dir = Path("lib/firmware/intel-ucode");
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
  }
  out.installed_path = absl::StrCat(dir, "/", microcode::FirmwareFileName(signature));
  const std::string staging_path = out.installed_path + ".ucode-new";
  const std::string prev_path = out.installed_path + ".ucode-prev";
  RETURN_IF_ERROR(WriteFileSynced(staging_path, update));
  // Keep the current file for rollback (a hard link, so the name never goes missing), then
  // swap the new one in atomically.
  if (access(out.installed_path.c_str(), F_OK) == 0) {
    unlink(prev_path.c_str());
    if (link(out.installed_path.c_str(), prev_path.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("link ", prev_path));
    }
    out.previous_path = prev_path;
  }
  if (rename(staging_path.c_str(), out.installed_path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename to ", out.installed_path));
  }

  UniqueFd kmsg(open(Path("dev/kmsg").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (kmsg) lseek(kmsg.get(), 0, SEEK_END);
  const absl::Time start = absl::Now();
  const int err = options_.write_reload(Path(absl::StrCat(kCpuDir, "/microcode/reload")));
  out.elapsed = absl::Now() - start;
  {
    absl::MutexLock lock(&mu_);
    longest_reload_ = std::max(longest_reload_.value_or(absl::ZeroDuration()), out.elapsed);
  }
  out.kmsg_lines = ReadKmsg(kmsg.get());
  if (err == 0) return out;

  // The kernel did not take it: put the previous file back so the host is as it was.
  if (!out.previous_path.empty()) {
    rename(out.previous_path.c_str(), out.installed_path.c_str());
  } else {
    unlink(out.installed_path.c_str());
  }
  absl::Status s = ReloadErrnoStatus(err);
  std::string log;
  for (const std::string& l : out.kmsg_lines) absl::StrAppend(&log, log.empty() ? "" : " | ", l);
  return absl::Status(s.code(), log.empty() ? s.message() : absl::StrCat(s.message(), "; kernel: ", log));
}

std::optional<absl::Duration> LinuxPlatform::PredictActivation(absl::Span<const uint8_t>) {
  absl::MutexLock lock(&mu_);
  return longest_reload_;
}

}  // namespace ucode::platform
