// Runs the executable hooks of a directory, in name order, under one deadline.
//
// Hooks are the guest owner's code; what the host sends only ever reaches them
// as environment variable values, never as a command line: each hook is
// started with fork + execve of its own path, argv = {path}, a clean
// environment, stdin on /dev/null and stdout+stderr captured (bounded). A hook
// that outlives the deadline is killed with everything it started, and nothing a
// hook started outlives it: its process group, and any descendant that left the
// group (setsid), are killed when it ends (the agent is a child subreaper, so
// orphans stay in its tree: process_tree.h).
//
// Which files count follows Debian's run-parts(8): names made only of ASCII
// letters, digits, '_' and '-', regular files with an execute bit; anything
// else (editor backups, "*.dpkg-old", dotfiles) is skipped.
//
// Hooks run as root, so only what root alone could have written runs: the
// directory and each hook must be owned by root (or the agent's own user) and not
// writable by group or others, and a hook must be a regular file, not a symlink.
// Anything else is refused, not run, and reported as a failed hook (or, for the
// directory, as the run's error).
#ifndef UCODE_GUEST_AGENT_HOOKS_H_
#define UCODE_GUEST_AGENT_HOOKS_H_

#include <chrono>
#include <string>
#include <vector>

namespace ucode_agent {

struct HookOutcome {
  std::string name;
  bool ok = false;
  std::string reason;  // "exit status 3", "killed by signal 9", "timed out after 500 ms", ...
  std::string output;  // first max_output_bytes of stdout+stderr
};

struct HookRun {
  bool ok = true;  // every hook that ran succeeded and the directory was readable
  std::string error;  // directory-level problem (unreadable directory, fork failure)
  std::vector<HookOutcome> hooks;
};

struct HookOptions {
  std::chrono::milliseconds deadline{10000};  // for all hooks of the directory together
  size_t max_output_bytes = 4096;
  bool stop_on_failure = true;
  // "NAME=value" entries; PATH is added by RunHooks.
  std::vector<std::string> env;
};

// A missing directory holds no hooks (success). Only the calling thread's
// children are waited for; the agent is single-threaded.
[[nodiscard]] HookRun RunHooks(const std::string& dir, const HookOptions& options);

// The hook names RunHooks would run, sorted (exposed for tests).
[[nodiscard]] std::vector<std::string> ListHooks(const std::string& dir, std::string* error);

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_HOOKS_H_
