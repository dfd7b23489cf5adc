#include "host/platform/mailbox_model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_format.h"
#include "host/microcode/microcode_image.h"
#include "host/platform/mailbox_protocol.h"

namespace ucode::platform {
namespace {

// Images larger than this are refused when their header arrives (the largest public image,
// 06-ad-01 in the 20251111 release, is 3.3 MB).
constexpr size_t kMaxImageBytes = 64u << 20;

struct FaultName {
  MailboxFault fault;
  absl::string_view name;
};
constexpr FaultName kFaultNames[] = {
    {MailboxFault::kNone, "none"},
    {MailboxFault::kRepeatChunk, "repeat-chunk"},
    {MailboxFault::kRestartFromZero, "restart-from-zero"},
    {MailboxFault::kStatusError, "status-error"},
    {MailboxFault::kResponseError, "response-error"},
    {MailboxFault::kBadResponseHeader, "bad-response-header"},
    {MailboxFault::kOffsetPastEnd, "offset-past-end"},
    {MailboxFault::kNeverReady, "never-ready"},
};

}  // namespace

absl::StatusOr<MailboxFault> ParseMailboxFault(absl::string_view name) {
  for (const FaultName& f : kFaultNames) {
    if (f.name == name) return f.fault;
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown mailbox fault '%s'", name));
}

MailboxModel::MailboxModel(MailboxBehavior behavior) { set_behavior(behavior); }

void MailboxModel::set_behavior(const MailboxBehavior& behavior) {
  behavior_ = behavior;
  cost_ns_ = std::max<int64_t>(0, absl::ToInt64Nanoseconds(behavior.access_cost));
}

void MailboxModel::PayAccessCost() {
  if (cost_owed_ns_ == 0) return;
  charged_ns_.Add(static_cast<uint64_t>(cost_owed_ns_));
  const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(cost_owed_ns_);
  cost_owed_ns_ = 0;
  while (std::chrono::steady_clock::now() < end) {
  }
}

bool MailboxModel::GoPending() const {
  return behavior_.stale_ready > absl::ZeroDuration() && absl::Now() < taken_at_;
}

uint32_t MailboxModel::Read32(uint32_t offset) {
  register_accesses_.Add(1);
  cost_owed_ns_ += cost_ns_;
  if (GoPending()) return offset == kMboxStatusOffset ? stale_status_ : 0;
  if (offset == kMboxRdDataOffset) {
    return response_index_ < response_len_ ? response_[response_index_] : 0;
  }
  if (offset == kMboxStatusOffset) {
    if (never_ready_) return 0;
    // The clock is read only for a slow device: a zero-delay device is ready at GO.
    if (behavior_.transaction_delay > absl::ZeroDuration() && absl::Now() < ready_at_) return 0;
    return status_;
  }
  return 0;
}

void MailboxModel::Write32(uint32_t offset, uint32_t value) {
  register_accesses_.Add(1);
  cost_owed_ns_ += cost_ns_;
  switch (offset) {
    case kMboxWrDataOffset:
      // One extra dword marks the request as oversized; Process() reports it.
      if (request_len_ <= kMaxRequestDwords) request_[request_len_++] = value;
      break;
    case kMboxRdDataOffset:
      // Writing 0 acknowledges the dword just read and exposes the next one; the last
      // acknowledgement ends the transaction.
      if (value == 0 && !GoPending() && response_index_ < response_len_ &&
          ++response_index_ == response_len_) {
        PayAccessCost();
      }
      break;
    case kMboxControlOffset:
      if (value & kMboxControlAbort) {
        Abort();
      } else if (value & kMboxControlGo) {
        Go();
      }
      break;
    default:
      break;
  }
}

void MailboxModel::Abort() {
  PayAccessCost();
  request_len_ = 0;
  response_len_ = 0;
  response_index_ = 0;
  status_ = 0;
  never_ready_ = false;
  ready_at_ = absl::InfinitePast();
  taken_at_ = absl::InfinitePast();
  stale_status_ = 0;
  buffer_.clear();
  image_size_ = 0;
  expected_offset_ = 0;
  transaction_ = 0;
  chunks_since_restart_ = 0;
  faults_done_ = 0;
  // A new transfer replaces whatever was staged before.
  std::lock_guard<std::mutex> lock(mu_);
  if (!staged_.empty()) {
    staged_.clear();
    ++staged_generation_;
  }
}

void MailboxModel::RecordProtocolError(std::string message) {
  protocol_errors_.Add(1);
  std::lock_guard<std::mutex> lock(mu_);
  last_protocol_error_ = std::move(message);
}

absl::StatusOr<uint32_t> MailboxModel::Process() {
  constexpr size_t kPrefixDwords = (kMboxHeaderBytes + kMboxCommandBytes) / 4;
  if (request_len_ < kPrefixDwords) {
    return absl::InvalidArgumentError(
        absl::StrFormat("request of %u dwords is shorter than header + command", request_len_));
  }
  if (request_len_ > kMaxRequestDwords) {
    return absl::InvalidArgumentError("request longer than header + command + one page");
  }
  const uint64_t header = request_[0] | (uint64_t{request_[1]} << 32);
  const uint64_t size_dwords = header >> 32;
  if ((header & 0xFFFFFFFF) != (MboxHeader(0) & 0xFFFFFFFF)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mailbox header 0x%016x: vendor/object 0x%08x, expected 0x%08x", header,
        header & 0xFFFFFFFF, MboxHeader(0) & 0xFFFFFFFF));
  }
  if (size_dwords != request_len_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mailbox header size %u dwords but %u dwords written", size_dwords, request_len_));
  }
  const uint64_t command = request_[2] | (uint64_t{request_[3]} << 32);
  if (command != kMboxCommandLoad) {
    return absl::InvalidArgumentError(
        absl::StrFormat("command 0x%x, expected LOAD 0x%x", command, kMboxCommandLoad));
  }
  const size_t bytes = (request_len_ - kPrefixDwords) * 4;
  const uint8_t* data = reinterpret_cast<const uint8_t*>(request_.data() + kPrefixDwords);
  if (expected_offset_ == 0 && image_size_ == 0) {
    // The image header sizes the transfer, by the kernel's get_totalsize(): a zero datasize
    // (byte 28) means the legacy 2048-byte image, whatever totalsize (byte 32) holds.
    if (bytes < microcode::kHeaderSize) {
      return absl::InvalidArgumentError(
          absl::StrFormat("first chunk of %u bytes does not hold the image header", bytes));
    }
    uint32_t datasize, total;
    std::memcpy(&datasize, data + 28, sizeof(datasize));
    std::memcpy(&total, data + 32, sizeof(total));
    const size_t size = datasize == 0 ? microcode::kDefaultTotalSize : total;
    if (size < microcode::kHeaderSize || size > kMaxImageBytes || size % 4 != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("image header total size 0x%x unacceptable", total));
    }
    image_size_ = size;
    buffer_.assign(size, 0);
  }
  const size_t expected = std::min(kMboxChunkBytes, image_size_ - expected_offset_);
  if (bytes != expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "chunk at offset 0x%x has 0x%x bytes, expected 0x%x", expected_offset_, bytes, expected));
  }
  std::memcpy(buffer_.data() + expected_offset_, data, bytes);
  ++chunks_since_restart_;
  return static_cast<uint32_t>(expected_offset_ + bytes);
}

