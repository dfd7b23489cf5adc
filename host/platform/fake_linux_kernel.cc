#include "host/platform/fake_linux_kernel.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"
#include "host/platform/linux_firmware.h"

namespace ucode::platform {
namespace {

namespace fs = std::filesystem;

int64_t MonotonicMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

absl::Status WriteText(const std::string& path, const std::string& text, bool append = false) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC),
                   0644));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", path));
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoStatus(errno, absl::StrCat("write ", path));
  }
  return absl::OkStatus();
}

absl::Status PutMsr(const std::string& path, uint32_t msr, uint64_t value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", path));
  if (pwrite(fd.get(), &value, sizeof(value), msr) != sizeof(value)) {
    return ErrnoStatus(errno, absl::StrCat("pwrite ", path));
  }
  return absl::OkStatus();
}

uint64_t GetMsr(const std::string& path, uint32_t msr) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  uint64_t value = 0;
  if (!fd || pread(fd.get(), &value, sizeof(value), msr) != sizeof(value)) return 0;
  return value;
}

// Sleeps `per_mb` scaled to `bytes`.
void Spend(absl::Duration per_mb, size_t bytes) {
  if (per_mb > absl::ZeroDuration()) {
    absl::SleepFor(per_mb * (static_cast<double>(bytes) / (1024.0 * 1024.0)));
  }
}

}  // namespace

FakeLinuxKernel::FakeLinuxKernel(std::string root, const FakeKernelConfig& config)
    : config_(config), root_(std::move(root)) {
  if (root_.empty() || root_.back() != '/') root_ += '/';
  revision_.assign(cpu_count(), config.revision);
}

absl::StatusOr<std::unique_ptr<FakeLinuxKernel>> FakeLinuxKernel::Create(
    const std::string& root, const FakeKernelConfig& config) {
  std::unique_ptr<FakeLinuxKernel> k(new FakeLinuxKernel(root, config));
  RETURN_IF_ERROR(k->BuildTree());
  return k;
}

absl::Status FakeLinuxKernel::BuildTree() {
  const FakeKernelConfig& c = config_;
  const std::string cpu_dir = root_ + "sys/devices/system/cpu/";
  RETURN_IF_ERROR(WriteText(cpu_dir + "present", absl::StrCat("0-", cpu_count() - 1, "\n")));
  if (c.late_loading) RETURN_IF_ERROR(WriteText(cpu_dir + "microcode/reload", ""));
  uint32_t family = (c.signature >> 8) & 0xf;
  if (family == 0xf) family += (c.signature >> 20) & 0xff;
  uint32_t model = (c.signature >> 4) & 0xf;
  if (family >= 6) model += ((c.signature >> 16) & 0xf) << 4;
  std::string cpuinfo;
  for (int id = 0; id < cpu_count(); ++id) {
    const std::string dir = absl::StrCat(cpu_dir, "cpu", id, "/");
    const int core = id % c.cores;
    const bool online = c.offline.count(id) == 0;
    if (id != 0) RETURN_IF_ERROR(WriteText(dir + "online", online ? "1\n" : "0\n"));
    if (!online) continue;  // an offline CPU loses its topology and microcode directories
    std::vector<std::string> siblings;
    for (int t = 0; t < c.threads; ++t) siblings.push_back(absl::StrCat(t * c.cores + core));
    RETURN_IF_ERROR(WriteText(dir + "topology/physical_package_id", "0\n"));
    RETURN_IF_ERROR(WriteText(dir + "topology/core_id", absl::StrCat(core, "\n")));
    RETURN_IF_ERROR(WriteText(dir + "topology/thread_siblings_list",
                              absl::StrCat(absl::StrJoin(siblings, ","), "\n")));
    RETURN_IF_ERROR(WriteText(dir + "microcode/version", absl::StrFormat("0x%x\n", c.revision)));
    RETURN_IF_ERROR(WriteText(dir + "microcode/processor_flags",
                              absl::StrFormat("0x%x\n", 1u << c.platform_id)));
    absl::StrAppendFormat(&cpuinfo,
                          "processor\t: %d\nvendor_id\t: GenuineIntel\ncpu family\t: %d\n"
                          "model\t\t: %d\nstepping\t: %d\nmicrocode\t: 0x%x\n"
                          "flags\t\t: fpu msr%s\n\n",
                          id, family, model, c.signature & 0xf, c.revision,
                          c.arch_capabilities ? " arch_capabilities" : "");
    if (c.msr_device) {
      const std::string msr = absl::StrCat(root_, "dev/cpu/", id, "/msr");
      RETURN_IF_ERROR(WriteText(absl::StrCat(root_, "dev/cpu/", id, "/cpuid"), ""));
      RETURN_IF_ERROR(PutMsr(msr, kMsrUcodeRevision, uint64_t{c.revision} << kUcodeRevisionShift));
      RETURN_IF_ERROR(
          PutMsr(msr, kMsrArchCapabilities, c.cpu_staging ? kArchCapMcuEnumeration : 0));
      RETURN_IF_ERROR(PutMsr(msr, kMsrMcuEnumeration, c.cpu_staging ? kMcuEnumerationStaging : 0));
      RETURN_IF_ERROR(PutMsr(msr, kMsrMcuStagingMboxAddr, c.cpu_staging ? 0xfd000000 : 0));
    }
  }
  RETURN_IF_ERROR(WriteText(root_ + "proc/cpuinfo", cpuinfo));
  RETURN_IF_ERROR(WriteText(root_ + "proc/sys/kernel/osrelease", c.release + "\n"));
  RETURN_IF_ERROR(WriteText(root_ + "sys/module/firmware_class/parameters/path",
                            c.firmware_class_path + "\n"));
  RETURN_IF_ERROR(
      WriteText(root_ + "sys/module/msr/parameters/allow_writes", c.msr_allow_writes + "\n"));
  RETURN_IF_ERROR(WriteText(root_ + "dev/kmsg", "6,1,1,-;microcode: an old line\n"));
  std::error_code ec;
  fs::create_directories(root_ + "lib/firmware", ec);
  return absl::OkStatus();
}

