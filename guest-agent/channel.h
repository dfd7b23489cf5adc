// Finding and opening the agent's channel to the host.
//
// In a guest the channel is a virtio-serial port: the Linux virtio_console
// driver lists each port in /sys/class/virtio-ports/vportNpM/name with the
// name the VMM gave it (libvirt's <target type='virtio' name='...'/>), and the
// device node is /dev/vportNpM. Tests use a Unix socket path or an inherited
// fd instead.
#ifndef UCODE_GUEST_AGENT_CHANNEL_H_
#define UCODE_GUEST_AGENT_CHANNEL_H_

#include <optional>
#include <string>

#include "host/base/unique_fd_core.h"

namespace ucode_agent {

inline constexpr char kDefaultPortName[] = "org.qemu.guest_agent.0";

struct ChannelOptions {
  std::string port_name = kDefaultPortName;
  std::string sysfs_root;  // prefix before /sys/class/virtio-ports (tests)
  std::string dev_dir = "/dev";
  std::string device;  // explicit path: character device, pty or Unix socket
  int inherited_fd = -1;  // already-open channel; the agent exits at its EOF
};

enum class ChannelKind { kCharDevice, kUnixSocket, kInheritedFd };

// "/dev/vportNpM" for the port called `name`, or nullopt (`error` says why).
[[nodiscard]] std::optional<std::string> FindVirtioPort(const ChannelOptions& options,
                                                        std::string* error);

// Opens the channel, non-blocking and close-on-exec. A character device also
// gets O_ASYNC with this process as owner: virtio_console raises SIGIO when the
// host side connects (drivers/char/virtio_console.c, send_sigio_to_port), which
// is how the agent waits for the host without polling.
[[nodiscard]] ucode::UniqueFd OpenChannel(const ChannelOptions& options, ChannelKind* kind,
                                          std::string* error);

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_CHANNEL_H_
