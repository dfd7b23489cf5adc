// Runs a helper program (the tests/linux_guest scripts) and captures its stdout.
#ifndef UCODE_TESTS_LIBVIRT_GUEST_SUBPROCESS_H_
#define UCODE_TESTS_LIBVIRT_GUEST_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ucode::testing {

struct CommandResult {
  int exit_code = -1;  // 128 + N when killed by signal N, as shells report it
  std::string out;     // stdout; stderr goes to ours (the test log)
};

// Runs argv[0] (looked up in PATH) with argv, waits for it. Errors only when it cannot
// be started or waited for; a non-zero exit is a result, not an error.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv);

}  // namespace ucode::testing

#endif  // UCODE_TESTS_LIBVIRT_GUEST_SUBPROCESS_H_
