#include "tests/libvirt_guest/guest_lab.h"

#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "host/base/read_file.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"
#include "tests/libvirt_guest/subprocess.h"

namespace ucode::testing {
namespace {

namespace fs = std::filesystem;

// QEMU processes of every lab in this process, for the fatal-signal handler: libvirt
// starts QEMU daemonized (its own session), so a killed test would leave them running.
constexpr int kMaxPids = 64;
std::atomic<pid_t> g_qemu_pids[kMaxPids];

void KillQemusAndDie(int sig) {
  // Async-signal-safe only: kill, signal, raise.
  for (auto& slot : g_qemu_pids) {
    const pid_t pid = slot.load();
    if (pid > 0) kill(pid, SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void InstallSignalHandlers() {
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  for (int sig : {SIGTERM, SIGINT, SIGABRT}) signal(sig, KillQemusAndDie);
}

void RememberPid(pid_t pid) {
  for (auto& slot : g_qemu_pids) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void ForgetPid(pid_t pid) {
  for (auto& slot : g_qemu_pids) {
    pid_t p = pid;
    slot.compare_exchange_strong(p, 0);
  }
}

std::string ReadFile(const fs::path& path) { return ReadTextFile(path).value_or(""); }

// A pid from a pidfile is only killed if it still is a QEMU (pids are reused).
bool IsQemu(pid_t pid) {
  return absl::StartsWith(ReadFile(absl::StrCat("/proc/", pid, "/comm")), "qemu");
}

// The embedded driver keeps one pidfile per running domain under <root>/run/qemu.
std::vector<pid_t> QemuPids(const std::string& root) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(root) / "run/qemu", ec)) {
    if (e.path().extension() != ".pid") continue;
    int pid = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(e.path())), &pid) && pid > 0) {
      pids.push_back(pid);
    }
  }
  return pids;
}

// The embed root's qemu.conf (https://libvirt.org/drvqemu.html, and the keys documented
// in Debian's /usr/share/doc/libvirt-daemon-driver-qemu qemu.conf): QEMU runs as the
// test's own user, logs to files instead of virtlogd (no daemon here), and makes no
// mount namespace or cgroup (the Bazel sandbox has read-only /sys/fs/cgroup).
constexpr char kQemuConf[] =
    "user = \"root\"\n"
    "group = \"root\"\n"
    "stdio_handler = \"file\"\n"
    "namespaces = [ ]\n"
    "security_driver = \"none\"\n";
// Unless GuestLabOptions::libvirt_cgroups: no cgroups at all.
constexpr char kNoCgroups[] = "cgroup_controllers = [ ]\n";

std::string MissingNow() {
  if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0) {
    return "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)";
  }
  // The QEMU driver resolves its default user even when qemu.conf overrides it.
  if (getpwnam("libvirt-qemu") == nullptr) {
    return "user libvirt-qemu does not exist (Debian package libvirt-daemon-system)";
  }
  if (!fs::exists("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so")) {
    return "libvirt's QEMU driver is not installed (libvirt-daemon-driver-qemu)";
  }
  bool kernel = false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/boot", ec)) {
    kernel |= absl::StartsWith(e.path().filename().string(), "vmlinuz-");
  }
  if (!kernel) return "no /boot/vmlinuz-* (Debian package linux-image-amd64)";
  if (access("/bin/busybox", X_OK) != 0) return "no /bin/busybox (busybox-static)";
  return "";
}

}  // namespace

std::string GuestLab::MissingPrerequisites(const GuestLabOptions& options) {
  std::string missing = MissingNow();
  if (missing.empty()) return "";
  std::error_code ec;
  const fs::path install_deps =
      fs::canonical(options.build_initramfs, ec).parent_path() / "../../tools/install-deps";
  if (!ec && fs::exists(install_deps)) {
    (void)RunCommand({install_deps.lexically_normal().string()});
    missing = MissingNow();
    if (missing.empty()) return "";
  }
  return absl::StrCat(missing, "; tools/install-deps could not install it here (run it as ",
                      "root outside the Bazel sandbox)");
}

