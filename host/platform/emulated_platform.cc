#include "host/platform/emulated_platform.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"
#include "host/platform/mailbox_protocol.h"
#include "host/platform/stop_machine.h"

namespace ucode::platform {
namespace {

// A window onto one package's mailbox model.
class EmulatedMmioWindow : public MmioWindow {
 public:
  explicit EmulatedMmioWindow(MailboxModel* model) : model_(model) {}
  uint32_t Read32(uint32_t offset) override { return model_->Read32(offset); }
  void Write32(uint32_t offset, uint32_t value) override { model_->Write32(offset, value); }

 private:
  MailboxModel* model_;  // owned by the platform, which outlives its windows
};

absl::Status GeneralProtection(const char* op, int cpu, uint32_t msr) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s 0x%x on cpu %d: #GP (MSR not present on this emulated host)", op, msr,
                      cpu));
}

// SDM Vol. 3A §10.11.6: the update matches if the signature is equal and the platform bit
// is set, either in the header or in an extended signature.
bool ImageMatches(const microcode::MicrocodeImage& image, const microcode::CpuIdentity& cpu) {
  if (microcode::SignatureMatches(image.header.signature, image.header.platform_flags, cpu)) {
    return true;
  }
  for (const microcode::ExtendedSignature& ext : image.extended_signatures) {
    if (microcode::SignatureMatches(ext.signature, ext.platform_flags, cpu)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmulatedPlatform>> EmulatedPlatform::Create(
    const EmulatedHostConfig& config) {
  RETURN_IF_ERROR(ValidateEmulatedHostConfig(config));
  return std::unique_ptr<EmulatedPlatform>(new EmulatedPlatform(config));
}

EmulatedPlatform::EmulatedPlatform(const EmulatedHostConfig& config) : config_(config) {
  const int per_thread = config.packages * config.cores_per_package;
  for (int cpu = 0; cpu < config.cpu_count(); ++cpu) {
    const int rest = cpu % per_thread;
    topology_.cpus.push_back(LogicalCpu{.id = cpu,
                                        .package = rest / config.cores_per_package,
                                        .core = rest % config.cores_per_package,
                                        .thread = cpu / per_thread,
                                        .online = config.offline_cpus.count(cpu) == 0});
  }
  for (int p = 0; p < config.packages; ++p) {
    auto it = config.mailbox_by_package.find(p);
    mailboxes_.push_back(std::make_unique<MailboxModel>(
        it == config.mailbox_by_package.end() ? config.mailbox : it->second));
  }
  revision_.assign(config.cpu_count(), config.revision);
  staged_cache_.resize(config.packages);
}

absl::StatusOr<Topology> EmulatedPlatform::GetTopology() { return topology_; }

absl::StatusOr<LogicalCpu> EmulatedPlatform::CpuInfo(int cpu) const {
  const LogicalCpu* c = topology_.Find(cpu);
  if (c == nullptr) {
    return absl::NotFoundError(absl::StrFormat("cpu %d does not exist (0..%d)", cpu,
                                               config_.cpu_count() - 1));
  }
  if (!c->online) return absl::FailedPreconditionError(absl::StrFormat("cpu %d is offline", cpu));
  return *c;
}

absl::StatusOr<bool> EmulatedPlatform::HasArchCapabilities(int cpu) {
  RETURN_IF_ERROR(CpuInfo(cpu).status());
  return config_.arch_capabilities;
}

absl::StatusOr<uint64_t> EmulatedPlatform::ReadMsr(int cpu, uint32_t msr) {
  ASSIGN_OR_RETURN(LogicalCpu c, CpuInfo(cpu));
  switch (msr) {
    case kMsrPlatformId:
      return uint64_t{config_.platform_id} << kPlatformIdShift;
    case kMsrUcodeRevision: {
      absl::MutexLock lock(&mu_);
      return uint64_t{revision_[cpu]} << kUcodeRevisionShift;
    }
    case kMsrArchCapabilities:
      if (!config_.arch_capabilities) return GeneralProtection("rdmsr", cpu, msr);
      return config_.staging ? kArchCapMcuEnumeration : 0;
    case kMsrMcuEnumeration:
      if (!config_.staging) return GeneralProtection("rdmsr", cpu, msr);
      return kMcuEnumerationStaging;
    case kMsrMcuStagingMboxAddr:
      if (!config_.staging) return GeneralProtection("rdmsr", cpu, msr);
      return config_.mailbox_base + static_cast<uint64_t>(c.package) * config_.mailbox_stride;
    default:
      return GeneralProtection("rdmsr", cpu, msr);
  }
}

absl::Status EmulatedPlatform::WriteMsr(int cpu, uint32_t msr, uint64_t value) {
  RETURN_IF_ERROR(CpuInfo(cpu).status());
  if (msr == kMsrUcodeRevision) return absl::OkStatus();  // the kernel writes 0 before CPUID(1)
  if (msr == kMsrUcodeTrigger) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "wrmsr 0x79 on cpu %d (value 0x%x): the emulated core cannot read process memory at a "
        "linear address; use ApplyUpdateOnCpu",
        cpu, value));
  }
  return GeneralProtection("wrmsr", cpu, msr);
}

