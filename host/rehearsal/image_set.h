// The microcode images a rehearsal reads: every member of every file given (directories one
// level deep, as a release's intel-ucode/ is laid out), each kept with where it came from.
#ifndef UCODE_HOST_REHEARSAL_IMAGE_SET_H_
#define UCODE_HOST_REHEARSAL_IMAGE_SET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/microcode/microcode_image.h"

namespace ucode::rehearsal {

// Intel's whole 20251111 release is 15 MiB; a set refuses files past this total rather than
// read whatever a misdirected path holds.
inline constexpr size_t kMaxImageSetBytes = size_t{512} << 20;

// A member that failed validation (or a path that could not be read: offset 0, no header).
struct InvalidImage {
  std::string file;                    // base name, e.g. "06-8f-08"
  size_t offset = 0;
  uint32_t signature = 0;              // from the raw header when there is one, else 0
  std::string error;                   // ParseImage's message: the check and the values

  [[nodiscard]] std::string Where() const;  // "06-8f-08@0x98c00"
};

struct SourcedImage {
  std::string path;   // as given (directory entries joined to their directory)
  std::string file;   // base name: the firmware file name for a release's files
  microcode::MicrocodeImage image;

  [[nodiscard]] std::string Where() const;  // "06-8f-08@0x98c00"
};

// The images the kernel would consider for one CPU, in the order SelectImage sees them.
struct Candidates {
  std::vector<microcode::MicrocodeImage> images;
  std::vector<const SourcedImage*> sources;  // parallel to images
  bool by_file_name = false;  // only the file named after the signature (see CandidatesFor)
};

// Move-only: the images view buffers the set owns.
class ImageSet {
 public:
  // Reads every path (a regular file, or a directory whose regular files are read in name
  // order). Never fails as a whole: unreadable paths and invalid members are listed.
  static ImageSet Load(const std::vector<std::string>& paths);

  ImageSet(ImageSet&&) = default;
  ImageSet& operator=(ImageSet&&) = default;
  ImageSet(const ImageSet&) = delete;
  ImageSet& operator=(const ImageSet&) = delete;

  [[nodiscard]] const std::vector<SourcedImage>& valid() const { return valid_; }
  [[nodiscard]] const std::vector<InvalidImage>& invalid() const { return invalid_; }

  // Linux requests only intel-ucode/<FirmwareFileName(signature)> for a CPU (the kernel's
  // request_microcode_fw() in arch/x86/kernel/cpu/microcode/intel.c), so when the set has
  // a file of that name its images are the candidates; otherwise (a bundle, files named
  // otherwise) every image is.
  [[nodiscard]] Candidates CandidatesFor(uint32_t signature) const;

 private:
  ImageSet() = default;
  void AddFile(const std::string& path);

  std::vector<std::unique_ptr<std::vector<uint8_t>>> buffers_;
  size_t total_bytes_ = 0;
  std::vector<SourcedImage> valid_;
  std::vector<InvalidImage> invalid_;
};

}  // namespace ucode::rehearsal

#endif  // UCODE_HOST_REHEARSAL_IMAGE_SET_H_
