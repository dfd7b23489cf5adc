#include "vmm/orchestrator/domain_pauser.h"

#include "absl/strings/str_cat.h"

namespace ucode::orchestrator {

absl::Status ParsePauseMode(absl::string_view text, PauseMode* mode) {
  if (text == "auto") {
    *mode = PauseMode::kAuto;
  } else if (text == "freeze") {
    *mode = PauseMode::kFreeze;
  } else if (text == "suspend") {
    *mode = PauseMode::kSuspend;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--pause ", text, ": expected freeze, suspend or auto"));
  }
  return absl::OkStatus();
}

const char* PauseModeName(PauseMode mode) {
  switch (mode) {
    case PauseMode::kAuto:
      return "auto";
    case PauseMode::kFreeze:
      return "freeze";
    case PauseMode::kSuspend:
      return "suspend";
  }
  return "?";
}

}  // namespace ucode::orchestrator
