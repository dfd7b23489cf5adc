#include "vmm/daemon/runner/runner_flags.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "host/platform/platform_choice.h"
#include "vmm/daemon/log.h"
#include "vmm/daemon/operations/fake_runner.h"
#include "vmm/daemon/runner/orchestrator_runner.h"
#include "vmm/inventory/libvirt_guests.h"
#include "vmm/rendezvous/vmm_process.h"

ABSL_FLAG(std::string, runner, "orchestrator",
          "what applies updates: 'orchestrator' (RunUpdate on --platform, over the managed "
          "guests) or 'fake' (a scripted rehearsal of the API that changes nothing)");
ABSL_FLAG(std::string, platform, "emulated",
          "orchestrator: the host backend, 'emulated' (rehearsal host) or 'linux'");
ABSL_FLAG(std::string, host_config, "",
          "--platform=emulated: 'key = value' host file (host/platform/emulated_config.h)");
ABSL_FLAG(std::vector<std::string>, host, {},
          "--platform=emulated: KEY=VALUE overrides after --host_config, comma-separated");
ABSL_FLAG(std::string, root, "/", "--platform=linux: root of sysfs, /dev and firmware");
ABSL_FLAG(std::string, vmm_fleet, "auto",
          "managed ucode-vmm VMs, VMSxVCPUS[:program] (e.g. 4x2, 2x1:halt), 'none', or 'auto' "
          "(4x2 spin on the emulated platform when /dev/kvm and ucode-vmm are available)");
ABSL_FLAG(std::string, libvirt_uri, "",
          "also update these libvirt domains (e.g. qemu:///system; empty: none), parked beside "
          "the ucode-vmm fleet in the same apply");
ABSL_FLAG(std::string, libvirt_domains, "all",
          "--libvirt_uri: NAME,... (names or UUIDs) or 'all' (every running domain at apply "
          "time)");
ABSL_FLAG(std::string, libvirt_pause, "auto",
          "--libvirt_uri: hold domains with the kernel's cgroup 'freeze' (microseconds, no "
          "pause event), libvirt's 'suspend', or 'auto' (freeze where the kernel offers a "
          "freezer, else suspend)");
ABSL_FLAG(std::string, vmm_path, "", "ucode-vmm binary (empty: $UCODE_VMM, runfiles, beside us)");
ABSL_FLAG(int64_t, vmm_deadman_ms, 2000,
          "each managed VMM releases its own vCPUs when parked this long (or when ucoded dies)");
ABSL_FLAG(std::string, vmm_state_dir, "",
          "fleet record and VMM logs (empty: 'vmm' beside --journal)");
ABSL_FLAG(bool, stage, true, "orchestrator: stage through the mailboxes before activation");
ABSL_FLAG(bool, defer_parked_events, true,
          "hand the events of the held window (PARKED, ACTIVATED, GUEST_VIEWS_SET) to watchers "
          "together with RELEASED, so that no watcher wakes while vCPUs are held");
ABSL_FLAG(int64_t, fake_step_delay_ms, 0, "--runner=fake: delay before each step");
ABSL_FLAG(std::string, fake_pause_at, "",
          "--runner=fake: stop at this step (e.g. STEP_ACTIVATED) until killed (tests)");

