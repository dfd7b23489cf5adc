#include "vmm/ucodectl/client_commands.h"

#include <limits.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "host/microcode/microcode_image.h"
#include "proto/json.h"
#include "vmm/orchestrator/report.h"
#include "vmm/ucodectl/client_channel.h"
#include "vmm/ucodectl/command_line.h"
#include "vmm/ucodectl/cpu_option.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

using ucode::v1::UcodeService;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

struct Remote {
  std::string address;
  std::unique_ptr<UcodeService::Stub> stub;
};

int RpcFailed(absl::string_view rpc, const grpc::Status& s) {
  std::fprintf(stderr, "ucodectl: %s: %s: %s\n", std::string(rpc).c_str(),
               absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())).c_str(),
               s.error_message().c_str());
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // ucoded closes a refused caller's connection unanswered (it holds nothing for them).
    std::fprintf(stderr,
                 "ucodectl: is ucoded running, and are you (uid or a group) in its "
                 "--allow_uids/--allow_gids? It closes other callers' connections at once.\n");
  }
  return kFailed;
}

void PrintJson(const google::protobuf::Message& m) {
  std::printf("%s\n", ProtoJson(m, /*indented=*/true).c_str());
}

// Sends the file's bytes. With --host-path (Unix socket only) sends its path instead: the
// daemon reads it only beneath its image roots (--image_root), as root.
bool FillImage(const Remote& r, const std::string& path, bool send_path,
               ucode::v1::ImageSource* image) {
  if (send_path) {
    if (!IsUnixAddress(r.address)) {
      std::fprintf(stderr, "ucodectl: --host-path needs a unix: server on this host\n");
      return false;
    }
    // Absolute but with symlinks kept: the daemon matches it against its image roots as
    // written (/lib/firmware/intel-ucode stays that, even where /lib links to usr/lib).
    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(path, ec);
    if (ec) {
      std::fprintf(stderr, "ucodectl: %s: %s\n", path.c_str(), ec.message().c_str());
      return false;
    }
    image->set_host_path(absolute.lexically_normal().string());
    return true;
  }
  // Type checked before open (a FIFO never blocks us), size bounded as the daemon bounds it.
  absl::StatusOr<std::vector<uint8_t>> bytes = microcode::ReadFileBytes(path, 16u << 20);
  if (!bytes.ok()) {
    std::fprintf(stderr, "ucodectl: %s\n", std::string(bytes.status().message()).c_str());
    return false;
  }
  image->set_image_bytes(std::string(bytes->begin(), bytes->end()));
  return true;
}

void PrintOperation(const ucode::v1::Operation& op) {
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
}

using Handler = std::function<int(Remote&, const ParsedArgs&)>;

struct RemoteCommand {
  const char* name;
  const char* usage;
  std::vector<OptionSpec> options;
  size_t positional;  // exact count
  Handler run;
};

int Describe(Remote& r, const ParsedArgs& a) {
  grpc::ClientContext ctx;
  ucode::v1::Host host;
  grpc::Status s = r.stub->DescribeHost(&ctx, ucode::v1::DescribeHostRequest(), &host);
  if (!s.ok()) return RpcFailed("DescribeHost", s);
  if (a.Has("json")) {
    PrintJson(host);
    return kOk;
  }
  std::printf("host %s  backend %s  signature 0x%x  platform id %u  staging %s\n",
              host.hostname().c_str(), host.platform_backend().c_str(), host.signature(),
              host.platform_id(), host.staging_supported() ? "yes" : "no");
  std::printf("%5s %7s %5s %6s %6s %10s\n", "cpu", "package", "core", "thread", "online",
              "revision");
  for (const auto& c : host.cpus()) {
    std::printf("%5u %7u %5u %6u %6s %#10x\n", c.id(), c.package(), c.core(), c.thread(),
                c.online() ? "yes" : "no", c.revision());
  }
  return kOk;
}

