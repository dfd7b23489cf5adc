#include "vmm/daemon/runner/host_description.h"

#include <unistd.h>

#include <algorithm>

#include "host/base/status_macros.h"

namespace ucode::daemon {

absl::StatusOr<ucode::v1::Host> DescribePlatform(platform::Platform& p) {
  ASSIGN_OR_RETURN(platform::Topology topo, p.GetTopology());
  ucode::v1::Host host;
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  host.set_hostname(name);
  host.set_platform_backend(p.name());
  bool identified = false;
  for (const platform::LogicalCpu& c : topo.cpus) {
    ucode::v1::LogicalCpu* out = host.add_cpus();
    out->set_id(c.id);
    out->set_package(std::max(c.package, 0));
    out->set_core(c.core);
    out->set_thread(c.thread);
    out->set_online(c.online);
    if (!c.online) continue;
    absl::StatusOr<microcode::CpuIdentity> id = p.Identity(c.id);
    if (!id.ok()) continue;
    out->set_revision(id->current_revision);
    if (!identified) {
      identified = true;
      host.set_signature(id->signature);
      host.set_platform_id(id->platform_id);
      absl::StatusOr<uint64_t> arch = p.ReadMsr(c.id, platform::kMsrArchCapabilities);
      absl::StatusOr<uint64_t> mcu = p.ReadMsr(c.id, platform::kMsrMcuEnumeration);
      host.set_staging_supported(arch.ok() && mcu.ok() &&
                                 (*arch & platform::kArchCapMcuEnumeration) != 0 &&
                                 (*mcu & platform::kMcuEnumerationStaging) != 0);
    }
  }
  return host;
}

}  // namespace ucode::daemon