absl::StatusOr<std::unique_ptr<GuestLab>> GuestLab::Create(const GuestLabOptions& options) {
  InstallSignalHandlers();
  std::unique_ptr<GuestLab> lab(new GuestLab());
  lab->options_ = options;
  // Short on purpose: QEMU's monitor and agent sockets live under the root, and a Unix
  // socket path is at most 107 bytes (unix(7)); TEST_TMPDIR is far too deep.
  char tmpl[] = "/tmp/ucode-lv-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return ErrnoStatus(errno, "mkdtemp /tmp/ucode-lv-XXXXXX");
  lab->root_ = tmpl;

  fs::create_directories(fs::path(lab->root_) / "etc");
  std::ofstream(fs::path(lab->root_) / "etc/qemu.conf")
      << kQemuConf << (options.daemon && options.libvirt_cgroups ? "" : kNoCgroups);

  if (!options.agent.empty()) {
    std::vector<std::string> build = {options.build_initramfs, "--agent", options.agent,
                                      "--out-dir", lab->root_ + "/guest", "--no-install"};
    for (const std::string& a : options.agent_args) {
      build.push_back("--agent-arg");
      build.push_back(a);
    }
    ASSIGN_OR_RETURN(CommandResult built, RunCommand(build));
    if (built.exit_code != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("build_initramfs exited ", built.exit_code, " (see its stderr above)"));
    }
    lab->kernel_ = lab->root_ + "/guest/vmlinuz";
    lab->initrd_ = lab->root_ + "/guest/initrd.img";
  }

  if (options.daemon) {
    ASSIGN_OR_RETURN(PrivateLibvirtd d, PrivateLibvirtd::Start(lab->root_, absl::Seconds(30)));
    lab->daemon_ = std::make_unique<PrivateLibvirtd>(std::move(d));
    RememberPid(lab->daemon_->pid());
    lab->uri_ = lab->daemon_->uri();
  } else {
    lab->uri_ = absl::StrCat("qemu:///embed?root=", lab->root_);
  }
  ASSIGN_OR_RETURN(lab->conn_, libvirt::Connection::Open(lab->uri_));
  return lab;
}

std::string GuestLab::ConsolePath(absl::string_view name) const {
  return absl::StrCat(root_, "/console-", name, ".log");
}

std::string GuestLab::ConsoleLog(absl::string_view name) const {
  return ReadFile(ConsolePath(name));
}

absl::StatusOr<std::string> GuestLab::DomainInitrd(absl::string_view name,
                                                   const BootOptions& boot) {
  if (boot.files.empty() && boot.agent_args.empty()) return initrd_;
  const fs::path dir = fs::path(root_) / absl::StrCat("overlay-", name);
  auto write = [&](const std::string& path, const std::string& content, fs::perms mode) {
    const fs::path p = dir / fs::path(path).relative_path();
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    fs::permissions(p, mode);
  };
  for (const auto& [path, content] : boot.files) write(path, content, fs::perms(0755));
  if (!boot.agent_args.empty()) {
    // The format build_initramfs.sh writes and init.sh word-splits.
    std::string args;
    for (const std::string& a : boot.agent_args) absl::StrAppend(&args, a, " ");
    write("/etc/ucode-guest/agent-args", args, fs::perms(0644));
  }
  // The kernel unpacks concatenated (separately compressed) newc archives in order, later
  // files replacing earlier ones (Documentation/driver-api/early-userspace/
  // buffer-format.rst).
  const std::string out = absl::StrCat(root_, "/guest/initrd-", name, ".img");
  const std::string script = absl::StrCat(
      "set -e; cp '", initrd_, "' '", out, "'; cd '", dir.string(),
      "'; find . | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet | gzip -1 >> '", out, "'");
  ASSIGN_OR_RETURN(CommandResult r, RunCommand({"sh", "-c", script}));
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("initramfs overlay for ", name, " exited ", r.exit_code));
  }
  return out;
}

absl::StatusOr<libvirt::Domain> GuestLab::Boot(absl::string_view name, const BootOptions& boot) {
  if (kernel_.empty()) {
    return absl::FailedPreconditionError("GuestLab built without a guest (options.agent empty)");
  }
  ASSIGN_OR_RETURN(std::string initrd, DomainInitrd(name, boot));
  ASSIGN_OR_RETURN(
      CommandResult xml,
      RunCommand({options_.render_domain_xml, "--name", std::string(name), "--kernel", kernel_,
                  "--initrd", initrd, "--console-log", ConsolePath(name), "--memory-mib",
                  absl::StrCat(options_.memory_mib), "--vcpus", absl::StrCat(options_.vcpus)}));
  if (xml.exit_code != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("render_domain_xml for ", name, " exited ", xml.exit_code));
  }
  if (!boot.agent_channel) {
    const size_t begin = xml.out.find("<channel type='unix'>");
    const size_t end = xml.out.find("</channel>", begin);
    if (begin == std::string::npos || end == std::string::npos) {
      return absl::InternalError("domain XML has no agent <channel> to remove");
    }
    xml.out.erase(begin, end + strlen("</channel>") - begin);
  }
  return BootXml(name, xml.out);
}

