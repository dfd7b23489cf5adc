// Everything a hook started, found and killed through /proc. A hook's process group is not
// enough: a child that calls setsid(2) leaves it. The agent is a child subreaper
// (prctl PR_SET_CHILD_SUBREAPER), so an orphaned descendant is re-parented to the agent
// rather than to init, and stays in the agent's tree until it is killed and reaped.
#ifndef UCODE_GUEST_AGENT_PROCESS_TREE_H_
#define UCODE_GUEST_AGENT_PROCESS_TREE_H_

#include <sys/types.h>

#include <vector>

namespace ucode_agent {

// Makes the calling process a child subreaper. False (errno set) if the kernel refuses.
bool BecomeSubreaper();

// The calling process's descendants (children, their children, ...), from /proc.
std::vector<pid_t> Descendants();

// SIGKILLs every descendant and reaps them, until none is left (a process forking while
// it is being killed is found on the next pass). Returns how many were killed. Call only
// when every child of the caller may die: the agent runs one hook at a time, single-threaded.
int KillAllDescendants();

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_PROCESS_TREE_H_
