// `ucodectl --server ADDRESS stage|apply|sync-views|watch|get|list|cancel`: ucoded's
// long-running operations, started, followed to their end, listed and cancelled.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "host/microcode/selection.h"
#include "vmm/orchestrator/report.h"
#include "vmm/ucodectl/client_channel.h"
#include "vmm/ucodectl/command_line.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

using ucode::v1::Operation;
using ucode::v1::UcodeService;

const OptionSpec kNoFollow = {"no-follow", false, false, "print the operation name and return"};
const OptionSpec kFinalJson = {"json", false, false,
                               "print the finished operation as JSON (progress goes to stderr)"};
const OptionSpec kGuest = {"guest", true, true, "include only this guest (repeatable)"};
const OptionSpec kParkDeadline = {"park-deadline-us", true, false,
                                  "deadline for every vCPU to park"};

int PrintOperation(const Operation& op) {
  std::printf(
      "%s  %s  %s  last step %s%s\n", op.name().c_str(), op.kind().c_str(),
      ucode::v1::OperationState_Name(op.state()).c_str(),
      ucode::v1::Step_Name(op.last_step()).c_str(),
      op.interrupted_step() != ucode::v1::STEP_UNSPECIFIED
          ? absl::StrCat(" (interrupted during ", ucode::v1::Step_Name(op.interrupted_step()), ")")
                .c_str()
          : "");
  if (op.has_error() && op.error().code() != 0) {
    std::printf("  error: %s\n", op.error().message().c_str());
  }
  if (!op.journal_error().empty()) {
    std::printf("  journal error (the state above stands): %s\n", op.journal_error().c_str());
  }
  if (op.has_report()) std::printf("%s", orchestrator::ReportText(op.report()).c_str());
  return kExitOk;
}