int Guests(Remote& r, const ParsedArgs& a) {
  grpc::ClientContext ctx;
  ucode::v1::ListGuestsResponse resp;
  grpc::Status s = r.stub->ListGuests(&ctx, ucode::v1::ListGuestsRequest(), &resp);
  if (!s.ok()) return RpcFailed("ListGuests", s);
  if (a.Has("json")) {
    PrintJson(resp);
    return kOk;
  }
  std::printf("%-24s %-10s %5s %-10s %s\n", "name", "kind", "vcpus", "state", "view");
  for (const auto& g : resp.guests()) {
    std::printf("%-24s %-10s %5u %-10s %s\n", g.name().c_str(), g.kind().c_str(), g.vcpus(),
                g.state().c_str(), g.guest_view_updatable() ? "updatable" : "stale until restart");
  }
  return kOk;
}

int Inspect(Remote& r, const ParsedArgs& a) {
  ucode::v1::InspectImageRequest req;
  if (!FillImage(r, a.positional()[0], a.Has("host-path"), req.mutable_image())) return kFailed;
  if (auto text = a.Value("cpu")) {
    absl::StatusOr<microcode::CpuIdentity> cpu = ParseCpuOption(*text);
    if (!cpu.ok()) {
      std::fprintf(stderr, "ucodectl: %s\n", std::string(cpu.status().message()).c_str());
      return kUsage;
    }
    req.mutable_cpu()->set_signature(cpu->signature);
    req.mutable_cpu()->set_platform_id(cpu->platform_id);
    req.mutable_cpu()->set_current_revision(cpu->current_revision);
  }
  grpc::ClientContext ctx;
  ucode::v1::InspectImageResponse resp;
  grpc::Status s = r.stub->InspectImage(&ctx, req, &resp);
  if (!s.ok()) return RpcFailed("InspectImage", s);
  if (a.Has("json")) {
    PrintJson(resp);
    return kOk;
  }
  bool all_valid = true;
  for (int i = 0; i < resp.images_size(); ++i) {
    const auto& im = resp.images(i);
    all_valid &= im.valid();
    if (!im.valid()) {
      std::printf("[%d] offset %lu: INVALID: %s\n", i, static_cast<unsigned long>(im.offset()),
                  im.error().c_str());
      continue;
    }
    std::printf("[%d] offset %lu: sig 0x%x pf 0x%x rev 0x%x date %s size %u min_rev 0x%x%s\n", i,
                static_cast<unsigned long>(im.offset()), im.signature(), im.platform_flags(),
                im.revision(), im.date().c_str(), im.total_size(), im.min_req_revision(),
                i == resp.selected_index() ? "  <- selected" : "");
  }
  for (const auto& reason : resp.selection_reasons()) std::printf("  %s\n", reason.c_str());
  return all_valid ? kOk : kFailed;
}

int StartAndFollow(
    Remote& r, const ParsedArgs& a, absl::string_view rpc,
    const std::function<grpc::Status(grpc::ClientContext*, ucode::v1::Operation*)>& call) {
  grpc::ClientContext ctx;
  ucode::v1::Operation op;
  grpc::Status s = call(&ctx, &op);
  if (!s.ok()) return RpcFailed(rpc, s);
  // With --json, stdout holds only the final operation; progress goes to stderr.
  const bool json = a.Has("json");
  FILE* progress = json ? stderr : stdout;
  std::fprintf(progress, "%s started\n", op.name().c_str());
  if (a.Has("no-follow")) return kOk;
  if (!json) return FollowOperation(*r.stub, op.name(), stdout);
  ucode::v1::Operation final_state;
  int rc = FollowOperation(*r.stub, op.name(), stderr, &final_state);
  if (final_state.done()) PrintJson(final_state);
  return rc;
}

int Stage(Remote& r, const ParsedArgs& a) {
  ucode::v1::StageImageRequest req;
  if (!FillImage(r, a.positional()[0], a.Has("host-path"), req.mutable_image())) return kFailed;
  return StartAndFollow(r, a, "StageImage", [&](grpc::ClientContext* c, ucode::v1::Operation* o) {
    return r.stub->StageImage(c, req, o);
  });
}

