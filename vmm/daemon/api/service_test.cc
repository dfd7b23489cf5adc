// Every call of ucode.v1.UcodeService and its errors, in-process (no socket), with the
// fake runner.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "vmm/daemon/api/service_test_fixture.h"

namespace ucode::daemon {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, DescribeHostAndListGuests) {
  grpc::ClientContext c1;
  v1::Host host;
  ASSERT_TRUE(stub_->DescribeHost(&c1, v1::DescribeHostRequest(), &host).ok());
  EXPECT_EQ(host.platform_backend(), "fake");
  EXPECT_EQ(host.cpus_size(), 4);
  grpc::ClientContext c2;
  v1::ListGuestsResponse guests;
  ASSERT_TRUE(stub_->ListGuests(&c2, v1::ListGuestsRequest(), &guests).ok());
  EXPECT_EQ(guests.guests_size(), 2);
}

TEST_F(ServiceTest, FullApplyWatchSeesEveryEventInOrder) {
  v1::Operation op;
  ASSERT_TRUE(Apply(ApplyRequest(), &op).ok());
  EXPECT_EQ(op.name(), "operations/1");
  EXPECT_EQ(op.kind(), "apply");
  grpc::Status st;
  std::vector<v1::OperationEvent> events = WatchAll(op.name(), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<Step> steps;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), i + 1);
    EXPECT_EQ(events[i].operation(), op.name());
    if (steps.empty() || steps.back() != events[i].step()) steps.push_back(events[i].step());
  }
  EXPECT_THAT(steps, ::testing::ElementsAre(
                         v1::STEP_VALIDATED, v1::STEP_STAGING, v1::STEP_STAGED,
                         v1::STEP_PARKED, v1::STEP_ACTIVATED, v1::STEP_GUEST_VIEWS_SET,
                         v1::STEP_RELEASED, v1::STEP_VERIFIED, v1::STEP_AGENTS_NOTIFIED,
                         v1::STEP_DONE));
  EXPECT_EQ(events.size(), 10u + 2 * 3 - 1);  // 2 packages x 3 chunks of STEP_STAGING
  EXPECT_EQ(events.back().final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
  v1::Operation done = Get(op.name());
  EXPECT_TRUE(done.done());
  EXPECT_EQ(done.last_step(), v1::STEP_DONE);
  ASSERT_EQ(done.report().notes_size(), 1);
  EXPECT_THAT(done.report().notes(0), HasSubstr("fake runner"));
  // A watcher arriving after the end replays the same history.
  std::vector<v1::OperationEvent> again = WatchAll(op.name(), &st);
  ASSERT_EQ(again.size(), events.size());
  EXPECT_EQ(again.back().sequence(), events.back().sequence());
}

TEST_F(ServiceTest, SecondApplyIsAbortedNamingTheRunningOperation) {
  const v1::Operation first = ApplyPausedAt(v1::STEP_STAGED);
  v1::Operation second;
  grpc::Status st = Apply(ApplyRequest(), &second);
  EXPECT_EQ(st.error_code(), grpc::ABORTED);
  EXPECT_THAT(st.error_message(), HasSubstr(first.name()));
  grpc::ClientContext ctx;
  v1::StageImageRequest stage;
  stage.mutable_image()->set_image_bytes(TestImage());
  EXPECT_EQ(stub_->StageImage(&ctx, stage, &second).error_code(), grpc::ABORTED);
  runner_.Resume(v1::STEP_STAGED);
  ASSERT_EQ(FinalState(first.name()), v1::OPERATION_STATE_SUCCEEDED);
  // The slot is free as soon as DONE was seen.
  EXPECT_TRUE(Apply(ApplyRequest(), &second).ok());
}