LinuxPlatformOptions FakeLinuxKernel::PlatformOptions() {
  LinuxPlatformOptions options;
  options.root = root_;
  options.write_reload = [this](const std::string& path) {
    if (access(path.c_str(), F_OK) != 0) return ENOENT;  // open(2) of a missing attribute
    return Reload();
  };
  options.cpuid_leaf1 = [this](int cpu) { return CpuidLeaf1(cpu); };
  return options;
}

bool FakeLinuxKernel::KernelStages() const {
  return config_.cpu_staging && config_.arch_capabilities && KernelReleaseAtLeast(config_.release, 6, 19);
}

void FakeLinuxKernel::Log(const std::string& line) {
  int seq;
  {
    absl::MutexLock lock(&mu_);
    seq = ++kmsg_seq_;
  }
  WriteText(root_ + "dev/kmsg",
            absl::StrFormat("6,%d,%d,-;microcode: %s\n", seq, MonotonicMicros(), line),
            /*append=*/true)
      .IgnoreError();
}

void FakeLinuxKernel::SetRevision(int cpu, uint32_t revision) {
  revision_[cpu] = revision;
  const std::string dir = absl::StrCat(root_, "sys/devices/system/cpu/cpu", cpu, "/microcode/");
  if (config_.offline.count(cpu) == 0) {
    WriteText(dir + "version", absl::StrFormat("0x%x\n", revision)).IgnoreError();
  }
  if (config_.msr_device) {
    PutMsr(absl::StrCat(root_, "dev/cpu/", cpu, "/msr"), kMsrUcodeRevision,
           uint64_t{revision} << kUcodeRevisionShift)
        .IgnoreError();
  }
}

