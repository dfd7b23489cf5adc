#include "vmm/daemon/api/service.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vmm/daemon/log.h"
#include "vmm/inspect/image_inspect.h"

namespace ucode::daemon {
namespace {

// How long CancelOperation waits for the runner to notice, so its answer usually shows the
// CANCELLED state rather than RUNNING.
constexpr absl::Duration kCancelSettle = absl::Seconds(2);

// The work of an operation that carries an image: `run` on the params, then the image
// freed and its lease (held until then) returned to the budget before the operation is
// published as done, so a caller who saw DONE finds the budget free.
template <typename Params, typename Run>
auto WithImage(Params params, ImageBudget::Lease lease, Run run) {
  return [p = std::move(params), held = std::make_shared<ImageBudget::Lease>(std::move(lease)),
          run](const std::string& name, OperationRecord& record) mutable {
    p.operation = name;
    absl::StatusOr<ucode::v1::UpdateReport> result = run(p, record);
    std::vector<uint8_t>().swap(p.image);
    *held = ImageBudget::Lease();
    return result;
  };
}

// absl and gRPC codes are the same numbers (both are google.rpc.Code).
grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// `result` into `resp`, or its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* resp) {
  if (!result.ok()) return ToGrpc(result.status());
  *resp = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace

UcodeServiceImpl::UcodeServiceImpl(UpdateRunner* runner, OperationRegistry* registry,
                                   RequestLimits limits)
    : runner_(runner),
      registry_(registry),
      limits_(limits),
      image_budget_(limits.max_image_bytes_in_flight) {}

UcodeServiceImpl::~UcodeServiceImpl() { Shutdown(); }

void UcodeServiceImpl::Shutdown() {
  shutting_down_.store(true);
  if (std::shared_ptr<OperationRecord> running = registry_->Running()) {
    absl::Status s = running->RequestCancel();
    LogLine("shutdown_cancel", {{"operation", running->name()}, {"result", s.ToString()}});
  }
  absl::MutexLock lock(&worker_mu_);
  if (worker_.joinable()) worker_.join();
  registry_->CatchUpJournal();
}

absl::StatusOr<ucode::v1::Operation> UcodeServiceImpl::StartOperation(
    absl::string_view kind, absl::string_view request_id, absl::string_view request_digest,
    std::function<absl::StatusOr<ucode::v1::UpdateReport>(const std::string&, OperationRecord&)>
        work) {
  absl::MutexLock lock(&worker_mu_);
  if (shutting_down_.load()) return absl::UnavailableError("ucoded is shutting down");
  absl::StatusOr<OperationRegistry::Created> created =
      registry_->Create(kind, request_id, request_digest);
  if (!created.ok()) return created.status();
  std::shared_ptr<OperationRecord> record = created->record;
  if (created->existing) return record->Snapshot();
  // The slot was free, so the previous worker has published its result and is returning.
  if (worker_.joinable()) worker_.join();
  LogLine("operation_start", {{"operation", record->name()}, {"kind", std::string(kind)}});
  worker_ = std::thread([this, record, work = std::move(work)] {
    pthread_setname_np(pthread_self(), "ucoded-op");
    absl::StatusOr<ucode::v1::UpdateReport> result = work(record->name(), *record);
    registry_->Finish(*record, result);
    ucode::v1::Operation op = record->Snapshot();
    LogLine("operation_end", {{"operation", op.name()},
                              {"state", OperationState_Name(op.state())},
                              {"last_step", Step_Name(op.last_step())},
                              {"error", op.error().message()}});
  });
  return record->Snapshot();
}

grpc::Status UcodeServiceImpl::InspectImage(grpc::ServerContext*,
                                            const ucode::v1::InspectImageRequest* req,
                                            ucode::v1::InspectImageResponse* resp) {
  ImageBudget::Lease lease;
  absl::StatusOr<std::vector<uint8_t>> image =
      LoadImageSource(req->image(), "image", limits_, image_budget_, &lease);
  if (!image.ok()) return ToGrpc(image.status());
  microcode::CpuIdentity cpu;
  std::string no_cpu;
  if (req->has_cpu()) {
    cpu.signature = req->cpu().signature();
    cpu.platform_id = req->cpu().platform_id();
    cpu.current_revision = req->cpu().current_revision();
  } else if (absl::StatusOr<ucode::v1::Host> host = runner_->DescribeHost(); !host.ok()) {
    no_cpu = absl::StrCat("host CPU unknown: ", host.status().ToString());
  } else if (host->cpus().empty()) {
    no_cpu = "host CPU unknown: the host reports no CPUs";
  } else {
    cpu.signature = host->signature();
    cpu.platform_id = host->platform_id();
    // The oldest revision on the host decides: a CPU left behind still needs the update.
    cpu.current_revision = host->cpus(0).revision();
    for (const ucode::v1::LogicalCpu& c : host->cpus()) {
      cpu.current_revision = std::min(cpu.current_revision, c.revision());
    }
  }
  const inspect::ImageFile file{"", *image};
  *resp = inspect::InspectImages({file}, no_cpu.empty() ? &cpu : nullptr,
                                 microcode::MinRevPolicy::kEnforce, no_cpu);
  return grpc::Status::OK;
}

grpc::Status UcodeServiceImpl::StageImage(grpc::ServerContext*,
                                          const ucode::v1::StageImageRequest* req,
                                          ucode::v1::Operation* resp) {
  ImageBudget::Lease lease;
  absl::StatusOr<StageParams> params = ValidateStage(*req, limits_, image_budget_, &lease);
  if (!params.ok()) return ToGrpc(params.status());
  return Reply(StartOperation("stage", "", "",
                              WithImage(std::move(*params), std::move(lease),
                                        [this](const StageParams& p, OperationRecord& record) {
                                          return runner_->Stage(p, record, record.cancel_token());
                                        })),
               resp);
}

grpc::Status UcodeServiceImpl::ApplyUpdate(grpc::ServerContext*,
                                           const ucode::v1::ApplyUpdateRequest* req,
                                           ucode::v1::Operation* resp) {
  ImageBudget::Lease lease;
  absl::StatusOr<ApplyParams> params = ValidateApply(*req, limits_, image_budget_, &lease);
  if (!params.ok()) return ToGrpc(params.status());
  return Reply(StartOperation("apply", req->request_id(),
                              req->request_id().empty() ? "" : RequestDigest(*req),
                              WithImage(std::move(*params), std::move(lease),
                                        [this](const ApplyParams& p, OperationRecord& record) {
                                          return runner_->Apply(p, record, record.cancel_token());
                                        })),
               resp);
}

grpc::Status UcodeServiceImpl::SyncGuestViews(grpc::ServerContext*,
                                              const ucode::v1::SyncGuestViewsRequest* req,
                                              ucode::v1::Operation* resp) {
  absl::StatusOr<SyncParams> params = ValidateSync(*req, limits_);
  if (!params.ok()) return ToGrpc(params.status());
  return Reply(StartOperation("sync", "", "",
                              [this, p = std::move(*params)](const std::string& name,
                                                             OperationRecord& record) mutable {
                                p.operation = name;
                                return runner_->SyncGuestViews(p, record, record.cancel_token());
                              }),
               resp);
}

grpc::Status UcodeServiceImpl::GetOperation(grpc::ServerContext*,
                                            const ucode::v1::GetOperationRequest* req,
                                            ucode::v1::Operation* resp) {
  absl::StatusOr<std::shared_ptr<OperationRecord>> record = registry_->Find(req->name());
  if (!record.ok()) return ToGrpc(record.status());
  *resp = (*record)->Snapshot();
  return grpc::Status::OK;
}

grpc::Status UcodeServiceImpl::ListOperations(grpc::ServerContext*,
                                              const ucode::v1::ListOperationsRequest* req,
                                              ucode::v1::ListOperationsResponse* resp) {
  return Reply(registry_->List(req->page_size(), req->page_token()), resp);
}

grpc::Status UcodeServiceImpl::WatchOperation(
    grpc::ServerContext* ctx, const ucode::v1::WatchOperationRequest* req,
    grpc::ServerWriter<ucode::v1::OperationEvent>* writer) {
  absl::StatusOr<std::shared_ptr<OperationRecord>> record = registry_->Find(req->name());
  if (!record.ok()) return ToGrpc(record.status());
  // Write blocks only this call's thread when the client is slow (HTTP/2 flow control);
  // the runner appends to the record and never waits for a watcher.
  absl::Status s = (*record)->Watch(
      [writer](const ucode::v1::OperationEvent& e) { return writer->Write(e); },
      [this, ctx] { return ctx->IsCancelled() || shutting_down_.load(); });
  if (!s.ok() && shutting_down_.load()) return grpc::Status(grpc::UNAVAILABLE, "ucoded is shutting down");
  return ToGrpc(s);
}

grpc::Status UcodeServiceImpl::CancelOperation(grpc::ServerContext*,
                                               const ucode::v1::CancelOperationRequest* req,
                                               ucode::v1::Operation* resp) {
  absl::StatusOr<std::shared_ptr<OperationRecord>> record = registry_->Find(req->name());
  if (!record.ok()) return ToGrpc(record.status());
  absl::Status s = (*record)->RequestCancel();
  LogLine("cancel", {{"operation", req->name()}, {"result", s.ToString()}});
  if (!s.ok()) return ToGrpc(s);
  (*record)->WaitDone(kCancelSettle);
  *resp = (*record)->Snapshot();
  return grpc::Status::OK;
}

grpc::Status UcodeServiceImpl::DescribeHost(grpc::ServerContext*,
                                            const ucode::v1::DescribeHostRequest*,
                                            ucode::v1::Host* resp) {
  return Reply(runner_->DescribeHost(), resp);
}

grpc::Status UcodeServiceImpl::ListGuests(grpc::ServerContext*,
                                          const ucode::v1::ListGuestsRequest*,
                                          ucode::v1::ListGuestsResponse* resp) {
  absl::StatusOr<std::vector<ucode::v1::Guest>> guests = runner_->ListGuests();
  if (!guests.ok()) return ToGrpc(guests.status());
  for (ucode::v1::Guest& g : *guests) *resp->add_guests() = std::move(g);
  return grpc::Status::OK;
}

}  // namespace ucode::daemon
