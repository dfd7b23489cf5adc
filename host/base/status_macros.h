// Early-return helpers for absl::Status / absl::StatusOr. Debian bookworm's Abseil
// (20220623) does not ship absl/status/status_macros.h, so we keep these two here.
#ifndef UCODE_HOST_BASE_STATUS_MACROS_H_
#define UCODE_HOST_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define UCODE_STATUS_CONCAT_INNER_(a, b) a##b
#define UCODE_STATUS_CONCAT_(a, b) UCODE_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status ucode_status_ = (expr);         \
    if (!ucode_status_.ok()) return ucode_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(T v, Fn())` declares `v` from the value of a StatusOr, or returns
// its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  UCODE_ASSIGN_OR_RETURN_IMPL_(UCODE_STATUS_CONCAT_(ucode_statusor_, __LINE__), lhs, expr)

#define UCODE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // UCODE_HOST_BASE_STATUS_MACROS_H_
