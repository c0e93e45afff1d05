// Where this process sits in a data-parallel job, read from the environment
// (torchrun's variables or Slurm's), without LibTorch: the launcher and the
// CLI read it before anything trains. The c10d side is sgs/distributed.h.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace sgs {

struct World {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "single";  // single | env (torchrun's variables) | slurm
};

// The default time a collective or the rendezvous may wait for the others.
constexpr std::chrono::seconds kDefaultDistTimeout{60};

// This process's place from the environment:
//  - RANK, WORLD_SIZE (required together), LOCAL_RANK, LOCAL_WORLD_SIZE,
//    MASTER_ADDR, MASTER_PORT as torchrun (or `sgs run --nproc`) sets them;
//  - else SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE
//    (srun), with MASTER_ADDR (default: the first host of SLURM_STEP_NODELIST
//    / SLURM_JOB_NODELIST / SLURM_NODELIST) and MASTER_PORT (default: derived
//    from SLURM_JOB_ID and SLURM_STEP_ID, in [15000, 35000));
//  - else one process. Throws ConfigError naming a bad variable.
// `getenv` is injectable for tests.
World world_from_environment(const std::function<const char*(const char*)>& getenv = nullptr);

// The first host of a Slurm node list: "gpu[07-09,12],cpu1" -> "gpu07".
std::string first_slurm_host(const std::string& nodelist);

// True when this build has c10d's Gloo process group (SGS_C10D_GLOO).
bool distributed_available();

}  // namespace sgs
