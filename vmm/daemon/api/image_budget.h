// A bound on the image bytes ucoded holds at once (requests being validated or inspected,
// and the running operation's image), so that concurrent callers sending large images get
// RESOURCE_EXHAUSTED instead of growing the daemon without bound (30 concurrent 16 MiB
// InspectImage calls reached 867 MB).
#ifndef UCODE_VMM_DAEMON_API_IMAGE_BUDGET_H_
#define UCODE_VMM_DAEMON_API_IMAGE_BUDGET_H_

#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace ucode::daemon {

class ImageBudget {
 public:
  explicit ImageBudget(size_t limit_bytes) : limit_(limit_bytes) {}
  ImageBudget(const ImageBudget&) = delete;
  ImageBudget& operator=(const ImageBudget&) = delete;

  // Bytes held until destroyed (or moved from). Thread-safe.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept : budget_(other.budget_), bytes_(other.bytes_) {
      other.budget_ = nullptr;
    }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Return(); }

   private:
    friend class ImageBudget;
    Lease(ImageBudget* budget, size_t bytes) : budget_(budget), bytes_(bytes) {}
    void Return();
    ImageBudget* budget_ = nullptr;
    size_t bytes_ = 0;
  };

  // RESOURCE_EXHAUSTED (retry later) when `bytes` more would pass the limit; `what` names
  // the request in the message.
  absl::StatusOr<Lease> Acquire(size_t bytes, absl::string_view what);

 private:
  const size_t limit_;
  absl::Mutex mu_;
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_API_IMAGE_BUDGET_H_
