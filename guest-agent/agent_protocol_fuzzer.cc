// libFuzzer target: the whole protocol path the host can reach — line framing
// (chunked as the fuzzer decides), JSON parsing, dispatch and every command's
// argument handling. Hooks point at a directory that does not exist, so no
// process is started; records go to a private temporary directory.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "guest-agent/commands.h"
#include "guest-agent/session.h"
#include "guest-agent/ucode_commands.h"

namespace {

std::string* g_root = nullptr;

void RemoveRoot() {
  std::error_code ec;
  std::filesystem::remove_all(*g_root, ec);
}

struct Fixture {
  Fixture() {
    char tmpl[] = "/tmp/ucode-agent-fuzz.XXXXXX";
    const char* dir = mkdtemp(tmpl);
    root = dir != nullptr ? dir : "/nonexistent-ucode-agent-fuzz";
    g_root = &root;
    if (dir != nullptr) atexit(RemoveRoot);
    ucode_agent::UcodeConfig config;
    config.prepare_dir = root + "/no-hooks/prepare.d";
    config.complete_dir = root + "/no-hooks/complete.d";
    config.state_dir = root + "/state";
    config.cpuinfo_path = root + "/no-cpuinfo";
    config.sync_state = false;
    config.blackout_meter = false;  // no spinning thread per fuzzed prepare
    ucode_agent::AddProtocolCommands(&table, "fuzz");
    ucode_agent::AddUcodeCommands(&table, config);
  }
  std::string root;
  ucode_agent::CommandTable table;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  // A small line limit so oversize/resync paths are reached by short inputs.
  ucode_agent::Session session(&fixture->table, 256);
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first byte picks the read size, exercising lines split across reads.
  size_t chunk = 1;
  if (!input.empty()) {
    chunk = 1 + static_cast<uint8_t>(input[0]) % 64;
    input.remove_prefix(1);
  }
  std::string out;
  while (!input.empty()) {
    size_t n = std::min(chunk, input.size());
    session.Feed(input.substr(0, n), &out);
    input.remove_prefix(n);
  }
  // Every reply is one line of JSON, optionally preceded by the sentinel.
  if (!out.empty() && out.back() != '\n') abort();
  return 0;
}
