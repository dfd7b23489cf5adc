// The agent's I/O loop: one thread, poll(2) on the channel and a signalfd.
//
// Host disconnects are normal (libvirt closes the chardev socket when it
// restarts, QEMU when a migration ends) and must cost nothing: a virtio port
// whose host side is closed reports POLLHUP and read() == 0 forever
// (drivers/char/virtio_console.c, port_fops_poll), so after a hang-up the loop
// stops polling the port and sleeps until SIGIO says the host is back (with a
// once-a-second recheck in case the signal was missed). The port stays open
// meanwhile: the driver discards host data for ports no guest process holds
// open. A Unix socket is reconnected with backoff; an inherited fd ends the
// loop at EOF.
#ifndef UCODE_GUEST_AGENT_AGENT_LOOP_H_
#define UCODE_GUEST_AGENT_AGENT_LOOP_H_

#include "guest-agent/channel.h"
#include "guest-agent/session.h"

namespace ucode_agent {

// Runs until SIGTERM/SIGINT or the end of an inherited fd. Returns the exit code.
int RunAgentLoop(const ChannelOptions& options, Session* session);

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_AGENT_LOOP_H_
