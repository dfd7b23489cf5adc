// The UpdateRunner ucoded drives, chosen and configured by command-line flags
// (--runner, --platform, --host_config, --host, --root, --vmm_fleet, --libvirt_uri, ...; see
// `ucoded --help`). Kept apart from daemon_main.cc so the flags of the runner live beside
// the code that reads them.
#ifndef UCODE_VMM_DAEMON_RUNNER_RUNNER_FLAGS_H_
#define UCODE_VMM_DAEMON_RUNNER_RUNNER_FLAGS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "vmm/daemon/operations/update_runner.h"

namespace ucode::daemon {

// `journal_path` places the default VMM state directory beside the journal.
absl::StatusOr<std::unique_ptr<UpdateRunner>> MakeRunnerFromFlags(const std::string& journal_path);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_RUNNER_RUNNER_FLAGS_H_
