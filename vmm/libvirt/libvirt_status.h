// Turns libvirt's per-thread "last error" into an absl::Status.
#ifndef UCODE_VMM_LIBVIRT_LIBVIRT_STATUS_H_
#define UCODE_VMM_LIBVIRT_LIBVIRT_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ucode::libvirt {

// Status for the libvirt call that just failed on this thread: "<what>: <libvirt message>
// (libvirt error N)". libvirt keeps the last error per thread (virGetLastError, see
// https://libvirt.org/errors.html), so this must run on the failing call's thread, before
// any other libvirt call. The code follows the error: no such domain → NOT_FOUND,
// operation invalid in this state → FAILED_PRECONDITION, agent silent or timed out →
// DEADLINE_EXCEEDED, agent not connected or unsynced / connection lost → UNAVAILABLE.
absl::Status LastErrorStatus(absl::string_view what);

// Installs a no-op process-wide libvirt error handler: libvirt's default one prints every
// error to stderr, while we return each as a Status. Idempotent.
void SilenceDefaultErrorHandler();

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_LIBVIRT_STATUS_H_