absl::StatusOr<libvirt::Domain> GuestLab::BootXml(absl::string_view name, absl::string_view xml) {
  booted_.emplace_back(name);
  ASSIGN_OR_RETURN(libvirt::Domain dom, conn_->CreateTransient(xml));
  for (pid_t pid : QemuPids(root_)) {
    ForgetPid(pid);  // no duplicates when several domains boot
    RememberPid(pid);
  }
  return dom;
}

GuestLab::~GuestLab() {
  if (conn_ != nullptr) {
    for (const std::string& name : booted_) {
      absl::StatusOr<libvirt::Domain> dom = conn_->LookupDomain(name);
      if (!dom.ok()) continue;  // a transient domain that stopped is gone
      absl::Status s = conn_->Destroy(*dom);
      if (!s.ok()) fprintf(stderr, "GuestLab teardown: %s\n", s.ToString().c_str());
    }
    conn_.reset();
  }
  if (daemon_ != nullptr) {
    ForgetPid(daemon_->pid());
    daemon_->Stop();
  }
  if (root_.empty()) return;
  for (pid_t pid : QemuPids(root_)) {
    if (IsQemu(pid)) {
      fprintf(stderr, "GuestLab teardown: killing leftover QEMU pid %d\n", pid);
      kill(pid, SIGKILL);
    }
    ForgetPid(pid);
  }
  // Keep the consoles for a failed test's post-mortem (Bazel collects this directory).
  if (const char* out = getenv("TEST_UNDECLARED_OUTPUTS_DIR"); out != nullptr) {
    std::error_code ec;
    for (const std::string& name : booted_) {
      fs::copy_file(ConsolePath(name), fs::path(out) / absl::StrCat("console-", name, ".log"),
                    fs::copy_options::overwrite_existing, ec);
    }
    if (daemon_ != nullptr) {
      fs::copy_file(fs::path(root_) / "libvirtd.log", fs::path(out) / "libvirtd.log",
                    fs::copy_options::overwrite_existing, ec);
    }
  }
  std::error_code ec;
  fs::remove_all(root_, ec);
}

int RunLabTests(int argc, char** argv, GuestLabOptions& options,
                const std::vector<std::pair<std::string, std::string*>>& extra) {
  ::testing::InitGoogleTest(&argc, argv);
  std::vector<std::pair<std::string, std::string*>> all = {
      {"agent", &options.agent},
      {"build_initramfs", &options.build_initramfs},
      {"render_domain_xml", &options.render_domain_xml}};
  all.insert(all.end(), extra.begin(), extra.end());
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    for (auto& [name, out] : all) {
      if (absl::ConsumePrefix(&arg, absl::StrCat("--", name, "="))) *out = std::string(arg);
    }
  }
  std::string usage;
  bool ok = true;
  for (auto& [name, out] : all) {
    absl::StrAppend(&usage, " --", name, "=PATH");
    ok = ok && !out->empty();
  }
  if (!ok) {
    fprintf(stderr, "usage: %s%s\n", argv[0], usage.c_str());
    return 2;
  }
  return RUN_ALL_TESTS();
}

bool LabSuite::CreateLab(const GuestLabOptions& options) {
  skip_ = GuestLab::MissingPrerequisites(options);
  if (!skip_.empty()) return false;
  absl::StatusOr<std::unique_ptr<GuestLab>> lab = GuestLab::Create(options);
  if (!lab.ok()) {
    error_ = lab.status().ToString();
    return false;
  }
  lab_ = lab->release();
  return true;
}

bool LabSuite::BootAll(const std::vector<std::string>& names, absl::Duration agent_timeout) {
  for (const std::string& name : names) {
    absl::StatusOr<libvirt::Domain> d = lab_->Boot(name);
    if (!d.ok()) {
      error_ = d.status().ToString();
      return false;
    }
  }
  for (const std::string& name : names) {
    absl::Status s = lab_->connection().WaitForAgent(*lab_->connection().LookupDomain(name),
                                                     agent_timeout);
    if (!s.ok()) {
      error_ = absl::StrCat(s.ToString(), "\nconsole of ", name, ":\n", lab_->ConsoleLog(name));
      return false;
    }
  }
  return true;
}

}  // namespace ucode::testing
