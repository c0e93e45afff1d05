// Child processes of the application layer (suite runs, local ranks): what
// their wait status means, said once.
#pragma once

#include <string>

namespace sgs {

// "exit 3", "killed by signal 9 (Killed)".
std::string describe_exit(int wait_status);

// The status a shell would report: the exit code, or 128 + the signal.
int exit_code(int wait_status);

}  // namespace sgs
