#include "vmm/kvm/vmm_server.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "host/base/status_macros.h"
#include "vmm/guest/guest_programs.h"
#include "vmm/guest/guest_record.h"

namespace ucode::vmm {
namespace {

using rendezvous::VcpuState;

// Receives one packet and at most one fd. Returns "" with *eof on end of file.
absl::StatusOr<std::string> ReceiveMessage(int fd, UniqueFd* received, bool* eof) {
  char buf[512];
  iovec iov{buf, sizeof(buf)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "recvmsg control socket");
  *eof = n == 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int rfd;
      std::memcpy(&rfd, CMSG_DATA(c), sizeof(rfd));
      *received = UniqueFd(rfd);
    }
  }
  return std::string(buf, n);
}

}  // namespace

absl::StatusOr<std::unique_ptr<VmmServer>> VmmServer::Create(const VmmConfig& config,
                                                              UniqueFd control) {
  if (config.vcpus < 1 || config.vcpus > rendezvous::kMaxVcpusPerVm) {
    return absl::InvalidArgumentError(absl::StrCat("vcpus must be 1..",
                                                   rendezvous::kMaxVcpusPerVm, ", got ",
                                                   config.vcpus));
  }
  ASSIGN_OR_RETURN(guest::GuestProgram program, guest::FindGuestProgram(config.program));
  ASSIGN_OR_RETURN(KvmVm vm, KvmVm::Create(config.memory_bytes));
  RETURN_IF_ERROR(vm.LoadProgram(program.code));
  std::vector<VcpuFd> vcpus;
  for (int i = 0; i < config.vcpus; ++i) {
    ASSIGN_OR_RETURN(VcpuFd v, vm.CreateVcpu(i, config.initial_ucode_rev_msr));
    vcpus.push_back(std::move(v));
  }
  RETURN_IF_ERROR(InstallParkSignalHandler());
  return std::unique_ptr<VmmServer>(
      new VmmServer(config, std::move(vm), std::move(vcpus), std::move(control)));
}

VmmServer::VmmServer(VmmConfig config, KvmVm vm, std::vector<VcpuFd> vcpus, UniqueFd control)
    : config_(std::move(config)),
      vm_(std::move(vm)),
      pending_vcpus_(std::move(vcpus)),
      control_(std::move(control)) {}

VmmServer::~VmmServer() { StopVcpus(); }

void VmmServer::Log(const std::string& msg) const {
  std::fprintf(stderr, "[ucode-vmm %s pid %d] %s\n", config_.name.c_str(), getpid(),
               msg.c_str());
}

absl::Status VmmServer::Serve() {
  for (;;) {
    UniqueFd received;
    bool eof = false;
    absl::StatusOr<std::string> msg = ReceiveMessage(control_.get(), &received, &eof);
    if (!msg.ok() || eof) {
      OnCoordinatorGone();
      return absl::OkStatus();
    }
    std::string reply = Handle(*msg, std::move(received));
    if (send(control_.get(), reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
      OnCoordinatorGone();
      return absl::OkStatus();
    }
    if (*msg == "QUIT") {
      StopVcpus();
      return absl::OkStatus();
    }
  }
}

std::string VmmServer::Handle(const std::string& msg, UniqueFd received) {
  std::vector<std::string> words = absl::StrSplit(msg, ' ', absl::SkipEmpty());
  if (words.empty()) return "ERR empty message";
  if (words[0] == "ATTACH" && words.size() == 3) {
    int slot, deadman_ms;
    if (!absl::SimpleAtoi(words[1], &slot) || !absl::SimpleAtoi(words[2], &deadman_ms)) {
      return "ERR ATTACH: bad numbers";
    }
    absl::Status s = Attach(slot, deadman_ms, std::move(received));
    return s.ok() ? "OK" : absl::StrCat("ERR ", s.ToString());
  }
  if (words[0] == "STATS") {
    if (slot_ == nullptr) return "ERR STATS before ATTACH";
    CopyGuestRecords();
    return "OK";
  }
  if (words[0] == "GAP_WINDOW") {
    if (slot_ == nullptr) return "ERR GAP_WINDOW before ATTACH";
    OpenGapWindows();
    return "OK";
  }
  if (words[0] == "QUIT") return "OK";
  return absl::StrCat("ERR unknown command '", msg, "'");
}

absl::Status VmmServer::Attach(int slot, int deadman_ms, UniqueFd area_fd) {
  if (area_ != nullptr) return absl::FailedPreconditionError("already attached");
  if (!area_fd) return absl::InvalidArgumentError("ATTACH without the area memfd");
  if (slot < 0 || slot >= rendezvous::kMaxVms) {
    return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " out of range"));
  }
  void* p = mmap(nullptr, rendezvous::kAreaSize, PROT_READ | PROT_WRITE, MAP_SHARED,
                 area_fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap rendezvous area");
  area_mapping_ = Mapping(p, rendezvous::kAreaSize);
  area_ = static_cast<rendezvous::Area*>(p);
  slot_ = &area_->vm[slot];
  slot_->vcpus = config_.vcpus;
  slot_->tsc_khz = vm_.tsc_khz();
  for (VcpuFd& v : pending_vcpus_) {
    VcpuEnv env;
    env.vm_name = config_.name;
    env.area = area_;
    env.vm = slot_;
    env.guest_memory = vm_.memory();
    env.deadman = absl::Milliseconds(deadman_ms);
    env.refuse_park = v.index == config_.refuse_park_vcpu;
    env.stale_view = v.index == config_.stale_view_vcpu;
    env.coordinator_gone = &coordinator_gone_;
    threads_.push_back(std::make_unique<VcpuThread>(std::move(v), env));
  }
  pending_vcpus_.clear();
  for (auto& t : threads_) t->Start();
  // Published last: the coordinator treats a non-zero pid as "tids are valid".
  slot_->pid.store(getpid(), std::memory_order_release);
  return absl::OkStatus();
}

