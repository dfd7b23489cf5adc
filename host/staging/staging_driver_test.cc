// Every mailbox behaviour, driven end to end through the driver on an emulated host.
#include "host/staging/staging_driver.h"

#include <atomic>
#include <cstring>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"

namespace ucode::staging {
namespace {

using platform::EmulatedPlatform;
using platform::MailboxBehavior;
using platform::MailboxFault;
using platform::MailboxModel;
using platform::MailboxStats;

std::vector<uint8_t> Image(size_t data_size = 40 * 1024 - microcode::kHeaderSize) {
  auto image = microcode::GenerateImage({.data_size = data_size});
  EXPECT_TRUE(image.ok()) << image.status();
  return *image;
}

struct StagingRun {
  std::unique_ptr<EmulatedPlatform> platform;
  StagingReport report;
};

StagingRun StageWith(MailboxBehavior behavior, const std::vector<uint8_t>& image,
              StagingOptions options = {}) {
  // Package 0 stays normal.
  auto p = EmulatedPlatform::Create({.packages = 2, .mailbox_by_package = {{1, behavior}}});
  EXPECT_TRUE(p.ok());
  StagingRun run{std::move(*p), {}};
  run.report = StageAllPackages(*run.platform, image, options);
  return run;
}

TEST(StagingDriver, NormalStagesEveryPackageInParallel) {
  const auto image = Image();
  absl::Mutex mu;
  std::vector<StagingProgress> events;
  StagingRun run = StageWith({}, image, {.progress = [&](const StagingProgress& p) {
    absl::MutexLock lock(&mu);
    events.push_back(p);
  }});
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  ASSERT_EQ(run.report.packages.size(), 2u);
  for (int pkg = 0; pkg < 2; ++pkg) {
    const PackageStaging& r = run.report.packages[pkg];
    EXPECT_EQ(r.package, pkg);
    EXPECT_EQ(r.cpu, pkg * 4);
    EXPECT_EQ(r.mailbox_addr, 0xfd000000u + pkg * 0x1000u);
    EXPECT_EQ(r.bytes_sent, image.size());
    EXPECT_EQ(r.transactions, 10);  // 40 KiB in 4 KiB chunks
    EXPECT_EQ(r.retransmits, 0);
    EXPECT_TRUE(run.platform->mailbox(pkg).HoldsStagedImage(image));
    EXPECT_EQ(run.platform->mailbox(pkg).stats().protocol_errors, 0u);
  }
  EXPECT_EQ(events.size(), 20u);
  int done = 0;
  for (const StagingProgress& e : events) done += e.done ? 1 : 0;
  EXPECT_EQ(done, 2);
}

// Cancel is honoured inside the transfer, between transactions: the package stops,
// says where, and its mailbox is left reset rather than holding half an image.
TEST(StagingDriver, CancelStopsBetweenTransactions) {
  const auto image = Image();
  std::atomic<int> chunks{0};
  StagingRun run =
      StageWith({}, image,
                {.parallel = false,
                 .progress = [&](const StagingProgress&) { chunks.fetch_add(1); },
                 .cancelled = [&] { return chunks.load() >= 3; }});
  ASSERT_EQ(run.report.packages.size(), 2u);
  for (const PackageStaging& r : run.report.packages) {
    EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled) << r.status;
    EXPECT_FALSE(run.platform->mailbox(r.package).HoldsStagedImage(image));
  }
  EXPECT_EQ(run.report.packages[0].transactions, 3);
  EXPECT_EQ(run.report.packages[1].transactions, 0);
  EXPECT_NE(run.report.packages[0].status.message().find("after 3 transactions"),
            absl::string_view::npos)
      << run.report.packages[0].status;
}

// A device that never answers holds a transaction for up to 10 s: cancel ends the wait.
TEST(StagingDriver, CancelEndsTheWaitForASlowDevice) {
  const auto image = Image();
  StagingOptions options;
  options.parallel = false;
  // Package 0 (normal) checks once per transaction, 10 times; package 1 once before its
  // first chunk; the next check is inside the wait for READY.
  std::atomic<int> checks{0};
  options.cancelled = [&] { return checks.fetch_add(1) >= 11; };
  StagingRun run = StageWith({.fault = MailboxFault::kNeverReady, .at = 0}, image, options);
  EXPECT_TRUE(run.report.packages[0].staged()) << run.report.packages[0].status;
  const PackageStaging& r = run.report.packages[1];
  EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled) << r.status;
  EXPECT_NE(r.status.message().find("in flight"), absl::string_view::npos) << r.status;
}