namespace ucode::daemon {
namespace {

absl::StatusOr<std::unique_ptr<UpdateRunner>> MakeFakeRunner() {
  FakeRunnerOptions o = DefaultFakeRunnerOptions();
  o.step_delay = absl::Milliseconds(absl::GetFlag(FLAGS_fake_step_delay_ms));
  auto runner = std::make_unique<FakeUpdateRunner>(o);
  std::string pause = absl::GetFlag(FLAGS_fake_pause_at);
  if (!pause.empty()) {
    ucode::v1::Step step;
    if (!ucode::v1::Step_Parse(pause, &step)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fake_pause_at: '", pause, "' is not a Step name"));
    }
    runner->PauseAt(step);
  }
  return runner;
}

platform::PlatformChoice PlatformFromFlags() {
  platform::PlatformChoice choice;
  choice.backend = absl::GetFlag(FLAGS_platform);
  choice.host_config_path = absl::GetFlag(FLAGS_host_config);
  choice.host_overrides = absl::GetFlag(FLAGS_host);
  choice.root = absl::GetFlag(FLAGS_root);
  return choice;
}

// Why a managed fleet cannot run here, or "".
std::string FleetUnavailable(const std::string& vmm_path) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return absl::StrCat("/dev/kvm: ", strerror(errno));
  close(fd);
  if (!vmm_path.empty())
    return access(vmm_path.c_str(), X_OK) == 0 ? "" : vmm_path + ": not executable";
  absl::StatusOr<std::string> found = rendezvous::FindVmmBinary();
  return found.ok() ? "" : std::string(found.status().message());
}

absl::StatusOr<std::optional<VmmFleetSpec>> FleetFromFlags(const std::string& platform) {
  const std::string flag = absl::GetFlag(FLAGS_vmm_fleet);
  if (flag == "none") return std::optional<VmmFleetSpec>();
  if (flag == "auto") {
    if (platform != "emulated") return std::optional<VmmFleetSpec>();
    std::string why = FleetUnavailable(absl::GetFlag(FLAGS_vmm_path));
    if (!why.empty()) {
      LogLine("warning",
              {{"message", "no managed ucode-vmm fleet (--vmm_fleet=auto)"}, {"reason", why}});
      return std::optional<VmmFleetSpec>();
    }
    return std::optional<VmmFleetSpec>(VmmFleetSpec{.vms = 4, .vcpus = 2});
  }
  ASSIGN_OR_RETURN(VmmFleetSpec spec, inventory::ParseVmmFleet(flag));
  return std::optional<VmmFleetSpec>(spec);
}

}  // namespace

absl::StatusOr<std::unique_ptr<UpdateRunner>> MakeRunnerFromFlags(const std::string& journal_path) {
  const std::string kind = absl::GetFlag(FLAGS_runner);
  if (kind == "fake") return MakeFakeRunner();
  if (kind != "orchestrator") {
    return absl::InvalidArgumentError(absl::StrCat("--runner: unknown runner '", kind, "'"));
  }
  OrchestratorRunnerOptions o;
  ASSIGN_OR_RETURN(o.platform, platform::MakePlatform(PlatformFromFlags()));
  ASSIGN_OR_RETURN(o.fleet, FleetFromFlags(o.platform->name()));
  o.vmm_path = absl::GetFlag(FLAGS_vmm_path);
  o.deadman = absl::Milliseconds(absl::GetFlag(FLAGS_vmm_deadman_ms));
  o.state_dir = absl::GetFlag(FLAGS_vmm_state_dir);
  if (o.state_dir.empty()) {
    o.state_dir = (std::filesystem::path(journal_path).parent_path() / "vmm").string();
  }
  o.libvirt_uri = absl::GetFlag(FLAGS_libvirt_uri);
  if (o.libvirt_uri.empty() && absl::GetFlag(FLAGS_libvirt_domains) != "all") {
    return absl::InvalidArgumentError("--libvirt_domains needs --libvirt_uri");
  }
  ASSIGN_OR_RETURN(o.libvirt_domains,
                   inventory::ParseLibvirtDomains(absl::GetFlag(FLAGS_libvirt_domains)));
  RETURN_IF_ERROR(
      orchestrator::ParsePauseMode(absl::GetFlag(FLAGS_libvirt_pause), &o.libvirt_pause));
  o.stage = absl::GetFlag(FLAGS_stage);
  o.defer_parked_events = absl::GetFlag(FLAGS_defer_parked_events);
  const std::string platform = o.platform->name();
  const std::string libvirt =
      o.libvirt_uri.empty() ? "none"
                            : absl::StrCat(o.libvirt_uri, " ", absl::GetFlag(FLAGS_libvirt_domains),
                                           " pause=", absl::GetFlag(FLAGS_libvirt_pause));
  const std::string fleet =
      o.fleet ? absl::StrCat(o.fleet->vms, "x", o.fleet->vcpus, ":", o.fleet->program) : "none";
  ASSIGN_OR_RETURN(std::unique_ptr<OrchestratorRunner> runner,
                   OrchestratorRunner::Create(std::move(o)));
  LogLine("runner", {{"runner", "orchestrator"},
                     {"platform", platform},
                     {"vmm_fleet", fleet},
                     {"libvirt", libvirt},
                     {"vmm_logs", runner->vmm_log_dir()}});
  return std::unique_ptr<UpdateRunner>(std::move(runner));
}

}  // namespace ucode::daemon