TEST_F(ServiceTest, CancelHonouredBeforeRendezvous) {
  const v1::Operation op = ApplyPausedAt(v1::STEP_STAGED);
  v1::Operation after;
  ASSERT_TRUE(Cancel(op.name(), &after).ok());
  grpc::Status st;
  std::vector<v1::OperationEvent> events = WatchAll(op.name(), &st);
  EXPECT_EQ(events.back().final_state().state(), v1::OPERATION_STATE_CANCELLED);
  EXPECT_EQ(events.back().final_state().error().code(), grpc::CANCELLED);
  for (const auto& e : events) EXPECT_NE(e.step(), v1::STEP_PARKED);
  // Cancelling a finished operation is refused.
  EXPECT_EQ(Cancel(op.name(), &after).error_code(), grpc::FAILED_PRECONDITION);
}

TEST_F(ServiceTest, CancelRefusedOnceRendezvousBegan) {
  const v1::Operation op = ApplyPausedAt(v1::STEP_ACTIVATED);
  v1::Operation after;
  grpc::Status st = Cancel(op.name(), &after);
  EXPECT_EQ(st.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("rendezvous"));
  runner_.Resume(v1::STEP_ACTIVATED);
  EXPECT_EQ(FinalState(op.name()), v1::OPERATION_STATE_SUCCEEDED);
}

TEST_F(ServiceTest, RunnerFailureEndsOperationWithItsCode) {
  runner_.FailAt(v1::STEP_ACTIVATED, absl::FailedPreconditionError("host late load: cpu 3"));
  v1::Operation op;
  ASSERT_TRUE(Apply(ApplyRequest(), &op).ok());
  grpc::Status st;
  v1::Operation end = WatchAll(op.name(), &st).back().final_state();
  EXPECT_EQ(end.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(end.error().code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(end.error().message(), HasSubstr("cpu 3"));
  EXPECT_EQ(end.last_step(), v1::STEP_PARKED);
}

TEST_F(ServiceTest, ApplyValidation) {
  struct Case {
    std::function<void(v1::ApplyUpdateRequest&)> mutate;
    std::string check;
  };
  std::vector<Case> cases = {
      {[](auto& r) { r.clear_image(); }, "image: neither"},
      {[](auto& r) { r.mutable_image()->set_image_bytes("short"); }, "image:"},
      {[](auto& r) { r.set_mode(static_cast<v1::UpdateMode>(7)); }, "mode: 7"},
      {[](auto& r) { r.set_min_rev_policy(static_cast<v1::MinRevPolicy>(9)); },
       "min_rev_policy"},
      {[](auto& r) { r.set_park_deadline_us(60'000'000); }, "park_deadline_us"},
      {[](auto& r) { r.set_agent_timeout_ms(3'600'000); }, "agent_timeout_ms"},
      {[](auto& r) { r.add_guests("vm0"); r.add_guests("vm0"); }, "guests[1]"},
      {[](auto& r) { r.add_guests(""); }, "guests[0]: empty"},
      {[](auto& r) { r.set_request_id(std::string(200, 'x')); }, "request_id"},
      {[](auto& r) { r.mutable_image()->set_host_path("relative/path"); }, "absolute"},
      {[this](auto& r) { r.mutable_image()->set_host_path(images_ + "/nonexistent"); },
       "image.host_path"},
      {[](auto& r) { r.mutable_image()->set_host_path("/dev/zero"); }, "not beneath an image root"},
      {[this](auto& r) { r.mutable_image()->set_host_path(images_ + "/dir"); },
       "not a regular file"},
  };
  ASSERT_EQ(mkdir((images_ + "/dir").c_str(), 0700), 0);
  for (const Case& c : cases) {
    v1::ApplyUpdateRequest r = ApplyRequest();
    c.mutate(r);
    v1::Operation op;
    grpc::Status st = Apply(r, &op);
    EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT) << c.check;
    EXPECT_THAT(st.error_message(), HasSubstr(c.check));
  }
  EXPECT_EQ(runner_.applies(), 0);
}

TEST_F(ServiceTest, ImageSizeLimitCheckedBeforeReading) {
  options_.limits.max_image_bytes = 4096;
  Restart();
  std::string path = images_ + "/big.bin";
  std::ofstream(path) << std::string(8192, '\0');
  v1::ApplyUpdateRequest r = ApplyRequest();
  r.mutable_image()->set_host_path(path);
  v1::Operation op;
  grpc::Status st = Apply(r, &op);
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("8192 bytes, over the limit of 4096"));
  r.mutable_image()->set_image_bytes(std::string(8192, '\0'));
  st = Apply(r, &op);
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("over the limit"));
}