TEST(StagingDriver, OddSizedLastChunk) {
  const auto image = Image(5 * 1024 - microcode::kHeaderSize);  // 5 KiB: 4 KiB + 1 KiB
  StagingRun run = StageWith({}, image);
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  EXPECT_EQ(run.report.packages[1].transactions, 2);
}

TEST(StagingDriver, RepeatChunkIsRetransmitted) {
  const auto image = Image();
  StagingRun run = StageWith({.fault = MailboxFault::kRepeatChunk, .at = 3, .count = 2}, image);
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  const PackageStaging& r = run.report.packages[1];
  EXPECT_EQ(r.retransmits, 2);
  EXPECT_EQ(r.transactions, 12);
  EXPECT_EQ(r.bytes_sent, image.size() + 2 * 4096);
}

TEST(StagingDriver, RepeatChunkBeyondTheCapFails) {
  const auto image = Image();
  StagingRun run = StageWith({.fault = MailboxFault::kRepeatChunk, .at = 0, .count = 100}, image,
                             {.max_chunk_retransmits = 3});
  EXPECT_TRUE(run.report.packages[0].staged());
  const PackageStaging& r = run.report.packages[1];
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(r.status.message(),
            "package 1: chunk at offset 0x0 requested 5 times, retransmit cap 3");
  EXPECT_FALSE(run.platform->mailbox(1).HoldsStagedImage(image));
  EXPECT_EQ(run.platform->mailbox(1).staged_size(), 0u);
}

TEST(StagingDriver, RestartFromZeroWithinBudget) {
  const auto image = Image();
  StagingRun run = StageWith({.fault = MailboxFault::kRestartFromZero, .at = 4, .count = 1}, image);
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  EXPECT_EQ(run.report.packages[1].retransmits, 5);
  EXPECT_EQ(run.report.packages[1].bytes_sent, image.size() + 5 * 4096);
}

TEST(StagingDriver, RestartsExhaustTheTwiceImageBudget) {
  const auto image = Image();
  // Each restart after 8 chunks costs 32 KiB: the second one passes 2 x 40 KiB.
  StagingRun run = StageWith({.fault = MailboxFault::kRestartFromZero, .at = 7, .count = 5}, image);
  const PackageStaging& r = run.report.packages[1];
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
  EXPECT_NE(r.status.message().find("transfer budget exhausted"), std::string::npos) << r.status;
  EXPECT_LE(r.bytes_sent, 2 * image.size());
  EXPECT_FALSE(run.platform->mailbox(1).HoldsStagedImage(image));
}

TEST(StagingDriver, StatusErrorFailsThePackage) {
  const auto image = Image();
  StagingRun run = StageWith({.fault = MailboxFault::kStatusError, .at = 2}, image);
  const PackageStaging& r = run.report.packages[1];
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(r.status.message(),
            "package 1: mailbox STATUS.ERROR (0x80000004) for chunk at offset 0x2000");
  EXPECT_EQ(run.report.staged_count(), 1);
  EXPECT_FALSE(run.platform->mailbox(1).HoldsStagedImage(image));
}

TEST(StagingDriver, ResponseErrorBit) {
  StagingRun run = StageWith({.fault = MailboxFault::kResponseError, .at = 1}, Image());
  EXPECT_EQ(run.report.packages[1].status.message(),
            "package 1: response status 0x4 has the error bit (chunk at 0x1000)");
}

