// The park marker: proof, held by libvirt, that ucoded suspended a domain for one
// operation. SuspendPauser writes it into the domain's live metadata before
// virDomainSuspend and removes it after virDomainResume; a restarted ucoded resumes a
// paused domain only if the marker is still there and names the interrupted operation.
//
// Why libvirt and not our journal: the journal row recording a release can fail to be
// written (disk full) and the process die before it catches up, leaving "parked" on disk
// for a domain we already resumed and a user may since have paused (`virsh suspend`). The
// marker is gone by then, whatever our disk did.
//
// It is a metadata element (virDomainSetMetadata, VIR_DOMAIN_METADATA_ELEMENT, our own
// namespace URI) on the live definition only (VIR_DOMAIN_AFFECT_LIVE): it never reaches
// the persistent XML, so it does not survive the domain's shutdown, which also ends any
// pause. libvirt's mock driver (test:///default) keeps live metadata too.
//
// Threads: any (libvirt calls on one virDomainPtr are thread-safe).
#ifndef UCODE_VMM_LIBVIRT_PARK_MARKER_H_
#define UCODE_VMM_LIBVIRT_PARK_MARKER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vmm/libvirt/domain.h"

namespace ucode::libvirt {

// The namespace of the element (`virsh metadata DOMAIN URI --live` shows it).
inline constexpr char kParkMarkerUri[] = "https://ucode.dev/libvirt/park/1";

// Marks `domain` as about to be suspended by `operation` ("operations/<id>"; letters,
// digits and "/._-" only, so the element needs no escaping: INVALID_ARGUMENT otherwise).
// Replaces a marker already there.
[[nodiscard]] absl::Status SetParkMarker(const Domain& domain, absl::string_view operation);

// Removes the marker; OK when there is none.
[[nodiscard]] absl::Status ClearParkMarker(const Domain& domain);

// The operation the marker names, or nullopt when the domain carries none.
[[nodiscard]] absl::StatusOr<std::optional<std::string>> ReadParkMarker(const Domain& domain);

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_PARK_MARKER_H_
