// Child processes of the application layer (suite runs, local ranks): how
// they are started, how signals reach them, and what their wait status
// means, each said once. Catching SIGINT/SIGTERM: sgs/interrupt.h.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace sgs {

struct ChildSpec {
  std::string binary;               // the program executed ("/proc/self/exe" for this one)
  std::vector<std::string> argv;    // argv[0] first
  std::vector<std::pair<std::string, std::string>> env;  // set in the child, over this process's environment
  int output_fd = -1;               // stdout and stderr go there when >= 0
  int error_fd = -1;                // stderr goes there instead when >= 0
  bool null_stdin = false;          // stdin from /dev/null
  int inherit_fd = -1;              // a descriptor the child keeps across exec (e.g. a run's lock)
  bool die_with_parent = false;     // SIGTERM to the child when this process dies
  bool new_group = false;           // the child leads a new process group (its pid)
  std::string exec_failed;          // written to the child's stderr when exec fails (exit 127)
};

// Forks and executes; returns the child's pid. Everything is prepared before
// fork, so the child only calls async-signal-safe functions. The child starts
// with no signals blocked and default dispositions. Throws when fork fails.
pid_t spawn(const ChildSpec& spec);

// Sends `sig` to every pid > 0.
void signal_all(const std::vector<pid_t>& pids, int sig);

// "exit 3", "killed by signal 9 (Killed)".
std::string describe_exit(int wait_status);

// The status a shell would report: the exit code, or 128 + the signal.
int exit_code(int wait_status);

}  // namespace sgs
