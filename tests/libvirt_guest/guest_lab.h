// A throwaway libvirt "host" for tests: the QEMU driver embedded in the test process
// (qemu:///embed?root=DIR, https://libvirt.org/drvqemu.html#embedded-driver) under a
// fresh root directory, or (options.daemon) a private libvirtd that other processes such
// as ucodectl can reach too (private_libvirtd.h); booting real Linux guests
// (tests/linux_guest) as transient TCG domains, each with its own initramfs additions,
// or any domain XML. Everything it starts is torn down by the destructor, and by a
// fatal-signal handler (SIGTERM from a Bazel timeout, SIGABRT, SIGINT) that kills the
// QEMU processes and the daemon.
#ifndef UCODE_TESTS_LIBVIRT_GUEST_GUEST_LAB_H_
#define UCODE_TESTS_LIBVIRT_GUEST_GUEST_LAB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/libvirt_guest/private_libvirtd.h"
#include "vmm/libvirt/connection.h"
#include "vmm/libvirt/domain.h"

namespace ucode::testing {

struct GuestLabOptions {
  // The guest agent binary put in the initramfs; empty: no Linux guest image (BootXml
  // only, e.g. firmware-only domains for benchmarks).
  std::string agent;
  std::vector<std::string> agent_args;
  std::string build_initramfs;  // //tests/linux_guest:build_initramfs
  std::string render_domain_xml;  // //tests/linux_guest:render_domain_xml
  int memory_mib = 192;
  int vcpus = 1;
  // A private libvirtd instead of the embedded driver (uri() is then reachable from
  // other processes on this machine).
  bool daemon = false;
  // With `daemon`: let libvirt make its cgroups for each domain (machine, emulator and
  // per-vCPU ones), as on a production host. Off by default: tests that run at once would
  // share cgroup names.
  bool libvirt_cgroups = false;
};

// A lab test's main: reads its arguments, `--NAME=PATH` (Bazel rootpaths), the guest's
// inputs (`--agent=`, `--build_initramfs=`, `--render_domain_xml=`) into `options` and
// each of `extra`'s names into its string, then runs the tests. 2, after printing the
// usage, if any is missing.
int RunLabTests(int argc, char** argv, GuestLabOptions& options,
                const std::vector<std::pair<std::string, std::string*>>& extra = {});

// Per-domain differences from the lab's guest.
struct BootOptions {
  // false: no agent channel in the domain at all (libvirt: "agent is not configured").
  bool agent_channel = true;
  // Replaces the lab's agent arguments for this domain (when non-empty).
  std::vector<std::string> agent_args;
  // Extra executable files in this domain's initramfs: path inside the guest -> content
  // (e.g. agent hooks). Added as a second cpio archive after the lab's one.
  std::vector<std::pair<std::string, std::string>> files;
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
  [[nodiscard]] const std::string& uri() const { return uri_; }

  // Starts a transient domain `name` running the guest; returns once QEMU runs (the
  // guest is still booting: wait with Connection::WaitForAgent).
  [[nodiscard]] absl::StatusOr<libvirt::Domain> Boot(absl::string_view name,
                                                     const BootOptions& boot = {});

  // Starts a transient domain from `xml` (its <name> must be `name`).
  [[nodiscard]] absl::StatusOr<libvirt::Domain> BootXml(absl::string_view name,
                                                        absl::string_view xml);

  // The domain's serial console so far (kernel log, init markers, agent output).
  [[nodiscard]] std::string ConsoleLog(absl::string_view name) const;

 private:
  GuestLab() = default;

  std::string ConsolePath(absl::string_view name) const;
  // The lab's initrd plus a cpio archive of `boot`'s additions, for domain `name`.
  absl::StatusOr<std::string> DomainInitrd(absl::string_view name, const BootOptions& boot);

  GuestLabOptions options_;
  std::string root_;  // embed or daemon root, also holds the guest image and console logs
  std::string uri_;
  std::unique_ptr<PrivateLibvirtd> daemon_;  // options.daemon only
  std::string kernel_;
  std::string initrd_;
  std::unique_ptr<libvirt::Connection> conn_;
  std::vector<std::string> booted_;  // domain names, for teardown
};

// A test suite sharing one lab: SetUpTestSuite calls CreateLab (and BootAll); a host that
// cannot run guests skips every test, a setup that failed fails each with its error.
class LabSuite : public ::testing::Test {
 protected:
  // False, with skip_ or error_ set, if the lab could not be made.
  static bool CreateLab(const GuestLabOptions& options);
  // Boots `names`, then waits for each one's agent; false, with error_ (and the console of
  // a domain whose agent did not answer), if any fails.
  static bool BootAll(const std::vector<std::string>& names, absl::Duration agent_timeout);
  static void TearDownTestSuite() {
    delete lab_;  // destroys the domains, closes the connection, kills leftover QEMU
    lab_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << "cannot run real guests here: " << skip_;
    ASSERT_TRUE(error_.empty()) << "guest setup failed: " << error_;
  }

  libvirt::Connection& conn() { return lab_->connection(); }
  libvirt::Domain Dom(const std::string& name) { return *conn().LookupDomain(name); }

  static inline GuestLab* lab_ = nullptr;
  static inline std::string skip_;
  static inline std::string error_;
};

}  // namespace ucode::testing

#endif  // UCODE_TESTS_LIBVIRT_GUEST_GUEST_LAB_H_
