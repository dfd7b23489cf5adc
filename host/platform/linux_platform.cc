#include "host/platform/linux_platform.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "host/base/read_file.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"

namespace ucode::platform {
namespace {

constexpr char kCpuDir[] = "sys/devices/system/cpu";

absl::StatusOr<std::string> ReadText(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return std::string(absl::StripAsciiWhitespace(text));
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

// CPUID(1) on `cpu` through the cpuid module: a read at offset 1 runs leaf 1 there.
absl::Status DefaultCpuidLeaf1(const std::string& root, int cpu) {
  const std::string path = absl::StrCat(root, "dev/cpu/", cpu, "/cpuid");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return absl::OkStatus();  // no cpuid module: the MSR keeps its last loaded value
  uint32_t regs[4];
  if (pread(fd.get(), regs, sizeof(regs), 1) != sizeof(regs)) {
    return ErrnoStatus(errno, absl::StrFormat("cpuid leaf 1 on cpu %d", cpu));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadSysfsText(const std::string& path) { return ReadText(path); }

absl::StatusOr<std::unique_ptr<LinuxPlatform>> LinuxPlatform::Create(LinuxPlatformOptions options) {
  if (options.root.empty()) options.root = "/";
  if (options.root.back() != '/') options.root += '/';
  if (!options.write_reload) options.write_reload = DefaultWriteReload;
  if (!options.cpuid_leaf1) {
    options.cpuid_leaf1 = [root = options.root](int cpu) { return DefaultCpuidLeaf1(root, cpu); };
  }
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

absl::StatusOr<std::map<std::string, std::string>> LinuxPlatform::CpuinfoBlock(int cpu) const {
  // One read per call: /proc/cpuinfo is large and slow to produce on big hosts.
  ASSIGN_OR_RETURN(std::string cpuinfo, ReadText(Path("proc/cpuinfo")));
  std::map<std::string, std::string> block;
  int current = -1;
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    const absl::string_view k = absl::StripAsciiWhitespace(kv[0]);
    const absl::string_view v = absl::StripAsciiWhitespace(kv[1]);
    if (k == "processor" && !absl::SimpleAtoi(v, &current)) current = -1;
    if (current == cpu) block.emplace(std::string(k), std::string(v));
  }
  if (block.empty()) {
    return absl::NotFoundError(absl::StrFormat("%s: no block for cpu %d (offline?)",
                                               Path("proc/cpuinfo"), cpu));
  }
  return block;
}

absl::StatusOr<uint32_t> LinuxPlatform::Signature(int cpu) const {
  ASSIGN_OR_RETURN(auto block, CpuinfoBlock(cpu));
  int family = -1, model = -1, stepping = -1;
  for (auto [key, out] : {std::pair<const char*, int*>{"cpu family", &family},
                          {"model", &model},
                          {"stepping", &stepping}}) {
    auto it = block.find(key);
    const std::string text = it == block.end() ? "" : it->second;
    if (!absl::SimpleAtoi(text, out) || *out < 0 || *out > 0xff + 0xf) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: cpu %d %s '%s' unreadable",
                                                        Path("proc/cpuinfo"), cpu, key, text));
    }
  }
  // CPUID(1).EAX layout (SDM Vol. 2A, CPUID): stepping 3:0, model 7:4, family 11:8,
  // extended model 19:16, extended family 27:20 (family 0xF + ext).
  const uint32_t base_family = family >= 0xF ? 0xF : family;
  const uint32_t ext_family = family >= 0xF ? family - 0xF : 0;
  return (ext_family << 20) | ((model >> 4) << 16) | (base_family << 8) | ((model & 0xF) << 4) |
         stepping;
}

absl::StatusOr<bool> LinuxPlatform::HasArchCapabilities(int cpu) {
  // The kernel names CPUID.7.0:EDX[29] "arch_capabilities" in the flags line.
  ASSIGN_OR_RETURN(auto block, CpuinfoBlock(cpu));
  for (absl::string_view flag : absl::StrSplit(block["flags"], ' ', absl::SkipEmpty())) {
    if (flag == "arch_capabilities") return true;
  }
  return false;
}

absl::StatusOr<std::optional<uint32_t>> LinuxPlatform::RevisionFromMsr(int cpu) {
  const std::string msr = Path(absl::StrCat("dev/cpu/", cpu, "/msr"));
  if (access(msr.c_str(), F_OK) != 0) return std::optional<uint32_t>();
  // SDM Vol. 3A §10.11.7: write 0 to MSR 0x8B, execute CPUID(1), read MSR 0x8B (the
  // kernel's intel_get_microcode_revision()). The msr module taints the kernel for a write
  // to an MSR it does not know unless msr.allow_writes=on (arch/x86/kernel/msr.c,
  // filter_write(); kernels before 5.9 have no filter and no parameter), so otherwise the
  // write is skipped, as it is when lockdown refuses it: the CPUID alone reloads the value
  // on current CPUs, and the cross-check with sysfs catches a stale one.
  absl::StatusOr<std::string> writes = ReadText(Path("sys/module/msr/parameters/allow_writes"));
  if (!writes.ok() || *writes == "on") WriteMsr(cpu, kMsrUcodeRevision, 0).IgnoreError();
  RETURN_IF_ERROR(options_.cpuid_leaf1(cpu));
  ASSIGN_OR_RETURN(uint64_t value, ReadMsr(cpu, kMsrUcodeRevision));
  return std::optional<uint32_t>(static_cast<uint32_t>(value >> kUcodeRevisionShift));
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
  ASSIGN_OR_RETURN(std::optional<uint32_t> msr_revision, RevisionFromMsr(cpu));
  if (msr_revision && *msr_revision != id.current_revision) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cpu %d: MSR 0x8B reports revision 0x%x but the kernel's %sversion says 0x%x (microcode "
        "loaded behind the kernel's back?)",
        cpu, *msr_revision, dir, id.current_revision));
  }
  return id;
}

std::string LinuxPlatform::KernelRelease() {
  absl::StatusOr<std::string> release = ReadText(Path("proc/sys/kernel/osrelease"));
  return release.ok() ? *release : "";
}

std::optional<absl::Duration> LinuxPlatform::PredictActivation(absl::Span<const uint8_t>) {
  absl::MutexLock lock(&mu_);
  return longest_reload_;
}

void LinuxPlatform::NoteReloadTime(absl::Duration elapsed) {
  absl::MutexLock lock(&mu_);
  longest_reload_ = std::max(longest_reload_.value_or(absl::ZeroDuration()), elapsed);
}

}  // namespace ucode::platform
