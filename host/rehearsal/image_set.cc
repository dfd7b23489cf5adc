#include "host/rehearsal/image_set.h"

#include <filesystem>
#include <optional>
#include <system_error>

#include "absl/strings/str_format.h"
#include "host/microcode/release_dir.h"
#include "host/microcode/selection.h"

namespace ucode::rehearsal {
namespace {

std::string BaseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

}  // namespace

std::string InvalidImage::Where() const { return absl::StrFormat("%s@0x%x", file, offset); }

std::string SourcedImage::Where() const {
  return absl::StrFormat("%s@0x%x", file, image.offset);
}

ImageSet ImageSet::Load(const std::vector<std::string>& paths) {
  ImageSet set;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) {
      set.AddFile(path);
      continue;
    }
    absl::StatusOr<std::vector<std::string>> files = microcode::ListFiles(path);
    if (!files.ok()) {
      set.invalid_.push_back({BaseName(path), 0, 0, std::string(files.status().message())});
      continue;
    }
    for (const std::string& file : *files) set.AddFile(file);
  }
  return set;
}

void ImageSet::AddFile(const std::string& path) {
  const std::string file = BaseName(path);
  absl::StatusOr<std::vector<uint8_t>> bytes =
      microcode::ReadFileBytes(path, kMaxImageSetBytes - total_bytes_);
  if (!bytes.ok()) {
    invalid_.push_back({file, 0, 0, std::string(bytes.status().message())});
    return;
  }
  if (bytes->empty()) {
    invalid_.push_back({file, 0, 0, "empty file holds no image"});
    return;
  }
  total_bytes_ += bytes->size();
  buffers_.push_back(std::make_unique<std::vector<uint8_t>>(*std::move(bytes)));
  const std::vector<uint8_t>& buffer = *buffers_.back();
  for (microcode::BundleEntry& entry : microcode::ParseBundle(buffer)) {
    if (entry.image.ok()) {
      valid_.push_back({path, file, *std::move(entry.image)});
      continue;
    }
    std::optional<microcode::MicrocodeHeader> header =
        microcode::PeekHeader(absl::MakeConstSpan(buffer).subspan(entry.offset));
    invalid_.push_back({file, entry.offset, header ? header->signature : 0,
                        std::string(entry.image.status().message())});
  }
}

Candidates ImageSet::CandidatesFor(uint32_t signature) const {
  const std::string name = microcode::FirmwareFileName(signature);
  Candidates out;
  for (const SourcedImage& s : valid_) out.by_file_name |= s.file == name;
  for (const InvalidImage& s : invalid_) out.by_file_name |= s.file == name;
  for (const SourcedImage& s : valid_) {
    if (out.by_file_name && s.file != name) continue;
    out.images.push_back(s.image);
    out.sources.push_back(&s);
  }
  return out;
}

}  // namespace ucode::rehearsal