TEST(StagingDriver, WrongResponseHeader) {
  StagingRun run = StageWith({.fault = MailboxFault::kBadResponseHeader, .at = 0}, Image());
  EXPECT_EQ(run.report.packages[1].status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(run.report.packages[1].status.message(),
            "package 1: response header 0x00000005000b8086, expected 0x00000004000b8086 (chunk at "
            "0x0)");
}

TEST(StagingDriver, OffsetPastTheEnd) {
  StagingRun run = StageWith({.fault = MailboxFault::kOffsetPastEnd, .at = 3}, Image());
  EXPECT_EQ(run.report.packages[1].status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(run.report.packages[1].status.message(),
            "package 1: response offset 0xb000 beyond image end 0xa000");
}

TEST(StagingDriver, NeverReadyTimesOut) {
  StagingRun run = StageWith({.fault = MailboxFault::kNeverReady, .at = 5}, Image(),
                             {.transaction_timeout = absl::Milliseconds(20)});
  EXPECT_EQ(run.report.packages[1].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(run.report.packages[1].status.message(),
            "package 1: mailbox not READY 20ms after GO for chunk at offset 0x5000");
  EXPECT_TRUE(run.report.packages[0].staged());
}

TEST(StagingDriver, SlowDeviceStillStages) {
  const auto image = Image(8 * 1024 - microcode::kHeaderSize);
  StagingRun run = StageWith({.transaction_delay = absl::Milliseconds(2)}, image);
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  EXPECT_TRUE(run.platform->mailbox(1).HoldsStagedImage(image));
}

TEST(StagingDriver, AccessCostIsChargedPerRegisterAccess) {
  const auto image = Image(8 * 1024 - microcode::kHeaderSize);
  StagingRun run = StageWith({.access_cost = absl::Nanoseconds(100)}, image);
  ASSERT_TRUE(run.report.all_staged());
  // 2 chunks: per chunk 4 header/command writes + 1024 data writes + GO + >=1 status read
  // + 4 reads and 4 acknowledgements, plus the initial ABORT.
  const MailboxStats stats = run.platform->mailbox(1).stats();
  EXPECT_GE(stats.register_accesses, 1u + 2 * (4 + 1024 + 1 + 1 + 8));
  // Every access is charged (paid at GO and at the last acknowledgement), none twice.
  EXPECT_EQ(stats.charged_access_time,
            absl::Nanoseconds(100) * static_cast<int64_t>(stats.register_accesses));
}

TEST(StagingDriver, AccessCostOfAFailedTransferIsPaidAtAbort) {
  const auto image = Image(8 * 1024 - microcode::kHeaderSize);
  StagingRun run = StageWith({.fault = MailboxFault::kStatusError,
                              .at = 1,
                              .access_cost = absl::Nanoseconds(100)},
                             image);
  ASSERT_FALSE(run.report.packages[1].staged());
  const MailboxStats stats = run.platform->mailbox(1).stats();
  EXPECT_EQ(stats.charged_access_time,
            absl::Nanoseconds(100) * static_cast<int64_t>(stats.register_accesses));
}

TEST(StagingDriver, CorruptImageIsRefusedByTheDeviceChecks) {
  auto image = Image();
  image[200] ^= 0xff;  // data checksum no longer sums to zero
  StagingRun run = StageWith({}, image);
  EXPECT_EQ(run.report.staged_count(), 0);
  EXPECT_EQ(run.report.packages[0].status.code(), absl::StatusCode::kAborted);
  EXPECT_NE(run.platform->mailbox(0).last_protocol_error().find("checksum"), std::string::npos)
      << run.platform->mailbox(0).last_protocol_error();
}

// Kernel get_totalsize(): datasize 0 means a 2048-byte image even if totalsize holds
// something else; the device sizes the transfer the same way.
TEST(StagingDriver, DatasizeZeroMeans2048Bytes) {
  auto image = microcode::GenerateImage({.legacy_layout = true});
  ASSERT_TRUE(image.ok());
  auto set32 = [&](size_t at, uint32_t v) { std::memcpy(image->data() + at, &v, 4); };
  auto get32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, image->data() + at, 4);
    return v;
  };
  set32(32, 0x1000);               // totalsize: ignored when datasize is 0
  set32(16, get32(16) - 0x1000);   // keep the header + data sum at zero
  ASSERT_TRUE(microcode::ParseImage(*image).ok());
  StagingRun run = StageWith({}, *image);
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  EXPECT_EQ(run.platform->mailbox(1).staged_size(), 2048u);
}

// Kernel wait_for_transaction(): the first STATUS read comes one interval after GO, so
// READY left from the previous transaction is not taken for this one's.
TEST(StagingDriver, ReadyLeftFromThePreviousTransactionIsNotTakenForThisOne) {
  const auto image = Image();
  StagingRun run = StageWith({.stale_ready = absl::Microseconds(300)}, image);
  ASSERT_TRUE(run.report.all_staged()) << run.report.Summary();
  EXPECT_EQ(run.report.packages[1].transactions, 10);
  EXPECT_TRUE(run.platform->mailbox(1).HoldsStagedImage(image));
}

// A device that answers every GO at once with a scripted next offset.
class ScriptedMailbox : public platform::MmioWindow {
 public:
  explicit ScriptedMailbox(std::vector<uint32_t> offsets) : offsets_(std::move(offsets)) {}
  uint32_t Read32(uint32_t offset) override {
    if (offset == platform::kMboxStatusOffset) return platform::kMboxStatusReady;
    if (offset != platform::kMboxRdDataOffset || next_read_ >= response_.size()) return 0;
    return response_[next_read_];
  }
  void Write32(uint32_t offset, uint32_t value) override {
    if (offset == platform::kMboxRdDataOffset && value == 0) ++next_read_;
    if (offset == platform::kMboxControlOffset && value == platform::kMboxControlGo) {
      const uint32_t next = gos_ < offsets_.size() ? offsets_[gos_] : platform::kMboxOffsetEnd;
      ++gos_;
      response_ = {static_cast<uint32_t>(platform::kMboxResponseHeader),
                   static_cast<uint32_t>(platform::kMboxResponseHeader >> 32), next,
                   platform::kMboxResponseSuccess};
      next_read_ = 0;
    }
  }

 private:
  std::vector<uint32_t> offsets_;
  std::vector<uint32_t> response_;
  size_t gos_ = 0, next_read_ = 0;
};

TEST(StagingDriver, UnalignedOffsetFromTheDeviceIsRejected) {
  const auto image = Image();  // 0xa000 bytes
  struct Case {
    std::vector<uint32_t> offsets;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{1}, "package 0: response offset 0x1 is not a multiple of 4 (chunk at 0x0)"},
           {{0x1000, 0x2002}, "package 0: response offset 0x2002 is not a multiple of 4 (chunk at 0x1000)"},
           {{0x9ffd}, "package 0: response offset 0x9ffd is not a multiple of 4 (chunk at 0x0)"},
           {{0x9fff}, "package 0: response offset 0x9fff is not a multiple of 4 (chunk at 0x0)"},
       }) {
    ScriptedMailbox device(c.offsets);
    PackageStaging r;
    absl::Status s =
        StageThroughMailbox(device, image, {.poll_interval = absl::ZeroDuration()}, r);
    EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
    EXPECT_EQ(s.message(), c.error);
  }
}

