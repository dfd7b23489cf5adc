// libFuzzer target for the image parser: every input must parse or fail cleanly, never
// read out of bounds (ASan) or overflow (UBSan), and what parses must satisfy the
// format's invariants. Built with --config=fuzz it is a libFuzzer binary
// (tools/fuzz-microcode); otherwise it has its own main that replays the files or
// directories named on its command line, which is how the regression test runs it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"

namespace ucode::microcode {
namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

void CheckInput(absl::Span<const uint8_t> input) {
  std::vector<BundleEntry> entries = ParseBundle(input);
  std::vector<MicrocodeImage> good;
  size_t expected_offset = 0;
  for (const BundleEntry& entry : entries) {
    Require(entry.offset == expected_offset, "bundle offsets are contiguous");
    if (!entry.image.ok()) {
      Require(!entry.image.status().message().empty(), "errors carry a message");
      if (entry.offset + kHeaderSize > input.size()) break;
      // A failed member may still be skipped over when its size was trustworthy.
    }
    if (entry.image.ok()) {
      const MicrocodeImage& m = *entry.image;
      Require(m.bytes.data() == input.data() + entry.offset, "image views its own bytes");
      Require(m.bytes.size() == m.total_size(), "view covers total_size");
      Require(entry.offset + m.total_size() <= input.size(), "image inside the input");
      Require(m.total_size() % 1024 == 0 && m.data_size() % 4 == 0, "SDM size rules hold");
      Require(kHeaderSize + m.data_size() +
                      (m.extended_signatures.empty()
                           ? 0
                           : kExtTableHeaderSize + m.extended_signatures.size() * kExtSignatureSize) <=
                  m.total_size(),
              "layout fits");
      good.push_back(m);
    }
    // Mirror ParseBundle's advance rule to predict the next offset.
    absl::Span<const uint8_t> rest = input.subspan(entry.offset);
    if (rest.size() < kHeaderSize) break;
    uint32_t data_field, total_field;
    std::memcpy(&data_field, rest.data() + 28, 4);
    std::memcpy(&total_field, rest.data() + 32, 4);
    expected_offset += data_field != 0 ? total_field : kDefaultTotalSize;
  }
  if (!good.empty()) {
    const MicrocodeHeader& h = good.front().header;
    CpuIdentity cpu{h.signature, h.reserved & 7, h.min_req_revision};
    Selection s = SelectImage(good, cpu, MinRevPolicy::kEnforce);
    Require(s.candidates.size() == good.size(), "one candidate per image");
    (void)SelectImage(good, cpu, MinRevPolicy::kIgnore);
    (void)good.front().DateString();
  }
}

}  // namespace
}  // namespace ucode::microcode

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ucode::microcode::CheckInput(absl::Span<const uint8_t>(data, size));
  return 0;
}

#ifndef UCODE_FUZZING
#include <filesystem>

#include "host/microcode/release_dir.h"

// Replays every file named (directories: every file inside) through the target.
int main(int argc, char** argv) {
  int replayed = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::string> files = {argv[i]};
    if (std::filesystem::is_directory(argv[i])) {
      absl::StatusOr<std::vector<std::string>> listed = ucode::microcode::ListFiles(argv[i]);
      if (!listed.ok()) {
        std::fprintf(stderr, "%s\n", std::string(listed.status().message()).c_str());
        return 1;
      }
      files = *listed;
    }
    for (const std::string& f : files) {
      absl::StatusOr<std::vector<uint8_t>> bytes = ucode::microcode::ReadFileBytes(f);
      if (!bytes.ok()) {
        std::fprintf(stderr, "%s\n", std::string(bytes.status().message()).c_str());
        return 1;
      }
      LLVMFuzzerTestOneInput(bytes->data(), bytes->size());
      ++replayed;
    }
  }
  std::printf("replayed %d inputs\n", replayed);
  return 0;
}
#endif
