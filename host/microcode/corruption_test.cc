// The bad-input table: corruptions of real release files and generated images, each of
// which must be rejected by the named check (the stable prefix of the status message)
// with the right code. Mutations that target a late check re-fix the earlier checksums
// so that exactly the intended check is the one that fires.
#include <cstdint>
#include <cctype>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/microcode/checksum.h"
#include "host/microcode/image_generator.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"

namespace ucode::microcode {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr size_t kChecksum = 16, kLoaderVersion = 20, kHeaderVersion = 0, kRevision = 4;
constexpr size_t kDataSize = 28, kTotalSize = 32;

uint32_t Get(const Bytes& b, size_t at) { return at + 4 <= b.size() ? LoadLe32(b, at) : 0; }
void Set(Bytes& b, size_t at, uint32_t v) {
  if (at + 4 > b.size()) {
    ADD_FAILURE() << "mutation at 0x" << std::hex << at << " outside a 0x" << b.size() << "-byte base";
    return;
  }
  StoreLe32(absl::MakeSpan(b), at, v);
}
size_t DataEnd(const Bytes& b) { return kHeaderSize + (Get(b, kDataSize) ? Get(b, kDataSize) : 2000); }

// Makes header + data sum to zero again (over the current datasize).
void FixDataChecksum(Bytes& b) {
  Set(b, kChecksum, 0);
  Set(b, kChecksum, 0u - SumDwords(absl::MakeConstSpan(b).first(DataEnd(b))));
}
// Makes the extended table (from DataEnd to totalsize) sum to zero again.
void FixExtTableChecksum(Bytes& b) {
  const size_t table = DataEnd(b);
  Set(b, table + 4, 0);
  Set(b, table + 4, 0u - SumDwords(absl::MakeConstSpan(b).subspan(table, Get(b, kTotalSize) - table)));
}

Bytes Generated(size_t ext_count = 0, size_t data_size = 3000) {
  GeneratorOptions o;
  o.data_size = data_size;
  for (size_t i = 0; i < ext_count; ++i) o.extended_signatures.push_back({0x906a0u + uint32_t(i), 1u << i, 0});
  absl::StatusOr<Bytes> b = GenerateImage(o);
  return b.ok() ? *b : Bytes{};
}

Bytes Legacy() {
  absl::StatusOr<Bytes> b = GenerateImage({.legacy_layout = true});
  return b.ok() ? *b : Bytes{};
}

// A real release file (empty if the release is absent).
Bytes RealWhole(const std::string& name) {
  absl::StatusOr<std::string> dir = FindReleaseDir();
  if (!dir.ok()) return {};
  absl::StatusOr<Bytes> b = ReadFileBytes(*dir + "/" + name);
  return b.ok() ? *b : Bytes{};
}

// Its first image.
Bytes RealFirst(const std::string& name) {
  Bytes b = RealWhole(name);
  absl::StatusOr<MicrocodeImage> first = ParseImage(b);
  return first.ok() ? Bytes(b.begin(), b.begin() + first->total_size()) : Bytes{};
}

Bytes Concat(std::vector<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Corruption {
  std::string name;
  std::function<Bytes()> base;
  std::function<void(Bytes&)> mutate;
  std::string check;  // expected message prefix
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  bool bundle = false;  // judge with ParseBundleStrict instead of ParseImage
};

void Truncate(Bytes& b, size_t n) { b.resize(n); }

std::vector<Corruption> Table() {
  const auto spr = [] { return RealFirst("06-8f-08"); };   // 4 extended signatures
  const auto adl = [] { return RealFirst("06-9a-04"); };   // 2 extended signatures
  const auto skx = [] { return RealFirst("06-55-04"); };   // no extended table
  const auto p3 = [] { return RealFirst("06-08-06"); };    // legacy 2048-byte layout
  const auto gen = [] { return Generated(); };
  const auto gen_ext = [] { return Generated(3); };
  const auto oor = absl::StatusCode::kOutOfRange;
  return {
      // Truncations at every field boundary.
      {"empty input", skx, [](Bytes& b) { Truncate(b, 0); }, "header", oor},
      {"cut inside header field 0", skx, [](Bytes& b) { Truncate(b, 3); }, "header", oor},
      {"cut before datasize field", skx, [](Bytes& b) { Truncate(b, kDataSize); }, "header", oor},
      {"cut before reserved field", skx, [](Bytes& b) { Truncate(b, 44); }, "header", oor},
      {"cut one byte short of header", spr, [](Bytes& b) { Truncate(b, 47); }, "header", oor},
      {"header only", spr, [](Bytes& b) { Truncate(b, kHeaderSize); }, "totalsize", oor},
      {"cut mid data", skx, [](Bytes& b) { Truncate(b, b.size() / 2); }, "totalsize", oor},
      {"cut at end of data", spr, [](Bytes& b) { Truncate(b, DataEnd(b)); }, "totalsize", oor},
      {"cut inside ext table header", spr, [](Bytes& b) { Truncate(b, DataEnd(b) + 8); }, "totalsize", oor},
      {"cut inside ext entry", adl, [](Bytes& b) { Truncate(b, b.size() - 6); }, "totalsize", oor},
      {"cut one byte short", gen_ext, [](Bytes& b) { Truncate(b, b.size() - 1); }, "totalsize", oor},
      {"legacy cut to 2000", p3, [](Bytes& b) { Truncate(b, 2000); }, "totalsize", oor},
      // Zero and huge sizes.
      {"totalsize zero", skx, [](Bytes& b) { Set(b, kTotalSize, 0); }, "totalsize"},
      {"totalsize 47", gen, [](Bytes& b) { Set(b, kTotalSize, 47); }, "totalsize"},
      {"totalsize huge", spr, [](Bytes& b) { Set(b, kTotalSize, 0xffffffff); }, "totalsize", oor},
      {"totalsize one granule more", gen, [](Bytes& b) { Set(b, kTotalSize, Get(b, kTotalSize) + 1024); }, "totalsize", oor},
      {"datasize huge", skx, [](Bytes& b) { Set(b, kDataSize, 0xfffffff0); }, "datasize"},
      {"datasize past totalsize", gen, [](Bytes& b) { Set(b, kDataSize, Get(b, kTotalSize) - 44); }, "datasize"},
      // Header and loader versions (checked as one condition by the kernel).
      {"loader version 0", skx, [](Bytes& b) { Set(b, kLoaderVersion, 0); }, "loader version"},
      {"loader version 2", gen, [](Bytes& b) { Set(b, kLoaderVersion, 2); }, "loader version"},
      {"header version 0", spr, [](Bytes& b) { Set(b, kHeaderVersion, 0); }, "header version"},
      {"header version 2 (IFS)", gen, [](Bytes& b) { Set(b, kHeaderVersion, 2); }, "header version"},
      // Extended-table lies.
      {"ext table 4 bytes", gen, [](Bytes& b) { Set(b, kDataSize, Get(b, kDataSize) - 4); }, "extended table size"},
      {"ext table 25 bytes", gen, [](Bytes& b) { Set(b, kDataSize, Get(b, kDataSize) - 25); }, "extended table size"},
      {"ext count too large", spr, [](Bytes& b) { Set(b, DataEnd(b), Get(b, DataEnd(b)) + 1); }, "extended table count"},
      {"ext count zero", adl, [](Bytes& b) { Set(b, DataEnd(b), 0); }, "extended table count"},
      {"ext count wraps 32 bits", gen_ext, [](Bytes& b) { Set(b, DataEnd(b), 3 + (1u << 30)); }, "extended table count"},
      {"ext count all ones", gen_ext, [](Bytes& b) { Set(b, DataEnd(b), 0xffffffff); }, "extended table count"},
      {"ext table checksum", spr, [](Bytes& b) { b[DataEnd(b) + 12] ^= 0x40; }, "extended table checksum"},
      {"ext entry signature", adl, [](Bytes& b) { Set(b, DataEnd(b) + 20, 0x906a5); FixExtTableChecksum(b); }, "extended signature checksum"},
      {"ext entry checksum", gen_ext, [](Bytes& b) { Set(b, DataEnd(b) + 20 + 2 * 12 + 8, 7); FixExtTableChecksum(b); }, "extended signature checksum"},
      {"primary re-signed, ext table stale", spr, [](Bytes& b) { Set(b, kRevision, Get(b, kRevision) + 1); FixDataChecksum(b); }, "extended signature checksum"},
      // sig/pf/checksum trade off inside the per-entry sum: a signature change that the
      // checksum field absorbs still satisfies it, but the table's own sum must move.
      {"ext entry sig and checksum traded", adl, [](Bytes& b) { size_t e = DataEnd(b) + 20; Set(b, e, Get(b, e) + 1); Set(b, e + 8, Get(b, e + 8) - 2); }, "extended table checksum"},
      // The header+data checksum.
      {"data byte flipped", skx, [](Bytes& b) { b[kHeaderSize + 100] ^= 1; }, "data checksum"},
      {"last data byte flipped", spr, [](Bytes& b) { b[DataEnd(b) - 1] ^= 0x80; }, "data checksum"},
      {"revision changed", adl, [](Bytes& b) { Set(b, kRevision, Get(b, kRevision) + 1); }, "data checksum"},
      {"checksum field off by one", gen, [](Bytes& b) { Set(b, kChecksum, Get(b, kChecksum) + 1); }, "data checksum"},
      {"generated legacy checksum", Legacy, [](Bytes& b) { Set(b, kChecksum, 0); }, "data checksum"},
      {"legacy data flipped", p3, [](Bytes& b) { b[1000] ^= 4; }, "data checksum"},
      // SDM rules the kernel skips.
      {"datasize not whole dwords", [] { return Generated(0, 0x9400 - kHeaderSize); },
       [](Bytes& b) { Truncate(b, 0x9102); Set(b, kTotalSize, 0x9102); Set(b, kDataSize, 0x9102 - kHeaderSize); FixDataChecksum(b); },
       "datasize: 0x90d2 not a multiple of 4"},
      {"totalsize not whole KiB", [] { return Generated(0, 0x9400 - kHeaderSize); },
       [](Bytes& b) { Truncate(b, 0x9100); Set(b, kTotalSize, 0x9100); Set(b, kDataSize, 0x9100 - kHeaderSize); FixDataChecksum(b); },
       "totalsize: 0x9100 not a multiple of 1024"},
      {"real image shortened to 0x400 short", skx,
       [](Bytes& b) { size_t t = b.size() - 0x200; Truncate(b, t); Set(b, kTotalSize, t); Set(b, kDataSize, t - kHeaderSize); FixDataChecksum(b); },
       "totalsize"},
      // Bundles with one bad member.
      {"bundle: middle member checksum", [] { return Concat({Generated(), Generated(2), Generated()}); },
       [](Bytes& b) { b[Get(b, kTotalSize) + 200] ^= 1; }, "image at offset 0xc00: data checksum", absl::StatusCode::kInvalidArgument, true},
      {"bundle: trailing garbage", [] { return RealWhole("06-8f-08"); },
       [](Bytes& b) { b.insert(b.end(), 10, 0xaa); }, "image at offset 0x129c00: header: 0xa bytes available", oor, true},
      {"bundle: last member truncated", [] { return RealWhole("06-05-03"); },
       [](Bytes& b) { Truncate(b, b.size() - 100); }, "image at offset 0x1800: totalsize", oor, true},
      {"bundle: second member bad loader", [] { return RealWhole("06-9a-04"); },
       [](Bytes& b) { Set(b, 0x36c00 + kLoaderVersion, 3); }, "image at offset 0x36c00: loader version", absl::StatusCode::kInvalidArgument, true},
  };
}

class CorruptionTest : public ::testing::TestWithParam<Corruption> {};

TEST_P(CorruptionTest, RejectedByTheNamedCheck) {
  const Corruption& c = GetParam();
  Bytes bytes = c.base();
  if (bytes.empty()) GTEST_SKIP() << "base image unavailable (release data missing?)";
  // The base must be valid, so the rejection is due to the mutation alone.
  ASSERT_TRUE(ParseBundleStrict(bytes).ok()) << ParseBundleStrict(bytes).status();
  c.mutate(bytes);
  absl::Status status =
      c.bundle ? ParseBundleStrict(bytes).status() : ParseImage(bytes).status();
  ASSERT_FALSE(status.ok()) << c.name;
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith(c.check)) << c.name;
  EXPECT_EQ(status.code(), c.code) << c.name << ": " << status;
}

INSTANTIATE_TEST_SUITE_P(Table, CorruptionTest, ::testing::ValuesIn(Table()),
                         [](const ::testing::TestParamInfo<Corruption>& info) {
                           std::string n;
                           for (char ch : info.param.name) n += std::isalnum(ch) ? ch : '_';
                           return n;
                         });

TEST(CorruptionTableTest, HasAtLeastThirtyDistinctCases) {
  std::vector<Corruption> table = Table();
  EXPECT_GE(table.size(), 30u);
  std::set<std::string> names;
  for (const Corruption& c : table) names.insert(c.name);
  EXPECT_EQ(names.size(), table.size());
}

}  // namespace
}  // namespace ucode::microcode
