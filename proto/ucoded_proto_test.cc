// The generated API compiles, links, and round-trips through the wire format.
#include "gtest/gtest.h"
#include "proto/json.h"
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

// The report's JSON keeps today's keys and prints zeros, but an unmeasured revision
// (an unset optional) is absent, and the JSON parses back into the same message.
TEST(UcodedProto, ReportJsonPrintsZerosButNotUnsetOptionals) {
  UpdateReport r;
  r.set_operation("op");
  VmReport* vm = r.add_vms();
  vm->set_name("vm0");
  vm->set_revision_after(0x2b);
  std::string json = ProtoJson(r);
  EXPECT_NE(json.find("\"host_touched\":false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"revision_after\":43"), std::string::npos) << json;
  EXPECT_EQ(json.find("revision_before"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"staging\""), std::string::npos) << json;
  UpdateReport back;
  ASSERT_TRUE(ParseProtoJson(json, back).ok());
  EXPECT_EQ(back.SerializeAsString(), r.SerializeAsString());
  EXPECT_FALSE(ParseProtoJson("{\"nope\":1}", back).ok());
}

}  // namespace
}  // namespace ucode::v1