int Apply(Remote& r, const ParsedArgs& a) {
  ucode::v1::ApplyUpdateRequest req;
  if (!FillImage(r, a.positional()[0], a.Has("host-path"), req.mutable_image())) return kFailed;
  std::string mode = a.ValueOr("mode", "strict");
  if (mode == "strict") {
    req.set_mode(ucode::v1::UPDATE_MODE_STRICT);
  } else if (mode == "fast") {
    req.set_mode(ucode::v1::UPDATE_MODE_FAST);
  } else {
    std::fprintf(stderr, "ucodectl: --mode: '%s' is not strict or fast\n", mode.c_str());
    return kUsage;
  }
  absl::StatusOr<microcode::MinRevPolicy> policy = MinRevPolicyFromArgs(a);
  if (!policy.ok()) {
    std::fprintf(stderr, "ucodectl apply: %s\n", std::string(policy.status().message()).c_str());
    return kUsage;
  }
  req.set_min_rev_policy(*policy == microcode::MinRevPolicy::kIgnore
                             ? ucode::v1::MIN_REV_POLICY_IGNORE
                             : ucode::v1::MIN_REV_POLICY_ENFORCE);
  for (const std::string& g : a.Values("guest")) req.add_guests(g);
  uint64_t v = 0;
  if (auto d = a.Value("park-deadline-us")) {
    if (!absl::SimpleAtoi(*d, &v)) return kUsage;
    req.set_park_deadline_us(v);
  }
  if (auto t = a.Value("agent-timeout-ms")) {
    if (!absl::SimpleAtoi(*t, &v)) return kUsage;
    req.set_agent_timeout_ms(v);
  }
  req.set_request_id(a.ValueOr("request-id", ""));
  return StartAndFollow(r, a, "ApplyUpdate", [&](grpc::ClientContext* c, ucode::v1::Operation* o) {
    return r.stub->ApplyUpdate(c, req, o);
  });
}

// For guests whose view lags the host (SyncGuestViews): no image, the host's revision.
int SyncViews(Remote& r, const ParsedArgs& a) {
  ucode::v1::SyncGuestViewsRequest req;
  for (const std::string& g : a.Values("guest")) req.add_guests(g);
  uint64_t v = 0;
  if (auto d = a.Value("park-deadline-us")) {
    if (!absl::SimpleAtoi(*d, &v)) return kUsage;
    req.set_park_deadline_us(v);
  }
  return StartAndFollow(r, a, "SyncGuestViews", [&](grpc::ClientContext* c, ucode::v1::Operation* o) {
    return r.stub->SyncGuestViews(c, req, o);
  });
}

int Watch(Remote& r, const ParsedArgs& a) {
  return FollowOperation(*r.stub, a.positional()[0], stdout);
}

int Get(Remote& r, const ParsedArgs& a) {
  grpc::ClientContext ctx;
  ucode::v1::GetOperationRequest req;
  req.set_name(a.positional()[0]);
  ucode::v1::Operation op;
  grpc::Status s = r.stub->GetOperation(&ctx, req, &op);
  if (!s.ok()) return RpcFailed("GetOperation", s);
  if (a.Has("json")) {
    PrintJson(op);
  } else {
    PrintOperation(op);
  }
  return kOk;
}

int List(Remote& r, const ParsedArgs& a) {
  int32_t page_size = 0;
  if (auto p = a.Value("page-size"); p && !absl::SimpleAtoi(*p, &page_size)) return kUsage;
  std::string token;
  do {
    grpc::ClientContext ctx;
    ucode::v1::ListOperationsRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    ucode::v1::ListOperationsResponse resp;
    grpc::Status s = r.stub->ListOperations(&ctx, req, &resp);
    if (!s.ok()) return RpcFailed("ListOperations", s);
    for (const auto& op : resp.operations()) PrintOperation(op);
    token = a.Has("all") ? resp.next_page_token() : "";
  } while (!token.empty());
  return kOk;
}

