#include "vmm/libvirt/event_loop.h"

#include <libvirt/libvirt.h>
#include <pthread.h>

#include <thread>

#include "absl/base/call_once.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {
namespace {

void RunForever() {
  pthread_setname_np(pthread_self(), "libvirt-events");
  for (;;) {
    // Errors here are transient poll failures; libvirt already reported them, and giving
    // up would stop every event and every embedded domain's I/O.
    (void)virEventRunDefaultImpl();
  }
}

}  // namespace

absl::Status EnsureEventLoopStarted() {
  static absl::once_flag once;
  // Leaked like the loop itself, so no exit-time destructor races the loop thread.
  static absl::Status* const status = new absl::Status();
  absl::call_once(once, [] {
    SilenceDefaultErrorHandler();
    if (virInitialize() < 0) {
      *status = LastErrorStatus("virInitialize");
      return;
    }
    if (virEventRegisterDefaultImpl() < 0) {
      *status = LastErrorStatus("virEventRegisterDefaultImpl");
      return;
    }
    // Detached on purpose: see the header, the loop outlives every connection.
    std::thread(RunForever).detach();
  });
  return *status;
}

}  // namespace ucode::libvirt
