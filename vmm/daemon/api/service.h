// The ucode.v1.UcodeService handlers: request validation, then the registry and the runner.
// gRPC's synchronous server gives each call its own thread; long work runs on one worker
// thread per operation (at most one at a time, the host slot), owned here.
#ifndef UCODE_VMM_DAEMON_SERVICE_H_
#define UCODE_VMM_DAEMON_SERVICE_H_

#include <atomic>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/ucode/v1/ucoded.grpc.pb.h"
#include "vmm/daemon/api/image_budget.h"
#include "vmm/daemon/operations/operation_registry.h"
#include "vmm/daemon/api/request_validation.h"
#include "vmm/daemon/operations/update_runner.h"

namespace ucode::daemon {

class UcodeServiceImpl final : public ucode::v1::UcodeService::Service {
 public:
  // `runner` and `registry` outlive this.
  UcodeServiceImpl(UpdateRunner* runner, OperationRegistry* registry, RequestLimits limits);
  ~UcodeServiceImpl() override;
  UcodeServiceImpl(const UcodeServiceImpl&) = delete;
  UcodeServiceImpl& operator=(const UcodeServiceImpl&) = delete;

  // Refuses new operations (UNAVAILABLE), ends watch streams, cancels the running operation
  // (honoured only before its rendezvous: one inside it runs to its end) and waits for it.
  void Shutdown();

  grpc::Status InspectImage(grpc::ServerContext* ctx, const ucode::v1::InspectImageRequest* req,
                            ucode::v1::InspectImageResponse* resp) override;
  grpc::Status SyncGuestViews(grpc::ServerContext* ctx,
                              const ucode::v1::SyncGuestViewsRequest* req,
                              ucode::v1::Operation* resp) override;
  grpc::Status StageImage(grpc::ServerContext* ctx, const ucode::v1::StageImageRequest* req,
                          ucode::v1::Operation* resp) override;
  grpc::Status ApplyUpdate(grpc::ServerContext* ctx, const ucode::v1::ApplyUpdateRequest* req,
                           ucode::v1::Operation* resp) override;
  grpc::Status GetOperation(grpc::ServerContext* ctx, const ucode::v1::GetOperationRequest* req,
                            ucode::v1::Operation* resp) override;
  grpc::Status ListOperations(grpc::ServerContext* ctx,
                              const ucode::v1::ListOperationsRequest* req,
                              ucode::v1::ListOperationsResponse* resp) override;
  grpc::Status WatchOperation(grpc::ServerContext* ctx,
                              const ucode::v1::WatchOperationRequest* req,
                              grpc::ServerWriter<ucode::v1::OperationEvent>* writer) override;
  grpc::Status CancelOperation(grpc::ServerContext* ctx,
                               const ucode::v1::CancelOperationRequest* req,
                               ucode::v1::Operation* resp) override;
  grpc::Status DescribeHost(grpc::ServerContext* ctx, const ucode::v1::DescribeHostRequest* req,
                            ucode::v1::Host* resp) override;
  grpc::Status ListGuests(grpc::ServerContext* ctx, const ucode::v1::ListGuestsRequest* req,
                          ucode::v1::ListGuestsResponse* resp) override;

 private:
  // Takes the host slot for `kind` and runs `work` on the worker thread.
  absl::StatusOr<ucode::v1::Operation> StartOperation(
      absl::string_view kind, absl::string_view request_id, absl::string_view request_digest,
      std::function<absl::StatusOr<ucode::v1::UpdateReport>(const std::string& name,
                                                            OperationRecord& record)>
          work);

  UpdateRunner* const runner_;
  OperationRegistry* const registry_;
  const RequestLimits limits_;
  ImageBudget image_budget_;
  std::atomic<bool> shutting_down_{false};
  absl::Mutex worker_mu_;
  std::thread worker_ ABSL_GUARDED_BY(worker_mu_);
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_SERVICE_H_
