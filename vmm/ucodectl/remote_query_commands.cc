// `ucodectl --server ADDRESS describe|guests|inspect`: ucoded's answers about the host, its
// guests and an image, as text or (--json) as the response message.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "host/microcode/selection.h"
#include "vmm/inspect/image_inspect.h"
#include "vmm/ucodectl/client_channel.h"
#include "vmm/ucodectl/command_line.h"
#include "vmm/ucodectl/cpu_option.h"

namespace ucode::ctl {
namespace {

using ucode::v1::UcodeService;

const OptionSpec kJson = {"json", false, false, "print the response as JSON"};

int PrintHost(const ucode::v1::Host& host) {
  std::printf("host %s  backend %s  signature 0x%x  platform id %u  staging %s\n",
              host.hostname().c_str(), host.platform_backend().c_str(), host.signature(),
              host.platform_id(), host.staging_supported() ? "yes" : "no");
  std::printf("%5s %7s %5s %6s %6s %10s\n", "cpu", "package", "core", "thread", "online",
              "revision");
  for (const auto& c : host.cpus()) {
    std::printf("%5u %7u %5u %6u %6s %#10x\n", c.id(), c.package(), c.core(), c.thread(),
                c.online() ? "yes" : "no", c.revision());
  }
  return kExitOk;
}

int PrintGuests(const ucode::v1::ListGuestsResponse& resp) {
  std::printf("%-24s %-10s %5s %-10s %s\n", "name", "kind", "vcpus", "state", "view");
  for (const auto& g : resp.guests()) {
    std::printf("%-24s %-10s %5u %-10s %s\n", g.name().c_str(), g.kind().c_str(), g.vcpus(),
                g.state().c_str(), g.guest_view_updatable() ? "updatable" : "stale until restart");
  }
  return kExitOk;
}

int PrintInspect(const ucode::v1::InspectImageResponse& resp) {
  std::fputs(inspect::InspectText(resp).c_str(), stdout);
  return inspect::AllValid(resp) ? kExitOk : kExitFailed;
}

// describe and guests: no word but --json, one empty request, its answer.
template <typename Request, typename Response>
int RunQuery(const std::vector<std::string>& args, const CommandSyntax& syntax,
             absl::string_view name,
             grpc::Status (UcodeService::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                     Response*),
             int (*print_text)(const Response&)) {
  int rc = kExitOk;
  std::optional<RemoteCall> r = StartRemote(args, syntax, {kJson, kHelpOption}, 0, &rc);
  return r ? CallAndPrint(*r, name, rpc, Request(), print_text) : rc;
}

}  // namespace

int RunRemoteDescribe(const std::vector<std::string>& args) {
  return RunQuery(args, {"describe", "--server ADDRESS describe [--json]", ""}, "DescribeHost",
                  &UcodeService::Stub::DescribeHost, PrintHost);
}

int RunRemoteGuests(const std::vector<std::string>& args) {
  return RunQuery(args, {"guests", "--server ADDRESS guests [--json]", ""}, "ListGuests",
                  &UcodeService::Stub::ListGuests, PrintGuests);
}

// Without --cpu ucoded selects for the oldest revision its host runs.
int RunRemoteInspect(const std::vector<std::string>& args) {
  static const std::vector<OptionSpec> kSpecs = {
      kJson, kHostPathOption, {"cpu", true, false, kCpuOptionHelp}, kHelpOption};
  int rc = kExitOk;
  std::optional<RemoteCall> r = StartRemote(
      args, {"inspect", "--server ADDRESS inspect FILE [--cpu SIG[,PF[,REV]]] [--json]", ""},
      kSpecs, 1, &rc);
  if (!r) return rc;
  ucode::v1::InspectImageRequest req;
  if (!FillImage(*r, r->args.positional()[0], req.mutable_image())) return kExitFailed;
  if (std::optional<std::string> text = r->args.Value("cpu")) {
    absl::StatusOr<microcode::CpuIdentity> cpu = ParseCpuOption(*text);
    if (!cpu.ok()) {
      std::fprintf(stderr, "ucodectl: %s\n", std::string(cpu.status().message()).c_str());
      return kExitUsage;
    }
    req.mutable_cpu()->set_signature(cpu->signature);
    req.mutable_cpu()->set_platform_id(cpu->platform_id);
    req.mutable_cpu()->set_current_revision(cpu->current_revision);
  }
  return CallAndPrint(*r, "InspectImage", &UcodeService::Stub::InspectImage, req, PrintInspect);
}

}  // namespace ucode::ctl