TEST_F(ServiceTest, ApplyFromHostPath) {
  std::string path = images_ + "/ucode.bin";
  std::ofstream(path) << TestImage();
  v1::ApplyUpdateRequest r;
  r.mutable_image()->set_host_path(path);
  v1::Operation op;
  ASSERT_TRUE(Apply(r, &op).ok());
  EXPECT_EQ(FinalState(op.name()), v1::OPERATION_STATE_SUCCEEDED);
}

TEST_F(ServiceTest, RequestIdMakesApplyIdempotent) {
  v1::ApplyUpdateRequest r = ApplyRequest();
  r.set_request_id("retry-1");
  v1::Operation a, b;
  ASSERT_TRUE(Apply(r, &a).ok());
  ASSERT_TRUE(Apply(r, &b).ok());
  EXPECT_EQ(a.name(), b.name());
  FinalState(a.name());  // the runner has run by the time DONE is seen
  ASSERT_TRUE(Apply(r, &b).ok());
  EXPECT_EQ(b.name(), a.name());
  EXPECT_EQ(runner_.applies(), 1);
}

TEST_F(ServiceTest, InspectImage) {
  v1::InspectImageRequest r;
  std::string image = TestImage();
  r.mutable_image()->set_image_bytes(image + image);
  v1::InspectImageResponse resp;
  ASSERT_TRUE(Inspect(r, &resp).ok());
  ASSERT_EQ(resp.images_size(), 2);
  EXPECT_TRUE(resp.images(0).valid());
  EXPECT_EQ(resp.images(0).signature(), 0x806f8u);
  EXPECT_EQ(resp.images(1).offset(), image.size());
  EXPECT_GE(resp.selected_index(), 0);
  // The same revision twice: the first wins (as the kernel scans), the second is eligible.
  EXPECT_EQ(resp.images(resp.selected_index()).verdict(), v1::SELECTION_VERDICT_SELECTED);
  EXPECT_EQ(resp.images(1 - resp.selected_index()).verdict(), v1::SELECTION_VERDICT_SUPERSEDED);
  // Another CPU: nothing selected, with a reason per image.
  r.mutable_cpu()->set_signature(0x50657);
  ASSERT_TRUE(Inspect(r, &resp).ok());
  EXPECT_EQ(resp.selected_index(), -1);
  EXPECT_EQ(resp.selection_reasons_size(), 2);
  EXPECT_EQ(resp.images(0).verdict(), v1::SELECTION_VERDICT_NO_MATCH);
  // A corrupted member is reported, not an RPC error.
  image[20] ^= 0xff;  // loader_version
  r.mutable_image()->set_image_bytes(image);
  ASSERT_TRUE(Inspect(r, &resp).ok());
  ASSERT_GE(resp.images_size(), 1);
  EXPECT_FALSE(resp.images(0).valid());
  EXPECT_FALSE(resp.images(0).error().empty());
  r.clear_image();
  EXPECT_EQ(Inspect(r, &resp).error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(ServiceTest, StageImage) {
  grpc::ClientContext ctx;
  v1::StageImageRequest r;
  r.mutable_image()->set_image_bytes(TestImage());
  v1::Operation op;
  ASSERT_TRUE(stub_->StageImage(&ctx, r, &op).ok());
  EXPECT_EQ(op.kind(), "stage");
  grpc::Status st;
  auto events = WatchAll(op.name(), &st);
  EXPECT_EQ(events.back().final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
  for (const auto& e : events) EXPECT_NE(e.step(), v1::STEP_PARKED);
}

// Guests whose view lags the host: a journaled operation of kind "sync" that parks them
// (BeginStep(STEP_PARKED) like an apply), sets the views and releases; requests checked.
TEST_F(ServiceTest, SyncGuestViews) {
  grpc::ClientContext ctx;
  v1::SyncGuestViewsRequest r;
  v1::Operation op;
  ASSERT_TRUE(stub_->SyncGuestViews(&ctx, r, &op).ok());
  EXPECT_EQ(op.kind(), "sync");
  grpc::Status st;
  auto events = WatchAll(op.name(), &st);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
  std::vector<v1::Step> steps;
  for (const auto& e : events) steps.push_back(e.step());
  EXPECT_NE(std::find(steps.begin(), steps.end(), v1::STEP_GUEST_VIEWS_SET), steps.end());
  EXPECT_NE(std::find(steps.begin(), steps.end(), v1::STEP_RELEASED), steps.end());
  EXPECT_EQ(Get(op.name()).kind(), "sync");

  v1::SyncGuestViewsRequest bad;
  bad.add_guests("vm0");
  bad.add_guests("vm0");
  grpc::ClientContext c2;
  grpc::Status refused = stub_->SyncGuestViews(&c2, bad, &op);
  EXPECT_EQ(refused.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("named twice"), std::string::npos);
  bad.clear_guests();
  bad.set_park_deadline_us(uint64_t{1} << 62);
  grpc::ClientContext c3;
  EXPECT_EQ(stub_->SyncGuestViews(&c3, bad, &op).error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(ServiceTest, GetAndListErrorsAndPaging) {
  for (const char* bad : {"", "operations/", "operations/x", "ops/1", "operations/-3"}) {
    grpc::ClientContext ctx;
    v1::GetOperationRequest req;
    req.set_name(bad);
    v1::Operation op;
    EXPECT_EQ(stub_->GetOperation(&ctx, req, &op).error_code(), grpc::INVALID_ARGUMENT) << bad;
  }
  {
    grpc::ClientContext ctx;
    v1::GetOperationRequest req;
    req.set_name("operations/99");
    v1::Operation op;
    EXPECT_EQ(stub_->GetOperation(&ctx, req, &op).error_code(), grpc::NOT_FOUND);
    grpc::Status st;
    WatchAll("operations/99", &st);
    EXPECT_EQ(st.error_code(), grpc::NOT_FOUND);
    EXPECT_EQ(Cancel("operations/99", &op).error_code(), grpc::NOT_FOUND);
  }
  for (int i = 0; i < 5; ++i) {
    v1::Operation op;
    ASSERT_TRUE(Apply(ApplyRequest(), &op).ok());
    grpc::Status st;
    WatchAll(op.name(), &st);
  }
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListOperationsRequest req;
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ListOperationsResponse resp;
    ASSERT_TRUE(stub_->ListOperations(&ctx, req, &resp).ok());
    for (const auto& op : resp.operations()) names.push_back(op.name());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(names, ::testing::ElementsAre("operations/5", "operations/4", "operations/3",
                                            "operations/2", "operations/1"));
  for (auto [size, tok] : std::vector<std::pair<int, std::string>>{{-1, ""}, {2, "garbage"}}) {
    grpc::ClientContext ctx;
    v1::ListOperationsRequest req;
    req.set_page_size(size);
    req.set_page_token(tok);
    v1::ListOperationsResponse resp;
    EXPECT_EQ(stub_->ListOperations(&ctx, req, &resp).error_code(), grpc::INVALID_ARGUMENT);
  }
}

TEST_F(ServiceTest, OperationsSurviveRestartAndIdsContinue) {
  v1::Operation op;
  ASSERT_TRUE(Apply(ApplyRequest(), &op).ok());
  grpc::Status st;
  WatchAll(op.name(), &st);
  Restart();
  v1::Operation again = Get(op.name());
  EXPECT_EQ(again.state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(again.last_step(), v1::STEP_DONE);
  auto events = WatchAll(op.name(), &st);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
  ASSERT_TRUE(Apply(ApplyRequest(), &op).ok());
  EXPECT_EQ(op.name(), "operations/2");
  EXPECT_TRUE(runner_.confirmed().empty());
}

}  // namespace
}  // namespace ucode::daemon
