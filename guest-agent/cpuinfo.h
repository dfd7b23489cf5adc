// The microcode revision as this guest sees it: the "microcode" field of
// /proc/cpuinfo (arch/x86/kernel/cpu/proc.c prints it as "microcode\t: 0x%x"
// from the revision the kernel read from MSR 0x8B, which KVM lets the VMM set).
#ifndef UCODE_GUEST_AGENT_CPUINFO_H_
#define UCODE_GUEST_AGENT_CPUINFO_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ucode_agent {

struct MicrocodeView {
  uint32_t revision = 0;    // of the first CPU listed
  int cpus = 0;             // CPUs that report a revision
  bool consistent = true;   // every CPU reports the same revision
};

// nullopt if no CPU reports a "microcode" field (non-x86, some hypervisors).
[[nodiscard]] std::optional<MicrocodeView> ParseCpuinfo(std::string_view text);
// Reads at most 4 MiB of `path` and parses it.
[[nodiscard]] std::optional<MicrocodeView> ReadCpuinfo(const std::string& path);

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_CPUINFO_H_
