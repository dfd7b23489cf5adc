#include "vmm/libvirt/libvirt_status.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"

namespace ucode::libvirt {
namespace {

absl::StatusCode CodeFor(int libvirt_code) {
  switch (libvirt_code) {
    case VIR_ERR_NO_DOMAIN:
      return absl::StatusCode::kNotFound;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_OPERATION_UNSUPPORTED:
      return absl::StatusCode::kUnimplemented;
    case VIR_ERR_OPERATION_INVALID:
      return absl::StatusCode::kFailedPrecondition;
    case VIR_ERR_OPERATION_TIMEOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case VIR_ERR_AGENT_UNRESPONSIVE:
    case VIR_ERR_AGENT_UNSYNCED:
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_RPC:
      return absl::StatusCode::kUnavailable;
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_INVALID_DOMAIN:
    case VIR_ERR_NO_NAME:
      return absl::StatusCode::kInvalidArgument;
    case VIR_ERR_OPERATION_DENIED:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_ACCESS_DENIED:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

void IgnoreError(void* /*user_data*/, virErrorPtr /*error*/) {}

}  // namespace

absl::Status LastErrorStatus(absl::string_view what) {
  virErrorPtr err = virGetLastError();
  if (err == nullptr) {
    return absl::InternalError(absl::StrCat(what, ": failed without a libvirt error"));
  }
  return absl::Status(CodeFor(err->code),
                      absl::StrCat(what, ": ", err->message != nullptr ? err->message : "",
                                   " (libvirt error ", err->code, ")"));
}

void SilenceDefaultErrorHandler() {
  static absl::once_flag once;
  absl::call_once(once, [] { virSetErrorFunc(nullptr, IgnoreError); });
}

}  // namespace ucode::libvirt
