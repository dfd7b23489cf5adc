// EmulatedPlatform: a whole Intel host in memory — topology, the microcode MSRs, one
// staging mailbox per package, and cores that check and activate an update on WRMSR 0x79
// (ApplyUpdateOnCpu) with the activation time model. It is the embedded default that the
// demo and rehearsals run on, not only a test double.
//
// CPU numbering follows what Linux shows on Intel servers: first thread 0 of every core,
// package by package, then thread 1 of every core, and so on:
//   cpu = thread * (packages * cores) + package * cores + core.
#ifndef UCODE_HOST_PLATFORM_EMULATED_PLATFORM_H_
#define UCODE_HOST_PLATFORM_EMULATED_PLATFORM_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "host/platform/emulated_config.h"
#include "host/platform/mailbox_model.h"
#include "host/platform/platform.h"

namespace ucode::platform {

class EmulatedPlatform : public Platform {
 public:
  static absl::StatusOr<std::unique_ptr<EmulatedPlatform>> Create(const EmulatedHostConfig& config);

  [[nodiscard]] std::string name() const override { return "emulated"; }
  absl::StatusOr<Topology> GetTopology() override;
  absl::StatusOr<bool> HasArchCapabilities(int cpu) override;
  absl::StatusOr<uint64_t> ReadMsr(int cpu, uint32_t msr) override;
  absl::Status WriteMsr(int cpu, uint32_t msr, uint64_t value) override;
  absl::StatusOr<std::unique_ptr<MmioWindow>> MapMmio(uint64_t phys_addr, size_t size) override;
  absl::StatusOr<microcode::CpuIdentity> Identity(int cpu) override;
  // The stop_machine rendezvous (stop_machine.h), whose primaries call ApplyUpdateOnCpu.
  absl::StatusOr<std::unique_ptr<PreparedActivation>> PrepareActivation(
      const Topology& topology, absl::Span<const uint8_t> update, uint32_t revision,
      const ActivationOptions& options) override;
  // WRMSR 0x79 with the linear address of `update`, executed on `cpu` (a core's primary
  // thread, from inside the rendezvous). The core checks the update, spends the modelled
  // activation time, and on success every thread of the core reports the new revision.
  // Returns the modelled activation time spent.
  absl::StatusOr<absl::Duration> ApplyUpdateOnCpu(int cpu, absl::Span<const uint8_t> update);

  [[nodiscard]] std::string ActivationModel() const override {
    return config_.activation.Describe();
  }
  // The model's cost on the slowest package (staged or not, as its mailbox holds `update`).
  [[nodiscard]] std::optional<absl::Duration> PredictActivation(
      absl::Span<const uint8_t> update) override;

  [[nodiscard]] const EmulatedHostConfig& config() const { return config_; }
  MailboxModel& mailbox(int package) { return *mailboxes_[package]; }
  // True if `package`'s mailbox holds exactly `update` (cached per buffer and generation).
  bool IsStaged(int package, absl::Span<const uint8_t> update);

 private:
  explicit EmulatedPlatform(const EmulatedHostConfig& config);
  absl::StatusOr<LogicalCpu> CpuInfo(int cpu) const;

  const EmulatedHostConfig config_;
  Topology topology_;
  std::vector<std::unique_ptr<MailboxModel>> mailboxes_;

  struct StagedCacheEntry {
    const uint8_t* data = nullptr;
    size_t size = 0;
    uint64_t generation = ~0ull;
    bool staged = false;
  };
  absl::Mutex mu_;
  std::vector<uint32_t> revision_ ABSL_GUARDED_BY(mu_);  // per CPU
  std::vector<StagedCacheEntry> staged_cache_ ABSL_GUARDED_BY(mu_);  // per package
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_EMULATED_PLATFORM_H_
