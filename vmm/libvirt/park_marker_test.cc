#include "vmm/libvirt/park_marker.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/libvirt/connection.h"

namespace ucode::libvirt {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

// libvirt's mock driver keeps live metadata on its running domain "test".
TEST(ParkMarkerTest, SetReadClearOnALiveDomain) {
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open("test:///default");
  ASSERT_TRUE(conn.ok()) << conn.status();
  absl::StatusOr<Domain> d = (*conn)->LookupDomain("test");
  ASSERT_TRUE(d.ok()) << d.status();

  EXPECT_EQ(*ReadParkMarker(*d), std::nullopt);
  ASSERT_TRUE(ClearParkMarker(*d).ok()) << "clearing an absent marker is not an error";

  ASSERT_TRUE(SetParkMarker(*d, "operations/7").ok());
  absl::StatusOr<std::optional<std::string>> m = ReadParkMarker(*d);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(*m, Optional(std::string("operations/7")));

  ASSERT_TRUE(SetParkMarker(*d, "operations/8").ok());
  EXPECT_THAT(*ReadParkMarker(*d), Optional(std::string("operations/8")));

  ASSERT_TRUE(ClearParkMarker(*d).ok());
  EXPECT_EQ(*ReadParkMarker(*d), std::nullopt);
}

TEST(ParkMarkerTest, RefusesAnOperationNameThatWouldNeedEscaping) {
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open("test:///default");
  ASSERT_TRUE(conn.ok()) << conn.status();
  absl::StatusOr<Domain> d = (*conn)->LookupDomain("test");
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = SetParkMarker(*d, "op\"/><x");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("test"));
}

}  // namespace
}  // namespace ucode::libvirt