// Streams `operation`'s events until it is done, then prints its final state. With --json
// stdout holds only that state, as JSON; the events go to stderr. kExitOk if it SUCCEEDED.
int FollowOperation(const RemoteCall& r, const std::string& operation) {
  const bool json = r.args.Has("json");
  FILE* out = json ? stderr : stdout;
  grpc::ClientContext ctx;
  ucode::v1::WatchOperationRequest req;
  req.set_name(operation);
  std::unique_ptr<grpc::ClientReaderInterface<ucode::v1::OperationEvent>> reader =
      r.stub->WatchOperation(&ctx, req);
  ucode::v1::OperationEvent e;
  std::optional<Operation> final_state;
  while (reader->Read(&e)) {
    std::string extra;
    if (e.has_staging()) {
      extra = absl::StrCat("  [package ", e.staging().package(), ": ", e.staging().bytes_sent(),
                           "/", e.staging().total_bytes(), " bytes]");
    }
    std::fprintf(out, "  #%-4lu %-22s %s%s\n", static_cast<unsigned long>(e.sequence()),
                 ucode::v1::Step_Name(e.step()).c_str(), e.message().c_str(), extra.c_str());
    std::fflush(out);
    if (e.step() == ucode::v1::STEP_DONE && e.has_final_state()) final_state = e.final_state();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcFailed("WatchOperation", s);
  if (!final_state) {
    std::fprintf(stderr, "ucodectl: watch of %s ended before the operation did\n",
                 operation.c_str());
    return kExitFailed;
  }
  if (json) {
    PrintJson(*final_state);
  } else {
    PrintOperation(*final_state);
  }
  return final_state->state() == ucode::v1::OPERATION_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

// Starts an operation with `rpc` and, unless --no-follow, follows it to its end.
template <typename Request>
int StartAndFollow(const RemoteCall& r, absl::string_view name,
                   grpc::Status (UcodeService::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                           Operation*),
                   const Request& request) {
  grpc::ClientContext ctx;
  Operation op;
  grpc::Status s = (r.stub.get()->*rpc)(&ctx, request, &op);
  if (!s.ok()) return RpcFailed(name, s);
  std::fprintf(r.args.Has("json") ? stderr : stdout, "%s started\n", op.name().c_str());
  return r.args.Has("no-follow") ? kExitOk : FollowOperation(r, op.name());
}

// --guest and --park-deadline-us, which apply and sync-views share; false for a deadline
// that is not a number.
template <typename Request>
bool SetGuestsAndDeadline(const ParsedArgs& a, Request* req) {
  for (const std::string& g : a.Values("guest")) req->add_guests(g);
  uint64_t deadline_us = 0;
  std::optional<std::string> d = a.Value("park-deadline-us");
  if (d && !absl::SimpleAtoi(*d, &deadline_us)) return false;
  req->set_park_deadline_us(deadline_us);
  return true;
}

}  // namespace

int RunRemoteStage(const std::vector<std::string>& args) {
  static const std::vector<OptionSpec> kSpecs = {kHostPathOption, kNoFollow, kHelpOption};
  int rc = kExitOk;
  std::optional<RemoteCall> r =
      StartRemote(args, {"stage", "--server ADDRESS stage FILE [--no-follow]", ""}, kSpecs, 1, &rc);
  if (!r) return rc;
  ucode::v1::StageImageRequest req;
  if (!FillImage(*r, r->args.positional()[0], req.mutable_image())) return kExitFailed;
  return StartAndFollow(*r, "StageImage", &UcodeService::Stub::StageImage, req);
}

int RunRemoteApply(const std::vector<std::string>& args) {
  static const std::vector<OptionSpec> kSpecs = [] {
    std::vector<OptionSpec> specs = {
        kHostPathOption,
        kNoFollow,
        kFinalJson,
        {"mode", true, false, "strict (default) or fast"},
        kGuest,
        kParkDeadline,
        {"agent-timeout-ms", true, false, "bound on each guest agent's answer"},
        {"request-id", true, false, "makes a retried apply idempotent"},
        kHelpOption};
    AppendMinRevOptionSpecs(specs);
    return specs;
  }();
  static constexpr CommandSyntax kSyntax = {
      "apply",
      "--server ADDRESS apply FILE [--mode strict|fast] [--force-minrev|--ignore-minrev] "
      "[--guest NAME]... [--park-deadline-us N] [--agent-timeout-ms N] [--request-id ID] "
      "[--no-follow] [--json]",
      ""};
  int rc = kExitOk;
  std::optional<RemoteCall> r = StartRemote(args, kSyntax, kSpecs, 1, &rc);
  if (!r) return rc;
  ucode::v1::ApplyUpdateRequest req;
  if (!FillImage(*r, r->args.positional()[0], req.mutable_image())) return kExitFailed;
  const std::string mode = r->args.ValueOr("mode", "strict");
  if (mode != "strict" && mode != "fast") {
    return PrintUsage(kSyntax, kSpecs, absl::StrCat("--mode: '", mode, "' is not strict or fast"));
  }
  req.set_mode(mode == "fast" ? ucode::v1::UPDATE_MODE_FAST : ucode::v1::UPDATE_MODE_STRICT);
  absl::StatusOr<microcode::MinRevPolicy> policy = MinRevPolicyFromArgs(r->args);
  if (!policy.ok()) return PrintUsage(kSyntax, kSpecs, policy.status().message());
  req.set_min_rev_policy(*policy == microcode::MinRevPolicy::kIgnore
                             ? ucode::v1::MIN_REV_POLICY_IGNORE
                             : ucode::v1::MIN_REV_POLICY_ENFORCE);
  if (!SetGuestsAndDeadline(r->args, &req)) {
    return PrintUsage(kSyntax, kSpecs, "--park-deadline-us: not a number");
  }
  uint64_t timeout_ms = 0;
  if (auto t = r->args.Value("agent-timeout-ms"); t && !absl::SimpleAtoi(*t, &timeout_ms)) {
    return PrintUsage(kSyntax, kSpecs, "--agent-timeout-ms: not a number");
  }
  req.set_agent_timeout_ms(timeout_ms);
  req.set_request_id(r->args.ValueOr("request-id", ""));
  return StartAndFollow(*r, "ApplyUpdate", &UcodeService::Stub::ApplyUpdate, req);
}

// For guests whose view lags the host (SyncGuestViews): no image, the host's revision.
int RunRemoteSyncViews(const std::vector<std::string>& args) {
  static const std::vector<OptionSpec> kSpecs = {kNoFollow, kGuest, kParkDeadline, kHelpOption};
  static constexpr CommandSyntax kSyntax = {
      "sync-views",
      "--server ADDRESS sync-views [--guest NAME]... [--park-deadline-us N] [--no-follow]", ""};
  int rc = kExitOk;
  std::optional<RemoteCall> r = StartRemote(args, kSyntax, kSpecs, 0, &rc);
  if (!r) return rc;
  ucode::v1::SyncGuestViewsRequest req;
  if (!SetGuestsAndDeadline(r->args, &req)) {
    return PrintUsage(kSyntax, kSpecs, "--park-deadline-us: not a number");
  }
  return StartAndFollow(*r, "SyncGuestViews", &UcodeService::Stub::SyncGuestViews, req);
}

int RunRemoteWatch(const std::vector<std::string>& args) {
  int rc = kExitOk;
  std::optional<RemoteCall> r =
      StartRemote(args, {"watch", "--server ADDRESS watch OPERATION", ""}, {kHelpOption}, 1, &rc);
  return r ? FollowOperation(*r, r->args.positional()[0]) : rc;
}

int RunRemoteGet(const std::vector<std::string>& args) {
  static const std::vector<OptionSpec> kSpecs = {
      {"json", false, false, "print the operation as JSON"}, kHelpOption};
  int rc = kExitOk;
  std::optional<RemoteCall> r =
      StartRemote(args, {"get", "--server ADDRESS get OPERATION [--json]", ""}, kSpecs, 1, &rc);
  if (!r) return rc;
  ucode::v1::GetOperationRequest req;
  req.set_name(r->args.positional()[0]);
  return CallAndPrint(*r, "GetOperation", &UcodeService::Stub::GetOperation, req, PrintOperation);
}

int RunRemoteCancel(const std::vector<std::string>& args) {
  int rc = kExitOk;
  std::optional<RemoteCall> r =
      StartRemote(args, {"cancel", "--server ADDRESS cancel OPERATION", ""}, {kHelpOption}, 1, &rc);
  if (!r) return rc;
  ucode::v1::CancelOperationRequest req;
  req.set_name(r->args.positional()[0]);
  return CallAndPrint(*r, "CancelOperation", &UcodeService::Stub::CancelOperation, req,
                      PrintOperation);
}

int RunRemoteList(const std::vector<std::string>& args) {
  static const std::vector<OptionSpec> kSpecs = {{"page-size", true, false, "operations per page"},
                                                 {"all", false, false, "follow every page"},
                                                 kHelpOption};
  static constexpr CommandSyntax kSyntax = {"list", "--server ADDRESS list [--page-size N] [--all]",
                                            ""};
  int rc = kExitOk;
  std::optional<RemoteCall> r = StartRemote(args, kSyntax, kSpecs, 0, &rc);
  if (!r) return rc;
  int32_t page_size = 0;
  if (auto p = r->args.Value("page-size"); p && !absl::SimpleAtoi(*p, &page_size)) {
    return PrintUsage(kSyntax, kSpecs, "--page-size: not a number");
  }
  std::string token;
  do {
    grpc::ClientContext ctx;
    ucode::v1::ListOperationsRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    ucode::v1::ListOperationsResponse resp;
    grpc::Status s = r->stub->ListOperations(&ctx, req, &resp);
    if (!s.ok()) return RpcFailed("ListOperations", s);
    for (const auto& op : resp.operations()) PrintOperation(op);
    token = r->args.Has("all") ? resp.next_page_token() : "";
  } while (!token.empty());
  return kExitOk;
}

}  // namespace ucode::ctl
