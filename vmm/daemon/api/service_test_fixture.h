// The in-process daemon the service tests call: fake runner, no socket, a journal and an
// image root in the test's own directory.
#ifndef UCODE_VMM_DAEMON_API_SERVICE_TEST_FIXTURE_H_
#define UCODE_VMM_DAEMON_API_SERVICE_TEST_FIXTURE_H_

#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "vmm/daemon/daemon.h"
#include "vmm/daemon/operations/fake_runner.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon {

using v1::Step;

inline std::string TestImage() {
  auto img = microcode::GenerateImage(microcode::GeneratorOptions{});
  EXPECT_TRUE(img.ok()) << img.status();
  return std::string(img->begin(), img->end());
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogEnabled(false);
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    images_ = dir_ + "/images";
    ASSERT_EQ(system(("rm -rf " + dir_ + " && mkdir -p " + images_).c_str()), 0);
    options_.unix_socket = "";
    options_.journal_path = dir_ + "/journal.sqlite";
    options_.limits.image_roots = {images_};
    Restart();
  }
  void Restart() {
    daemon_.reset();
    auto d = Daemon::Start(options_, &runner_);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    stub_ = v1::UcodeService::NewStub(daemon_->InProcessChannel());
  }
  void TearDown() override {
    for (int s = v1::Step_MIN; s <= v1::Step_MAX; ++s) runner_.Resume(static_cast<Step>(s));
    daemon_.reset();
  }

  v1::ApplyUpdateRequest ApplyRequest() {
    v1::ApplyUpdateRequest r;
    r.mutable_image()->set_image_bytes(TestImage());
    return r;
  }
  grpc::Status Apply(const v1::ApplyUpdateRequest& r, v1::Operation* op) {
    grpc::ClientContext ctx;
    return stub_->ApplyUpdate(&ctx, r, op);
  }
  grpc::Status Inspect(const v1::InspectImageRequest& r, v1::InspectImageResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->InspectImage(&ctx, r, resp);
  }
  std::vector<v1::OperationEvent> WatchAll(const std::string& name, grpc::Status* status) {
    grpc::ClientContext ctx;
    v1::WatchOperationRequest req;
    req.set_name(name);
    auto reader = stub_->WatchOperation(&ctx, req);
    std::vector<v1::OperationEvent> events;
    v1::OperationEvent e;
    while (reader->Read(&e)) events.push_back(e);
    *status = reader->Finish();
    return events;
  }
  // The state an operation ended in, from a watch to its end.
  v1::OperationState FinalState(const std::string& name) {
    grpc::Status st;
    std::vector<v1::OperationEvent> events = WatchAll(name, &st);
    return events.empty() ? v1::OPERATION_STATE_UNSPECIFIED : events.back().final_state().state();
  }
  // An apply the runner holds before `step` until Resume(step).
  v1::Operation ApplyPausedAt(Step step) {
    runner_.PauseAt(step);
    v1::Operation op;
    EXPECT_TRUE(Apply(ApplyRequest(), &op).ok());
    EXPECT_TRUE(runner_.WaitUntilPausedAt(step, absl::Seconds(30)));
    return op;
  }
  v1::Operation Get(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetOperationRequest req;
    req.set_name(name);
    v1::Operation op;
    EXPECT_TRUE(stub_->GetOperation(&ctx, req, &op).ok());
    return op;
  }
  grpc::Status Cancel(const std::string& name, v1::Operation* op) {
    grpc::ClientContext ctx;
    v1::CancelOperationRequest req;
    req.set_name(name);
    return stub_->CancelOperation(&ctx, req, op);
  }

  std::string dir_;
  std::string images_;  // the daemon's only image root
  DaemonOptions options_;
  FakeUpdateRunner runner_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<v1::UcodeService::Stub> stub_;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_API_SERVICE_TEST_FIXTURE_H_