int Cancel(Remote& r, const ParsedArgs& a) {
  grpc::ClientContext ctx;
  ucode::v1::CancelOperationRequest req;
  req.set_name(a.positional()[0]);
  ucode::v1::Operation op;
  grpc::Status s = r.stub->CancelOperation(&ctx, req, &op);
  if (!s.ok()) return RpcFailed("CancelOperation", s);
  PrintOperation(op);
  return kOk;
}

const std::vector<RemoteCommand>& Commands() {
  static const OptionSpec kJson{"json", false, false, "print the response as JSON"};
  static const OptionSpec kHostPath{"host-path", false, false,
                                    "send the file's path (under ucoded's --image_root) instead "
                                    "of its bytes"};
  static const OptionSpec kNoFollow{"no-follow", false, false,
                                    "print the operation name and return"};
  static const std::vector<RemoteCommand> kCommands = {
      {"describe", "describe [--json]", {kJson}, 0, Describe},
      {"guests", "guests [--json]", {kJson}, 0, Guests},
      {"inspect",
       "inspect FILE [--cpu SIG[,PF[,REV]]] [--json]",
       {kJson, kHostPath, {"cpu", true, false, kCpuOptionHelp}},
       1,
       Inspect},
      {"stage", "stage FILE [--no-follow]", {kHostPath, kNoFollow}, 1, Stage},
      {"apply",
       "apply FILE [--mode strict|fast] [--force-minrev|--ignore-minrev] [--guest NAME]... "
       "[--park-deadline-us N] [--agent-timeout-ms N] [--request-id ID] [--no-follow] [--json]",
       {kHostPath,
        kNoFollow,
        {"json", false, false,
         "print the finished operation as JSON (progress goes to stderr)"},
        {"mode", true, false, "strict (default) or fast"},
        {"force-minrev", false, false, "enforce the minimal-revision rule (default)"},
        {"ignore-minrev", false, false,
         "load even an image the minimal-revision rule calls unsafe"},
        {"guest", true, true, "include only this guest (repeatable)"},
        {"park-deadline-us", true, false, "deadline for every vCPU to park"},
        {"agent-timeout-ms", true, false, "bound on each guest agent's answer"},
        {"request-id", true, false, "makes a retried apply idempotent"}},
       1,
       Apply},
      {"sync-views",
       "sync-views [--guest NAME]... [--park-deadline-us N] [--no-follow]",
       {kNoFollow,
        {"guest", true, true, "include only this guest (repeatable)"},
        {"park-deadline-us", true, false, "deadline for every vCPU to park"}},
       0,
       SyncViews},
      {"watch", "watch OPERATION", {}, 1, Watch},
      {"get", "get OPERATION [--json]", {kJson}, 1, Get},
      {"list",
       "list [--page-size N] [--all]",
       {{"page-size", true, false, "operations per page"},
        {"all", false, false, "follow every page"}},
       0,
       List},
      {"cancel", "cancel OPERATION", {}, 1, Cancel},
  };
  return kCommands;
}

}  // namespace

std::string RemoteUsage() {
  std::string out =
      "usage: ucodectl --server ADDRESS [--tls_ca F --tls_cert F --tls_key F "
      "[--tls_server_name N]] COMMAND [ARGS]\n"
      "  ADDRESS: unix:/run/ucoded/ucoded.sock (default socket) or host:port (mutual TLS)\n"
      "commands:\n";
  for (const RemoteCommand& c : Commands()) absl::StrAppend(&out, "  ", c.usage, "\n");
  return out;
}

bool WantsServer(const std::vector<std::string>& args) {
  return !args.empty() && (args[0] == "--server" || absl::StartsWith(args[0], "--server="));
}

