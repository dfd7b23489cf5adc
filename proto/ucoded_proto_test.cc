// The generated API compiles, links, and round-trips through the wire format.
#include "gtest/gtest.h"
#include "proto/ucode/v1/ucoded.grpc.pb.h"
#include "proto/ucode/v1/ucoded.pb.h"

namespace ucode::v1 {
namespace {

TEST(UcodedProto, OperationRoundTrips) {
  Operation op;
  op.set_name("operations/42");
  op.set_state(OPERATION_STATE_RUNNING);
  op.set_last_step(STEP_PARKED);
  std::string wire = op.SerializeAsString();
  Operation back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.name(), "operations/42");
  EXPECT_EQ(back.last_step(), STEP_PARKED);
}

TEST(UcodedProto, EnumsHaveUnspecifiedZero) {
  EXPECT_EQ(UPDATE_MODE_UNSPECIFIED, 0);
  EXPECT_EQ(OPERATION_STATE_UNSPECIFIED, 0);
  EXPECT_EQ(STEP_UNSPECIFIED, 0);
  EXPECT_NE(UcodeService::service_full_name(), nullptr);
}

}  // namespace
}  // namespace ucode::v1
