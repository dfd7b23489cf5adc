#include "guest-agent/ucode_commands.h"

#include <cstdio>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>

#include "guest-agent/args.h"
#include "guest-agent/blackout_meter.h"
#include "guest-agent/cpuinfo.h"
#include "guest-agent/hooks.h"
#include "guest-agent/state_store.h"

namespace ucode_agent {
namespace {

constexpr size_t kMaxHostBytes = 255;  // a DNS name
constexpr size_t kMaxModeBytes = 64;

std::string Hex(int64_t revision) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(revision));
  return buf;
}

// The facts both phases may carry; all optional for prepare.
struct Facts {
  std::optional<int64_t> old_revision;
  std::optional<int64_t> new_revision;
  std::optional<std::string> host;
  std::optional<std::string> mode;
  int64_t deadline_ms = 0;
};

void ReadFacts(ArgReader* r, bool revisions_required, Facts* facts) {
  facts->old_revision = r->Int("old-revision", revisions_required, 0, 0xFFFFFFFFll);
  facts->new_revision = r->Int("new-revision", revisions_required, 0, 0xFFFFFFFFll);
  facts->host = r->String("host", false, kMaxHostBytes);
  facts->mode = r->String("mode", false, kMaxModeBytes);
}

std::vector<std::string> HookEnv(const char* phase, const Facts& f, const UcodeConfig& config) {
  std::vector<std::string> env = {std::string("UCODE_PHASE=") + phase,
                                  "UCODE_DEADLINE_MS=" + std::to_string(f.deadline_ms),
                                  "UCODE_STATE_DIR=" + config.state_dir};
  if (f.old_revision) env.push_back("UCODE_OLD_REVISION=" + Hex(*f.old_revision));
  if (f.new_revision) env.push_back("UCODE_NEW_REVISION=" + Hex(*f.new_revision));
  if (f.host) env.push_back("UCODE_HOST=" + *f.host);
  if (f.mode) env.push_back("UCODE_MODE=" + *f.mode);
  return env;
}

json::Value FactsJson(const Facts& f) {
  json::Value v = json::Object{};
  if (f.old_revision) v.Set("old-revision", *f.old_revision);
  if (f.new_revision) v.Set("new-revision", *f.new_revision);
  if (f.host) v.Set("host", *f.host);
  if (f.mode) v.Set("mode", *f.mode);
  v.Set("deadline-ms", f.deadline_ms);
  v.Set("recorded-at", static_cast<int64_t>(std::time(nullptr)));
  return v;
}

json::Value HooksJson(const HookRun& run) {
  json::Array hooks;
  for (const HookOutcome& h : run.hooks) {
    json::Value o = json::Object{};
    o.Set("name", h.name);
    o.Set("ok", h.ok);
    o.Set("reason", h.reason);
    if (!h.output.empty()) o.Set("output", h.output);
    hooks.push_back(std::move(o));
  }
  return hooks;
}

// Adds "status" and, on failure, "hook", "reason" and "output" of the hook
// that failed (or the directory error).
void AddRunSummary(const HookRun& run, const char* ok_status, json::Value* out) {
  out->Set("status", run.ok ? ok_status : "failed");
  if (!run.error.empty()) out->Set("reason", run.error);
  for (const HookOutcome& h : run.hooks) {
    if (h.ok) continue;
    out->Set("hook", h.name);
    out->Set("reason", h.reason);
    out->Set("output", h.output);
    break;
  }
  out->Set("hooks", HooksJson(run));
}

// Before the pause window opens the meter needs a baseline long enough to have seen the
// guest's ordinary scheduling noise, even when there are no hooks to run.
constexpr auto kMinBaseline = std::chrono::milliseconds(20);