int RunRemote(const std::vector<std::string>& args) {
  std::map<std::string, std::string> global;
  size_t i = 0;
  for (; i < args.size() && absl::StartsWith(args[i], "--"); ++i) {
    std::string word = args[i].substr(2);
    std::string value;
    if (size_t eq = word.find('='); eq != std::string::npos) {
      value = word.substr(eq + 1);
      word.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    }
    if (word != "server" && word != "tls_ca" && word != "tls_cert" && word != "tls_key" &&
        word != "tls_server_name") {
      std::fprintf(stderr, "ucodectl: unknown option --%s\n%s", word.c_str(),
                   RemoteUsage().c_str());
      return kUsage;
    }
    global[word] = value;
  }
  if (i >= args.size() || global["server"].empty()) {
    std::fputs(RemoteUsage().c_str(), stderr);
    return kUsage;
  }
  const std::string name = args[i];
  const std::vector<std::string> rest(args.begin() + i + 1, args.end());
  for (const RemoteCommand& c : Commands()) {
    if (name != c.name) continue;
    absl::StatusOr<ParsedArgs> parsed = ParseArgs(rest, c.options);
    if (!parsed.ok() || parsed->positional().size() != c.positional) {
      std::fprintf(stderr, "ucodectl: %s\nusage: ucodectl --server ADDRESS %s\n%s",
                   parsed.ok() ? "wrong number of arguments"
                               : std::string(parsed.status().message()).c_str(),
                   c.usage, OptionsHelp(c.options).c_str());
      return kUsage;
    }
    Remote remote;
    remote.address = global["server"];
    ClientTls tls{global["tls_ca"], global["tls_cert"], global["tls_key"],
                  global["tls_server_name"]};
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(remote.address, tls);
    if (!channel.ok()) {
      std::fprintf(stderr, "ucodectl: %s\n", std::string(channel.status().message()).c_str());
      return kUsage;
    }
    remote.stub = UcodeService::NewStub(*channel);
    return c.run(remote, *parsed);
  }
  std::fprintf(stderr, "ucodectl: unknown command '%s'\n%s", name.c_str(), RemoteUsage().c_str());
  return kUsage;
}

int FollowOperation(UcodeService::StubInterface& stub, const std::string& operation, FILE* out,
                    ucode::v1::Operation* final_out) {
  grpc::ClientContext ctx;
  ucode::v1::WatchOperationRequest req;
  req.set_name(operation);
  std::unique_ptr<grpc::ClientReaderInterface<ucode::v1::OperationEvent>> reader =
      stub.WatchOperation(&ctx, req);
  ucode::v1::OperationEvent e;
  ucode::v1::Operation final_state;
  bool done = false;
  while (reader->Read(&e)) {
    std::string extra;
    if (e.has_staging()) {
      extra = absl::StrCat("  [package ", e.staging().package(), ": ", e.staging().bytes_sent(),
                           "/", e.staging().total_bytes(), " bytes]");
    }
    std::fprintf(out, "  #%-4lu %-22s %s%s\n", static_cast<unsigned long>(e.sequence()),
                 ucode::v1::Step_Name(e.step()).c_str(), e.message().c_str(), extra.c_str());
    std::fflush(out);
    if (e.step() == ucode::v1::STEP_DONE && e.has_final_state()) {
      final_state = e.final_state();
      done = true;
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcFailed("WatchOperation", s);
  if (!done) {
    std::fprintf(stderr, "ucodectl: watch of %s ended before the operation did\n",
                 operation.c_str());
    return kFailed;
  }
  const bool succeeded = final_state.state() == ucode::v1::OPERATION_STATE_SUCCEEDED;
  if (final_out != nullptr) {
    *final_out = std::move(final_state);
    return succeeded ? kOk : kFailed;
  }
  std::fprintf(out, "%s %s\n", final_state.name().c_str(),
               ucode::v1::OperationState_Name(final_state.state()).c_str());
  if (final_state.error().code() != 0) {
    std::fprintf(out, "  error: %s\n", final_state.error().message().c_str());
  }
  if (final_state.has_report()) {
    std::fputs(orchestrator::ReportText(final_state.report()).c_str(), out);
  }
  return succeeded ? kOk : kFailed;
}

}  // namespace ucode::ctl
