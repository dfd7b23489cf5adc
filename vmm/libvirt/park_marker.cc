#include "vmm/libvirt/park_marker.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {
namespace {

// The element's name in the domain XML (the key is its namespace prefix there).
constexpr char kKey[] = "ucode";
constexpr char kAttr[] = "operation=\"";
constexpr size_t kAttrLen = sizeof(kAttr) - 1;

bool PlainOperationName(absl::string_view op) {
  if (op.empty()) return false;
  for (char c : op) {
    if (!absl::ascii_isalnum(c) && c != '/' && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::Status SetParkMarker(const Domain& domain, absl::string_view operation) {
  if (!PlainOperationName(operation)) {
    return absl::InvalidArgumentError(absl::StrCat("park marker for ", domain.name(),
                                                   ": operation name '", operation,
                                                   "' is not plain (letters, digits, /._-)"));
  }
  const std::string xml = absl::StrCat("<park ", kAttr, operation, "\"/>");
  if (virDomainSetMetadata(domain.get(), VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(), kKey,
                           kParkMarkerUri, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    return LastErrorStatus(absl::StrCat("virDomainSetMetadata (park marker) ", domain.name()));
  }
  return absl::OkStatus();
}

absl::Status ClearParkMarker(const Domain& domain) {
  // A null element removes ours (libvirt-domain.h, virDomainSetMetadata); removing one
  // that is absent succeeds.
  if (virDomainSetMetadata(domain.get(), VIR_DOMAIN_METADATA_ELEMENT, nullptr, nullptr,
                           kParkMarkerUri, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    return LastErrorStatus(
        absl::StrCat("virDomainSetMetadata (remove park marker) ", domain.name()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> ReadParkMarker(const Domain& domain) {
  char* xml = virDomainGetMetadata(domain.get(), VIR_DOMAIN_METADATA_ELEMENT, kParkMarkerUri,
                                   VIR_DOMAIN_AFFECT_LIVE);
  if (xml == nullptr) {
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN_METADATA) return std::nullopt;
    return LastErrorStatus(absl::StrCat("virDomainGetMetadata (park marker) ", domain.name()));
  }
  const std::string text(xml);
  free(xml);
  // libvirt gives back the element it stored, re-serialized by libxml2 (double quotes).
  // Set wrote only plain names, so the value ends at the next quote.
  const size_t at = text.find(kAttr);
  const size_t end = at == std::string::npos ? at : text.find('"', at + kAttrLen);
  if (end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("virDomainGetMetadata (park marker) ", domain.name(),
                                            ": no operation in '", text.substr(0, 120), "'"));
  }
  return text.substr(at + kAttrLen, end - at - kAttrLen);
}

}  // namespace ucode::libvirt