TEST(StagingDriver, NoArchCapabilitiesMsrIsUnsupportedNotAnError) {
  auto p = EmulatedPlatform::Create({.arch_capabilities = false});
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(*StagingSupported(**p, 0));
  StagingReport report = StageAllPackages(**p, Image(), {});
  ASSERT_EQ(report.packages.size(), 2u);
  EXPECT_EQ(report.packages[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(report.packages[0].status.message().find("staging unsupported"), std::string::npos)
      << report.packages[0].status;
}

TEST(StagingDriver, NoStagingCapability) {
  auto p = EmulatedPlatform::Create({.staging = false});
  ASSERT_TRUE(p.ok());
  StagingReport report = StageAllPackages(**p, Image(), {});
  ASSERT_EQ(report.packages.size(), 2u);
  EXPECT_EQ(report.packages[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(report.staged_count(), 0);
}

TEST(StagingDriver, SequentialModeGivesTheSameResult) {
  const auto image = Image();
  StagingRun run = StageWith({}, image, {.parallel = false});
  EXPECT_TRUE(run.report.all_staged()) << run.report.Summary();
}

TEST(StagingDriver, DriverProtocolViolationsAreCaughtByTheModel) {
  MailboxModel model;
  // A request whose header size lies about the dwords written.
  model.Write32(platform::kMboxControlOffset, platform::kMboxControlAbort);
  const uint64_t header = platform::MboxHeader(16 + 64);
  model.Write32(platform::kMboxWrDataOffset, static_cast<uint32_t>(header));
  model.Write32(platform::kMboxWrDataOffset, static_cast<uint32_t>(header >> 32));
  model.Write32(platform::kMboxWrDataOffset, platform::kMboxCommandLoad);
  model.Write32(platform::kMboxWrDataOffset, 0);
  model.Write32(platform::kMboxWrDataOffset, 0x1234);
  model.Write32(platform::kMboxControlOffset, platform::kMboxControlGo);
  EXPECT_EQ(model.Read32(platform::kMboxStatusOffset),
            platform::kMboxStatusReady | platform::kMboxStatusError);
  EXPECT_EQ(model.last_protocol_error(), "mailbox header size 20 dwords but 5 dwords written");
}

}  // namespace
}  // namespace ucode::staging