void MailboxModel::Go() {
  PayAccessCost();
  const int txn = transaction_++;
  if (behavior_.stale_ready > absl::ZeroDuration()) {
    stale_status_ = status_;
    taken_at_ = absl::Now() + behavior_.stale_ready;
  }
  status_ = 0;
  response_len_ = 0;
  response_index_ = 0;
  if (behavior_.transaction_delay > absl::ZeroDuration()) {
    ready_at_ = absl::Now() + behavior_.transaction_delay;
  }
  const bool fault_now = txn == behavior_.at;
  const MailboxFault fault = behavior_.fault;
  if (fault == MailboxFault::kNeverReady && fault_now) {
    never_ready_ = true;
    request_len_ = 0;
    return;
  }
  const uint32_t chunk_offset = expected_offset_;
  absl::StatusOr<uint32_t> next = Process();
  request_len_ = 0;
  if (!next.ok() || (fault == MailboxFault::kStatusError && fault_now)) {
    if (!next.ok()) RecordProtocolError(std::string(next.status().message()));
    status_ = kMboxStatusReady | kMboxStatusError;
    return;
  }
  uint32_t offset = *next;
  uint32_t response_status = kMboxResponseSuccess;
  uint64_t header = kMboxResponseHeader;
  if (fault == MailboxFault::kRepeatChunk && txn >= behavior_.at && faults_done_ < behavior_.count) {
    ++faults_done_;
    offset = chunk_offset;
  } else if (fault == MailboxFault::kRestartFromZero && faults_done_ < behavior_.count &&
             chunks_since_restart_ == behavior_.at + 1) {
    ++faults_done_;
    buffer_.clear();
    image_size_ = 0;
    chunks_since_restart_ = 0;
    offset = 0;
  } else if (fault_now && fault == MailboxFault::kResponseError) {
    response_status = kMboxResponseError;
    offset = chunk_offset;
  } else if (fault_now && fault == MailboxFault::kBadResponseHeader) {
    header = MboxHeader(kMboxHeaderBytes + kMboxResponseBytes + 4);
  } else if (fault_now && fault == MailboxFault::kOffsetPastEnd) {
    offset = static_cast<uint32_t>(image_size_ + kMboxChunkBytes);
  }
  if (response_status == kMboxResponseSuccess && offset == image_size_ && image_size_ != 0) {
    // Complete: the device checks what it stored before accepting it for activation.
    absl::StatusOr<microcode::MicrocodeImage> image = microcode::ParseImage(buffer_);
    if (!image.ok() || image->total_size() != image_size_) {
      RecordProtocolError(image.ok() ? "staged image size mismatch"
                                     : std::string(image.status().message()));
      response_status = kMboxResponseError;
    } else {
      CompleteStaging();
      offset = kMboxOffsetEnd;
    }
  }
  if (offset != kMboxOffsetEnd && offset <= image_size_) expected_offset_ = offset;
  Respond(header, offset, response_status);
}

