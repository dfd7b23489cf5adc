// The process's libvirt event loop.
//
// libvirt delivers domain events, keepalives and (for qemu:///embed) the in-process QEMU
// driver's monitor and agent I/O through an event loop the application provides
// (https://libvirt.org/html/libvirt-libvirt-event.html). We use libvirt's own default
// implementation: virEventRegisterDefaultImpl() once, before the first virConnectOpen,
// and one thread ("libvirt-events") calling virEventRunDefaultImpl() forever.
//
// libvirt has no way to unregister an event implementation, so the loop lives as long as
// the process: EnsureStarted() starts it once and every later call is free.
#ifndef UCODE_VMM_LIBVIRT_EVENT_LOOP_H_
#define UCODE_VMM_LIBVIRT_EVENT_LOOP_H_

#include "absl/status/status.h"

namespace ucode::libvirt {

// Registers the default event implementation and starts the loop thread, once per
// process. Thread-safe. Every later call returns the first call's status.
absl::Status EnsureEventLoopStarted();

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_EVENT_LOOP_H_
