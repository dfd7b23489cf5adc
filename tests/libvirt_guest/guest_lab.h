// A throwaway libvirt "host" for tests: the QEMU driver embedded in the test process
// (qemu:///embed?root=DIR, https://libvirt.org/drvqemu.html#embedded-driver) under a
// fresh root directory, booting real Linux guests (tests/linux_guest) as transient TCG
// domains. Everything it starts is torn down by the destructor, and by a fatal-signal
// handler (SIGTERM from a Bazel timeout, SIGABRT, SIGINT) that kills the QEMU processes.
#ifndef UCODE_TESTS_LIBVIRT_GUEST_GUEST_LAB_H_
#define UCODE_TESTS_LIBVIRT_GUEST_GUEST_LAB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vmm/libvirt/connection.h"
#include "vmm/libvirt/domain.h"

namespace ucode::testing {

struct GuestLabOptions {
  std::string agent;            // the guest agent binary put in the initramfs
  std::vector<std::string> agent_args;
  std::string build_initramfs;  // //tests/linux_guest:build_initramfs
  std::string render_domain_xml;  // //tests/linux_guest:render_domain_xml
  int memory_mib = 192;
  int vcpus = 1;
};

class GuestLab {
 public:
  // Why this host cannot run real guests (empty if it can): QEMU, the libvirt-qemu user
  // or the guest's Debian inputs are missing and tools/install-deps could not add them
  // (it needs root outside the Bazel sandbox).
  static std::string MissingPrerequisites(const GuestLabOptions& options);

  // Builds the guest image, prepares the embed root and opens the connection.
  static absl::StatusOr<std::unique_ptr<GuestLab>> Create(const GuestLabOptions& options);
  ~GuestLab();

  GuestLab(const GuestLab&) = delete;
  GuestLab& operator=(const GuestLab&) = delete;

  [[nodiscard]] libvirt::Connection& connection() { return *conn_; }
  [[nodiscard]] const std::string& root() const { return root_; }

  // Starts a transient domain `name` running the guest; returns once QEMU runs (the
  // guest is still booting: wait with Connection::WaitForAgent).
  [[nodiscard]] absl::StatusOr<libvirt::Domain> Boot(absl::string_view name);

  // The domain's serial console so far (kernel log, init markers, agent output).
  [[nodiscard]] std::string ConsoleLog(absl::string_view name) const;

 private:
  GuestLab() = default;

  std::string ConsolePath(absl::string_view name) const;

  GuestLabOptions options_;
  std::string root_;  // embed root, also holds the guest image and console logs
  std::string kernel_;
  std::string initrd_;
  std::unique_ptr<libvirt::Connection> conn_;
  std::vector<std::string> booted_;  // domain names, for teardown
};

}  // namespace ucode::testing

#endif  // UCODE_TESTS_LIBVIRT_GUEST_GUEST_LAB_H_