void MailboxModel::CompleteStaging() {
  std::lock_guard<std::mutex> lock(mu_);
  staged_ = std::move(buffer_);
  buffer_.clear();
  ++staged_generation_;
}

void MailboxModel::Respond(uint64_t header, uint32_t offset, uint32_t status) {
  response_ = {static_cast<uint32_t>(header), static_cast<uint32_t>(header >> 32), offset, status};
  response_len_ = response_.size();
  response_index_ = 0;
  status_ = kMboxStatusReady;
}

bool MailboxModel::HoldsStagedImage(absl::Span<const uint8_t> image) const {
  std::lock_guard<std::mutex> lock(mu_);
  return !staged_.empty() && staged_.size() == image.size() &&
         std::memcmp(staged_.data(), image.data(), image.size()) == 0;
}

size_t MailboxModel::staged_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return staged_.size();
}

uint64_t MailboxModel::staged_generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return staged_generation_;
}

MailboxStats MailboxModel::stats() const {
  return MailboxStats{.register_accesses = register_accesses_.Get(),
                      .protocol_errors = protocol_errors_.Get(),
                      .charged_access_time = absl::Nanoseconds(charged_ns_.Get())};
}

std::string MailboxModel::last_protocol_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_protocol_error_;
}

}  // namespace ucode::platform