CommandResult Prepare(const UcodeConfig& config, BlackoutMeter& meter, const json::Value& args) {
  ArgReader r(args);
  r.OnlyKnown({"deadline-ms", "old-revision", "new-revision", "host", "mode", "measure-ms"});
  Facts facts;
  std::optional<int64_t> deadline = r.Int("deadline-ms", true, 1, kMaxDeadlineMs);
  std::optional<int64_t> measure = r.Int("measure-ms", false, 1, kMaxDeadlineMs);
  ReadFacts(&r, false, &facts);
  if (!r.ok()) return CommandResult::Error(r.error());
  facts.deadline_ms = *deadline;
  if (!config.blackout_meter) measure.reset();
  const auto started = std::chrono::steady_clock::now();
  if (measure) meter.Start(std::chrono::milliseconds(*measure));

  HookOptions options;
  options.deadline = std::chrono::milliseconds(*deadline);
  options.max_output_bytes = config.max_hook_output_bytes;
  options.stop_on_failure = true;
  options.env = HookEnv("prepare", facts, config);
  HookRun run = RunHooks(config.prepare_dir, options);
  if (measure && run.ok) {
    const auto baseline_end = started + std::min<std::chrono::milliseconds>(
                                            kMinBaseline, std::chrono::milliseconds(*deadline));
    std::this_thread::sleep_until(baseline_end);
    meter.MarkPauseWindow();
  } else {
    meter.Stop();  // a refused prepare: no pause follows
  }

  json::Value ret = json::Object{};
  AddRunSummary(run, "ready", &ret);
  if (measure && run.ok) ret.Set("measuring", true);
  json::Value record = FactsJson(facts);
  AddRunSummary(run, "ready", &record);
  std::string error;
  // The reply matters more than the record: a failed write is reported, not fatal.
  if (!StateStore(config.state_dir, config.sync_state).Write(kLastPrepareRecord, record, &error)) {
    ret.Set("record-error", error);
  }
  return CommandResult::Ok(std::move(ret));
}

CommandResult Complete(const UcodeConfig& config, BlackoutMeter& meter,
                       const json::Value& args) {
  ArgReader r(args);
  r.OnlyKnown({"deadline-ms", "old-revision", "new-revision", "host", "mode"});
  Facts facts;
  ReadFacts(&r, true, &facts);
  std::optional<int64_t> deadline = r.Int("deadline-ms", false, 1, kMaxDeadlineMs);
  if (!r.ok()) return CommandResult::Error(r.error());
  facts.deadline_ms = deadline.value_or(kDefaultCompleteDeadlineMs);

  // Record first, so complete hooks can read the record.
  StateStore store(config.state_dir, config.sync_state);
  json::Value record = FactsJson(facts);
  record.Set("status", "recorded");
  if (std::optional<BlackoutResult> blackout = meter.Stop()) {
    record.Set("blackout", blackout->ToJson());
  }
  std::string error;
  if (!store.Write(kLastCompleteRecord, record, &error)) {
    return CommandResult::Error("cannot record the update: " + error);
  }

  HookOptions options;
  options.deadline = std::chrono::milliseconds(facts.deadline_ms);
  options.max_output_bytes = config.max_hook_output_bytes;
  options.stop_on_failure = false;  // every complete hook gets told
  options.env = HookEnv("complete", facts, config);
  HookRun run = RunHooks(config.complete_dir, options);

  AddRunSummary(run, "recorded", &record);
  json::Value ret = record;
  if (!store.Write(kLastCompleteRecord, record, &error)) ret.Set("record-error", error);
  return CommandResult::Ok(std::move(ret));
}

CommandResult Status(const UcodeConfig& config, const json::Value& args) {
  ArgReader r(args);
  r.OnlyKnown({});
  if (!r.ok()) return CommandResult::Error(r.error());
  StateStore store(config.state_dir, config.sync_state);
  json::Value ret = json::Object{};
  json::Array errors;
  for (const char* name : {kLastPrepareRecord, kLastCompleteRecord}) {
    std::string error;
    std::optional<json::Value> rec = store.Read(name, &error);
    std::string key(name);
    key.resize(key.size() - 5);  // drop ".json"
    if (rec) ret.Set(key, std::move(*rec));
    if (!error.empty()) errors.push_back(error);
  }
  if (std::optional<MicrocodeView> view = ReadCpuinfo(config.cpuinfo_path)) {
    ret.Set("microcode-revision", view->revision);
    ret.Set("microcode-cpus", view->cpus);
    ret.Set("microcode-consistent", view->consistent);
  }
  if (!errors.empty()) ret.Set("errors", std::move(errors));
  return CommandResult::Ok(std::move(ret));
}

}  // namespace

void AddUcodeCommands(CommandTable* table, const UcodeConfig& config) {
  auto shared = std::make_shared<const UcodeConfig>(config);
  auto meter = std::make_shared<BlackoutMeter>();
  table->Add({"guest-ucode-prepare",
              [shared, meter](const json::Value& a) { return Prepare(*shared, *meter, a); },
              false});
  table->Add({"guest-ucode-complete",
              [shared, meter](const json::Value& a) { return Complete(*shared, *meter, a); },
              false});
  table->Add({"guest-ucode-status",
              [shared](const json::Value& a) { return Status(*shared, a); }, false});
}

}  // namespace ucode_agent
