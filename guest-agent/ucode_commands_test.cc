#include "guest-agent/ucode_commands.h"

#include <algorithm>
#include <string>

#include "gtest/gtest.h"
#include "guest-agent/session.h"
#include "guest-agent/test_util.h"

namespace ucode_agent {
namespace {

using testing::TempDir;

class UcodeCommandsTest : public ::testing::Test {
 protected:
  UcodeCommandsTest() {
    config_.prepare_dir = tmp_.path() + "/prepare.d";
    config_.complete_dir = tmp_.path() + "/complete.d";
    config_.state_dir = tmp_.path() + "/run/ucode-agent";
    config_.cpuinfo_path = tmp_.path() + "/cpuinfo";
    AddProtocolCommands(&table_, "test");
    AddUcodeCommands(&table_, config_);
  }

  // Sends one command line and returns the parsed reply.
  json::Value Call(const std::string& line) {
    std::string out;
    session_.Feed(line + "\n", &out);
    EXPECT_FALSE(out.empty());
    json::ParseError e;
    auto v = json::Parse(out, json::Limits{}, &e);
    EXPECT_TRUE(v) << out;
    return v ? *v : json::Value();
  }
  static const json::Value& Ret(const json::Value& reply) {
    static const json::Value kNull;
    const json::Value* r = reply.Find("return");
    EXPECT_NE(r, nullptr) << json::Serialize(reply);
    return r ? *r : kNull;
  }
  static std::string Desc(const json::Value& reply) {
    const json::Value* e = reply.Find("error");
    return e ? e->Find("desc")->as_string() : "";
  }

  TempDir tmp_;
  UcodeConfig config_;
  CommandTable table_;
  Session session_{&table_};
};

TEST_F(UcodeCommandsTest, PrepareWithoutHooksIsReady) {
  json::Value r = Ret(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":1000}})"));
  EXPECT_EQ(r.Find("status")->as_string(), "ready");
  EXPECT_TRUE(r.Find("hooks")->as_array().empty());
}

TEST_F(UcodeCommandsTest, PrepareRunsHooksWithFacts) {
  tmp_.Write("prepare.d/10-check",
             "#!/bin/sh\n[ \"$UCODE_PHASE\" = prepare ] && [ \"$UCODE_DEADLINE_MS\" = 2000 ] &&"
             " [ \"$UCODE_NEW_REVISION\" = 0x2b000639 ]\n",
             0755);
  json::Value r = Ret(Call(
      R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":2000,"new-revision":721421881}})"));
  EXPECT_EQ(r.Find("status")->as_string(), "ready") << json::Serialize(r);
  ASSERT_EQ(r.Find("hooks")->as_array().size(), 1u);
}

TEST_F(UcodeCommandsTest, PrepareReportsTheFailingHook) {
  tmp_.Write("prepare.d/10-ok", "#!/bin/sh\n", 0755);
  tmp_.Write("prepare.d/20-db", "#!/bin/sh\necho 'replica lagging'\nexit 4\n", 0755);
  json::Value r = Ret(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":5000}})"));
  EXPECT_EQ(r.Find("status")->as_string(), "failed");
  EXPECT_EQ(r.Find("hook")->as_string(), "20-db");
  EXPECT_EQ(r.Find("reason")->as_string(), "exit status 4");
  EXPECT_EQ(r.Find("output")->as_string(), "replica lagging\n");
}

TEST_F(UcodeCommandsTest, PrepareTimesOut) {
  tmp_.Write("prepare.d/10-slow", "#!/bin/sh\nsleep 1000\n", 0755);
  json::Value r = Ret(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":200}})"));
  EXPECT_EQ(r.Find("status")->as_string(), "failed");
  EXPECT_EQ(r.Find("hook")->as_string(), "10-slow");
  EXPECT_EQ(r.Find("reason")->as_string(), "deadline of 200 ms reached; killed");
}