absl::StatusOr<std::unique_ptr<MmioWindow>> EmulatedPlatform::MapMmio(uint64_t phys_addr,
                                                                     size_t size) {
  for (int p = 0; p < config_.packages && config_.staging; ++p) {
    const uint64_t base = config_.mailbox_base + static_cast<uint64_t>(p) * config_.mailbox_stride;
    if (phys_addr == base && size <= kMboxWindowSize) {
      return std::unique_ptr<MmioWindow>(new EmulatedMmioWindow(mailboxes_[p].get()));
    }
  }
  return absl::NotFoundError(absl::StrFormat(
      "map MMIO 0x%x (+0x%x): no emulated device there (only staging mailboxes)", phys_addr, size));
}

absl::StatusOr<microcode::CpuIdentity> EmulatedPlatform::Identity(int cpu) {
  RETURN_IF_ERROR(CpuInfo(cpu).status());
  absl::MutexLock lock(&mu_);
  return microcode::CpuIdentity{.signature = config_.signature,
                                .platform_id = config_.platform_id,
                                .current_revision = revision_[cpu]};
}

bool EmulatedPlatform::IsStaged(int package, absl::Span<const uint8_t> update) {
  const uint64_t generation = mailboxes_[package]->staged_generation();
  {
    absl::MutexLock lock(&mu_);
    const StagedCacheEntry& e = staged_cache_[package];
    if (e.data == update.data() && e.size == update.size() && e.generation == generation) {
      return e.staged;
    }
  }
  const bool staged = mailboxes_[package]->HoldsStagedImage(update);
  absl::MutexLock lock(&mu_);
  staged_cache_[package] = {update.data(), update.size(), generation, staged};
  return staged;
}

absl::StatusOr<absl::Duration> EmulatedPlatform::ApplyUpdateOnCpu(
    int cpu, absl::Span<const uint8_t> update) {
  ASSIGN_OR_RETURN(LogicalCpu c, CpuInfo(cpu));
  if (config_.failing_cpus.count(cpu)) {
    return absl::InternalError(
        absl::StrFormat("wrmsr 0x79 on cpu %d: update rejected by the core (injected fault)", cpu));
  }
  absl::StatusOr<microcode::MicrocodeImage> image = microcode::ParseImage(update);
  if (!image.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("wrmsr 0x79 on cpu %d: %s", cpu, image.status().message()));
  }
  ASSIGN_OR_RETURN(microcode::CpuIdentity id, Identity(cpu));
  if (!ImageMatches(*image, id)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "wrmsr 0x79 on cpu %d: image sig 0x%x pf 0x%x does not match cpu sig 0x%x platform id %u",
        cpu, image->header.signature, image->header.platform_flags, id.signature, id.platform_id));
  }
  if (!microcode::IsNewerRevision(image->revision(), id.current_revision)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("wrmsr 0x79 on cpu %d: revision 0x%x not newer than running 0x%x", cpu,
                        image->revision(), id.current_revision));
  }
  const absl::Duration cost = config_.activation.Cost(update.size(), IsStaged(c.package, update));
  // The core is busy for the modelled time; sleeping (not spinning) keeps the 2-core
  // development machines usable while dozens of emulated cores activate at once.
  absl::SleepFor(cost);
  absl::MutexLock lock(&mu_);
  for (const LogicalCpu& t : topology_.cpus) {
    if (t.package == c.package && t.core == c.core) revision_[t.id] = image->revision();
  }
  return cost;
}

absl::StatusOr<std::unique_ptr<PreparedActivation>> EmulatedPlatform::PrepareActivation(
    const Topology& topology, absl::Span<const uint8_t> update, uint32_t revision,
    const ActivationOptions& options) {
  return EmulatedStopMachine::Prepare(*this, topology, update, revision, options);
}

std::optional<absl::Duration> EmulatedPlatform::PredictActivation(
    absl::Span<const uint8_t> update) {
  absl::Duration worst = absl::ZeroDuration();
  for (int p = 0; p < config_.packages; ++p) {
    worst = std::max(worst, config_.activation.Cost(update.size(), IsStaged(p, update)));
  }
  return worst;
}

}  // namespace ucode::platform
