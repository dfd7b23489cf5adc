// The host as ucode.v1.Host describes it (DescribeHost): its CPUs, their revisions, and
// whether the platform offers staging. Reads MSRs: never during a rendezvous.
#ifndef UCODE_VMM_DAEMON_RUNNER_HOST_DESCRIPTION_H_
#define UCODE_VMM_DAEMON_RUNNER_HOST_DESCRIPTION_H_

#include "absl/status/statusor.h"
#include "host/platform/platform.h"
#include "proto/ucode/v1/ucoded.pb.h"

namespace ucode::daemon {

absl::StatusOr<ucode::v1::Host> DescribePlatform(platform::Platform& platform);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_RUNNER_HOST_DESCRIPTION_H_