TEST_F(UcodeCommandsTest, PrepareArgumentErrorsNameTheArgument) {
  EXPECT_EQ(Desc(Call(R"({"execute":"guest-ucode-prepare"})")), "Parameter 'deadline-ms' is missing");
  EXPECT_EQ(Desc(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":"5"}})")),
            "Invalid parameter type for 'deadline-ms', expected: integer");
  EXPECT_EQ(Desc(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":0}})")),
            "Parameter 'deadline-ms' expects a value in [1, 600000]");
  EXPECT_EQ(Desc(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":1.5}})")),
            "Invalid parameter type for 'deadline-ms', expected: integer");
  EXPECT_EQ(
      Desc(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":5,"cmd":"rm -rf /"}})")),
      "Parameter 'cmd' is unexpected");
}

TEST_F(UcodeCommandsTest, CompleteRecordsAtomicallyAndRunsHooks) {
  const std::string seen = tmp_.path() + "/seen";
  tmp_.Write("complete.d/10-log",
             "#!/bin/sh\necho \"$UCODE_OLD_REVISION $UCODE_NEW_REVISION $UCODE_HOST $UCODE_MODE\" > " +
                 seen + "\ncat \"$UCODE_STATE_DIR/last-complete.json\" >> " + seen + "\n",
             0755);
  json::Value r = Ret(Call(
      R"({"execute":"guest-ucode-complete","arguments":{"old-revision":721421880,)"
      R"("new-revision":721421881,"host":"hv-7.example","mode":"staged"}})"));
  EXPECT_EQ(r.Find("status")->as_string(), "recorded") << json::Serialize(r);
  std::string hook_view = tmp_.Read("seen");
  EXPECT_EQ(hook_view.rfind("0x2b000638 0x2b000639 hv-7.example staged\n", 0), 0u) << hook_view;
  // The hook already saw the record.
  EXPECT_NE(hook_view.find("\"new-revision\":721421881"), std::string::npos);
  // No temporary file is left behind.
  EXPECT_EQ(tmp_.Read("run/ucode-agent/.last-complete.json.tmp"), "");

  json::Value status = Ret(Call(R"({"execute":"guest-ucode-status"})"));
  const json::Value* rec = status.Find("last-complete");
  ASSERT_NE(rec, nullptr) << json::Serialize(status);
  EXPECT_EQ(rec->Find("old-revision")->as_int(), 721421880);
  EXPECT_EQ(rec->Find("new-revision")->as_int(), 721421881);
  EXPECT_EQ(rec->Find("host")->as_string(), "hv-7.example");
  EXPECT_EQ(rec->Find("mode")->as_string(), "staged");
  EXPECT_EQ(rec->Find("status")->as_string(), "recorded");
}

TEST_F(UcodeCommandsTest, CompleteHookFailureIsReportedButRecorded) {
  tmp_.Write("complete.d/10-bad", "#!/bin/sh\nexit 2\n", 0755);
  tmp_.Write("complete.d/20-good", "#!/bin/sh\n", 0755);
  json::Value r = Ret(Call(
      R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2}})"));
  EXPECT_EQ(r.Find("status")->as_string(), "failed");
  EXPECT_EQ(r.Find("hook")->as_string(), "10-bad");
  EXPECT_EQ(r.Find("hooks")->as_array().size(), 2u);  // every complete hook runs
  json::Value status = Ret(Call(R"({"execute":"guest-ucode-status"})"));
  EXPECT_EQ(status.Find("last-complete")->Find("new-revision")->as_int(), 2);
}

TEST_F(UcodeCommandsTest, CompleteArgumentErrors) {
  EXPECT_EQ(Desc(Call(R"({"execute":"guest-ucode-complete","arguments":{"new-revision":2}})")),
            "Parameter 'old-revision' is missing");
  EXPECT_EQ(Desc(Call(
                R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":4294967296}})")),
            "Parameter 'new-revision' expects a value in [0, 4294967295]");
  EXPECT_EQ(Desc(Call(
                R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2,"host":7}})")),
            "Invalid parameter type for 'host', expected: string");
  EXPECT_EQ(Desc(Call(
                R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2,"mode":"a\nb"}})")),
            "Parameter 'mode' contains a control character");
  // Nothing was recorded by the rejected calls.
  EXPECT_EQ(Ret(Call(R"({"execute":"guest-ucode-status"})")).Find("last-complete"), nullptr);
}

