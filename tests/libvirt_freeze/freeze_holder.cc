// Test helper: freezes libvirt domains through the product's own group
// (LibvirtGuestGroup, --pause freeze), prints "frozen" and waits to be killed, so that a
// test can `kill -9` a coordinator while its domains are frozen.
//
//   freeze_holder --uri=URI --domain=NAME [--domain=NAME ...] --deadman_ms=N
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "vmm/libvirt/connection.h"
#include "vmm/orchestrator/libvirt_group.h"

int main(int argc, char** argv) {
  std::string uri;
  ucode::libvirt::DomainSelector selector;
  int64_t deadman_ms = 0;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--uri=")) uri = std::string(a);
    if (absl::ConsumePrefix(&a, "--domain=")) selector.names_or_uuids.emplace_back(a);
    if (absl::ConsumePrefix(&a, "--deadman_ms=") && !absl::SimpleAtoi(a, &deadman_ms)) return 2;
  }
  if (uri.empty() || selector.names_or_uuids.empty() || deadman_ms <= 0) {
    std::fprintf(stderr, "usage: %s --uri=URI --domain=NAME... --deadman_ms=N\n", argv[0]);
    return 2;
  }
  auto conn = ucode::libvirt::Connection::Open(uri);
  if (!conn.ok()) {
    std::fprintf(stderr, "%s\n", conn.status().ToString().c_str());
    return 1;
  }
  auto domains = (*conn)->ListDomains(selector);
  if (!domains.ok()) {
    std::fprintf(stderr, "%s\n", domains.status().ToString().c_str());
    return 1;
  }
  ucode::orchestrator::LibvirtGroupOptions options;
  options.pause = ucode::orchestrator::PauseMode::kFreeze;
  options.freeze.hold_limit = absl::Milliseconds(deadman_ms);
  auto group = ucode::orchestrator::LibvirtGuestGroup::Create(**conn, *std::move(domains), options);
  if (!group.ok()) {
    std::fprintf(stderr, "%s\n", group.status().ToString().c_str());
    return 1;
  }
  absl::Status s = (*group)->Prepare(absl::Seconds(30));
  if (s.ok()) s = (*group)->Park(absl::Seconds(10));
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("frozen\n");
  std::fflush(stdout);
  for (;;) pause();
}