void VmmServer::CopyGuestRecords() {
  for (int i = 0; i < config_.vcpus; ++i) {
    const uint8_t* rec = vm_.memory() + GUEST_RECORD_BASE + i * GUEST_RECORD_SIZE;
    std::memcpy(&slot_->vcpu[i].guest, rec, sizeof(rendezvous::GuestRecordCopy));
  }
}

// Races with the running guest's own read-modify-write of REC_MAX_GAP, harmlessly: the
// guest can only store a gap it has just measured, which belongs to the new window.
void VmmServer::OpenGapWindows() {
  for (int i = 0; i < config_.vcpus; ++i) {
    uint8_t* rec = vm_.memory() + GUEST_RECORD_BASE + i * GUEST_RECORD_SIZE;
    __atomic_store_n(reinterpret_cast<uint64_t*>(rec + REC_MAX_GAP), 0, __ATOMIC_RELAXED);
  }
}

void VmmServer::OnCoordinatorGone() {
  coordinator_gone_.store(true, std::memory_order_release);
  if (area_ == nullptr) return;
  int parked = 0;
  for (int i = 0; i < config_.vcpus; ++i) {
    parked += slot_->vcpu[i].state.load() == static_cast<uint32_t>(VcpuState::kParked);
  }
  Log(absl::StrCat("coordinator gone (control socket closed); ", parked,
                   " vCPU(s) parked, releasing them"));
  // A vCPU kicked but not parked yet may still carry the kick's real-time priority.
  for (int i = 0; i < config_.vcpus; ++i) rendezvous::SetRealtime(slot_->vcpu[i].tid, 0);
  // Wakes every parked vCPU sleeping on the shared word; they see coordinator_gone_.
  rendezvous::FutexWakeAll(&area_->command);
  for (int tries = 0; tries < 1000; ++tries) {
    bool any = false;
    for (int i = 0; i < config_.vcpus; ++i) {
      any |= slot_->vcpu[i].state.load() == static_cast<uint32_t>(VcpuState::kParked);
    }
    if (!any) break;
    usleep(1000);
  }
  // Let the released guests run briefly so that the log shows them making progress.
  uint64_t before = 0, after = 0;
  CopyGuestRecords();
  for (int i = 0; i < config_.vcpus; ++i) before += slot_->vcpu[i].guest.iterations;
  usleep(20000);
  CopyGuestRecords();
  for (int i = 0; i < config_.vcpus; ++i) after += slot_->vcpu[i].guest.iterations;
  Log(absl::StrCat("dead-man: all vCPUs released; guest ran ", after - before,
                   " iterations since; exiting"));
  StopVcpus();
}

void VmmServer::StopVcpus() {
  for (auto& t : threads_) t->RequestStop();
  threads_.clear();  // joins
}

}  // namespace ucode::vmm