int FakeLinuxKernel::Reload() {
  // setup_cpus(): every primary thread online, else -EBUSY.
  for (int cpu : config_.offline) {
    if (cpu < config_.cores) return EBUSY;
  }
  // request_microcode_fw(): the CPU's own family-model-stepping, the loader's search order.
  const std::string name =
      absl::StrCat("intel-ucode/", microcode::FirmwareFileName(config_.signature));
  const std::vector<std::string> found = FindFirmware(
      root_, FirmwareSearchDirs(config_.firmware_class_path, config_.release), name);
  {
    absl::MutexLock lock(&mu_);
    last_firmware_path_ = found.empty() ? "" : found.front();
    last_loaded_revision_ = 0;
  }
  if (found.empty()) return ENOENT;
  absl::StatusOr<std::vector<uint8_t>> file = microcode::ReadFileBytes(found.front());
  if (!file.ok()) return ENOENT;
  Spend(config_.timing.firmware_per_mb, file->size());

  // parse_microcode_blobs(): the newest matching image newer than the running revision.
  uint32_t cur_rev;
  {
    absl::MutexLock lock(&mu_);
    cur_rev = revision_[0];
  }
  const uint32_t boot_rev = cur_rev;
  const microcode::CpuIdentity cpu{config_.signature, config_.platform_id, cur_rev};
  const microcode::MicrocodeImage* chosen = nullptr;
  bool chosen_safe = false;
  std::vector<microcode::BundleEntry> entries = microcode::ParseBundle(*file);
  for (const microcode::BundleEntry& e : entries) {
    if (!e.image.ok()) return EBADFD;  // UCODE_ERROR
    const microcode::MicrocodeImage& image = *e.image;
    if (!microcode::IsNewerRevision(image.revision(), cur_rev)) continue;
    bool match = microcode::SignatureMatches(image.header.signature, image.header.platform_flags,
                                             cpu);
    for (const microcode::ExtendedSignature& x : image.extended_signatures) {
      match |= microcode::SignatureMatches(x.signature, x.platform_flags, cpu);
    }
    if (!match) continue;
    const uint32_t min_rev = image.header.min_req_revision;
    const bool safe = min_rev != 0 && boot_rev >= min_rev;  // ucode_validate_minrev()
    if (config_.force_minrev && !safe) continue;
    chosen = &image;
    chosen_safe = safe;
    cur_rev = image.revision();
  }
  if (chosen == nullptr) return ENOENT;  // UCODE_NFOUND

  // load_late_stop_cpus(): staging first (6.19+), outside the rendezvous.
  if (KernelStages()) {
    Spend(config_.timing.staging_per_mb, chosen->total_size());
    Log(absl::StrFormat("Staging of patch revision 0x%x succeeded.", chosen->revision()));
  }
  if (!chosen_safe) Log("Late microcode loading without minimal revision check.");
  const absl::Time held = absl::Now();
  absl::SleepFor(config_.timing.stop_machine_fixed);
  Spend(config_.timing.stop_machine_per_mb, chosen->total_size());
  int updated = 0, siblings = 0;
  {
    absl::MutexLock lock(&mu_);
    for (int id = 0; id < cpu_count(); ++id) {
      SetRevision(id, chosen->revision());
      if (config_.offline.count(id)) continue;
      (id < config_.cores ? updated : siblings) += 1;
    }
    last_loaded_revision_ = chosen->revision();
    last_stop_machine_ = absl::Now() - held;
  }
  Log(absl::StrFormat("load: updated on %d primary CPUs with %d siblings", updated, siblings));
  Log(absl::StrFormat("revision: 0x%x -> 0x%x", boot_rev, chosen->revision()));
  return 0;
}

absl::Status FakeLinuxKernel::CpuidLeaf1(int cpu) {
  const std::string msr = absl::StrCat(root_, "dev/cpu/", cpu, "/msr");
  absl::MutexLock lock(&mu_);
  msr_8b_before_cpuid_.push_back(GetMsr(msr, kMsrUcodeRevision));
  return PutMsr(msr, kMsrUcodeRevision, uint64_t{revision_[cpu]} << kUcodeRevisionShift);
}

std::string FakeLinuxKernel::last_firmware_path() const {
  absl::MutexLock lock(&mu_);
  return last_firmware_path_;
}

uint32_t FakeLinuxKernel::last_loaded_revision() const {
  absl::MutexLock lock(&mu_);
  return last_loaded_revision_;
}

absl::Duration FakeLinuxKernel::last_stop_machine() const {
  absl::MutexLock lock(&mu_);
  return last_stop_machine_;
}

std::vector<uint64_t> FakeLinuxKernel::msr_8b_before_cpuid() const {
  absl::MutexLock lock(&mu_);
  return msr_8b_before_cpuid_;
}

uint32_t FakeLinuxKernel::revision(int cpu) const {
  absl::MutexLock lock(&mu_);
  return revision_[cpu];
}

void FakeLinuxKernel::SetSysfsVersion(int cpu, uint32_t revision) {
  WriteText(absl::StrCat(root_, "sys/devices/system/cpu/cpu", cpu, "/microcode/version"),
            absl::StrFormat("0x%x\n", revision))
      .IgnoreError();
}

absl::Status FakeLinuxKernel::WriteFile(const std::string& path,
                                        absl::Span<const uint8_t> bytes) {
  return WriteText(root_ + path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace ucode::platform
