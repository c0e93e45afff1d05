// The local launcher behind `sgs run --nproc N`.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace sgs {

// `sgs run --nproc N`: runs `argv` (this program, without --nproc) as N ranks
// on this machine with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1 and a free MASTER_PORT; ranks > 0 get stdin from
// /dev/null. Waits for all. When one fails, prints which, stops the others
// (SIGTERM, then SIGKILL after `grace`) and returns its exit status; SIGINT
// and SIGTERM are passed on to the ranks. Returns 0 when all succeed.
int launch_local_ranks(int nproc, const std::vector<std::string>& argv,
                       std::chrono::milliseconds grace = std::chrono::seconds(30));

// The arguments this process was started with (from /proc/self/cmdline).
std::vector<std::string> own_command_line();

}  // namespace sgs
