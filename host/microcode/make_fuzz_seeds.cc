// Writes generated images (plain, legacy, extended tables, a bundle) into a directory
// as fuzz seeds: tools/fuzz-microcode adds them to the real release files.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "host/microcode/image_generator.h"

namespace ucode::microcode {
namespace {

bool Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds DIR\n");
    return 2;
  }
  std::vector<GeneratorOptions> variants;
  GeneratorOptions small;
  small.data_size = 976;
  variants.push_back(small);
  GeneratorOptions legacy;
  legacy.legacy_layout = true;
  variants.push_back(legacy);
  for (size_t n : {1u, 2u, 5u}) {
    GeneratorOptions ext = small;
    ext.data_size = 2000;
    for (size_t i = 0; i < n; ++i) {
      ext.extended_signatures.push_back({0x806f0u + uint32_t(i), 1u << i, 0});
    }
    ext.fill_seed = uint32_t(n);
    variants.push_back(ext);
  }
  std::vector<uint8_t> bundle;
  for (size_t i = 0; i < variants.size(); ++i) {
    absl::StatusOr<std::vector<uint8_t>> bytes = GenerateImage(variants[i]);
    if (!bytes.ok()) return 1;
    if (!Write(absl::StrFormat("%s/generated-%02d", argv[1], i), *bytes)) return 1;
    bundle.insert(bundle.end(), bytes->begin(), bytes->end());
  }
  return Write(std::string(argv[1]) + "/generated-bundle", bundle) ? 0 : 1;
}

}  // namespace
}  // namespace ucode::microcode

int main(int argc, char** argv) { return ucode::microcode::Main(argc, argv); }