// The meter runs from prepare to complete. A host pause cannot be made here, so the test
// checks the shape and the invariants (max = max(baseline, pause), samples counted), not
// values; tests/libvirt_freeze measures real pauses.
TEST_F(UcodeCommandsTest, PrepareWithMeasureStartsMeterAndCompleteReturnsBlackout) {
  json::Value p = Ret(Call(
      R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":1000,"measure-ms":60000}})"));
  EXPECT_EQ(p.Find("status")->as_string(), "ready");
  ASSERT_NE(p.Find("measuring"), nullptr);
  json::Value c = Ret(Call(
      R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2}})"));
  const json::Value* b = c.Find("blackout");
  ASSERT_NE(b, nullptr) << json::Serialize(c);
  EXPECT_EQ(b->Find("clock")->as_string(), "CLOCK_MONOTONIC");
  EXPECT_EQ(b->Find("stopped-by")->as_string(), "complete");
  EXPECT_GT(b->Find("samples")->as_int(), 0);
  const int64_t max = b->Find("max-gap-ns")->as_int();
  EXPECT_EQ(max, std::max(b->Find("pause-gap-ns")->as_int(), b->Find("baseline-gap-ns")->as_int()));
  // guest-ucode-status returns it too, in the complete record.
  json::Value s = Ret(Call(R"({"execute":"guest-ucode-status"})"));
  ASSERT_NE(s.Find("last-complete"), nullptr);
  EXPECT_NE(s.Find("last-complete")->Find("blackout"), nullptr);
  // A complete without a measuring prepare has no blackout.
  json::Value again = Ret(Call(
      R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2}})"));
  EXPECT_EQ(again.Find("blackout"), nullptr);
}

TEST_F(UcodeCommandsTest, MeasureStopsAtItsLimit) {
  Ret(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":1000,"measure-ms":1}})"));
  json::Value c = Ret(Call(
      R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2}})"));
  ASSERT_NE(c.Find("blackout"), nullptr);
  EXPECT_EQ(c.Find("blackout")->Find("stopped-by")->as_string(), "limit");
  EXPECT_NE(Desc(Call(R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":1000,"measure-ms":0}})")),
            "");
}

TEST_F(UcodeCommandsTest, StatusReportsCpuinfoRevision) {
  tmp_.Write("cpuinfo",
             "processor\t: 0\nmodel name\t: x\nmicrocode\t: 0x2b000639\n\n"
             "processor\t: 1\nmicrocode\t: 0x2b000639\n\n");
  json::Value s = Ret(Call(R"({"execute":"guest-ucode-status"})"));
  EXPECT_EQ(s.Find("microcode-revision")->as_int(), 0x2b000639);
  EXPECT_EQ(s.Find("microcode-cpus")->as_int(), 2);
  EXPECT_TRUE(s.Find("microcode-consistent")->as_bool());
  EXPECT_EQ(s.Find("last-complete"), nullptr);
}

TEST_F(UcodeCommandsTest, StatusWithoutCpuinfoFieldOmitsRevision) {
  tmp_.Write("cpuinfo", "processor\t: 0\n");
  json::Value s = Ret(Call(R"({"execute":"guest-ucode-status"})"));
  EXPECT_EQ(s.Find("microcode-revision"), nullptr);
}

TEST_F(UcodeCommandsTest, StatusReportsCorruptRecord) {
  tmp_.Write("run/ucode-agent/last-complete.json", "{not json");
  json::Value s = Ret(Call(R"({"execute":"guest-ucode-status"})"));
  ASSERT_NE(s.Find("errors"), nullptr);
  EXPECT_EQ(s.Find("last-complete"), nullptr);
}

}  // namespace
}  // namespace ucode_agent
