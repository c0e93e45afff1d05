// World from the environment (sgs/world.h): no LibTorch here.
#include <sgs/errors.h>
#include <sgs/world.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace sgs {

namespace {

int parse_int(const char* name, const char* value, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < lo || v > hi)
    throw ConfigError(std::string(name) + ": expected an integer in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], got '" + value + "'");
  return static_cast<int>(v);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry: up to the first comma outside brackets.
  std::string first;
  int depth = 0;
  for (char ch : nodelist) {
    if (ch == '[') ++depth;
    if (ch == ']') --depth;
    if (ch == ',' && depth == 0) break;
    first += ch;
  }
  auto open = first.find('[');
  if (open == std::string::npos) return first;
  auto close = first.find(']', open);
  if (close == std::string::npos) throw ConfigError("SLURM node list '" + nodelist + "': unbalanced '['");
  std::string range = first.substr(open + 1, close - open - 1);
  std::string lo = range.substr(0, range.find_first_of(",-"));  // keeps zero padding: "07"
  return first.substr(0, open) + lo + first.substr(close + 1);
}

World world_from_environment(const std::function<const char*(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  World w;
  const char* rank = env("RANK");
  const char* size = env("WORLD_SIZE");
  if (rank != nullptr || size != nullptr) {
    if (rank == nullptr || size == nullptr)
      throw ConfigError(std::string(rank ? "WORLD_SIZE" : "RANK") + ": must be set together with " +
                        (rank ? "RANK" : "WORLD_SIZE"));
    w.source = "env";
    w.world_size = parse_int("WORLD_SIZE", size, 1, 1 << 20);
    w.rank = parse_int("RANK", rank, 0, w.world_size - 1);
    w.local_rank = env("LOCAL_RANK") ? parse_int("LOCAL_RANK", env("LOCAL_RANK"), 0, w.world_size - 1) : 0;
    w.local_world_size =
        env("LOCAL_WORLD_SIZE") ? parse_int("LOCAL_WORLD_SIZE", env("LOCAL_WORLD_SIZE"), 1, w.world_size) : 1;
    if (w.world_size > 1) {
      if (!env("MASTER_ADDR") || !env("MASTER_PORT"))
        throw ConfigError("RANK/WORLD_SIZE are set: MASTER_ADDR and MASTER_PORT must be set too");
    }
    if (env("MASTER_ADDR")) w.master_addr = env("MASTER_ADDR");
    if (env("MASTER_PORT")) w.master_port = parse_int("MASTER_PORT", env("MASTER_PORT"), 1, 65535);
    return w;
  }
  const char* procid = env("SLURM_PROCID");
  const char* ntasks = env("SLURM_NTASKS");
  if (procid != nullptr && ntasks != nullptr) {
    w.source = "slurm";
    w.world_size = parse_int("SLURM_NTASKS", ntasks, 1, 1 << 20);
    w.rank = parse_int("SLURM_PROCID", procid, 0, w.world_size - 1);
    if (w.world_size == 1) {
      w.source = "single";
      return w;
    }
    w.local_rank = env("SLURM_LOCALID") ? parse_int("SLURM_LOCALID", env("SLURM_LOCALID"), 0, w.world_size - 1) : 0;
    // Tasks per node: "2", "2(x3)" or "2,1" (the first node's count first).
    const char* per_node = env("SLURM_STEP_TASKS_PER_NODE");
    if (!per_node) per_node = env("SLURM_TASKS_PER_NODE");
    if (!per_node) per_node = env("SLURM_NTASKS_PER_NODE");
    if (per_node) w.local_world_size = std::max(1, std::atoi(per_node));
    if (env("MASTER_ADDR")) {
      w.master_addr = env("MASTER_ADDR");
    } else {
      const char* list = env("SLURM_STEP_NODELIST");
      if (!list) list = env("SLURM_JOB_NODELIST");
      if (!list) list = env("SLURM_NODELIST");
      if (!list) throw ConfigError("SLURM_PROCID is set but no node list (SLURM_STEP_NODELIST, SLURM_JOB_NODELIST) "
                                   "nor MASTER_ADDR");
      w.master_addr = first_slurm_host(list);
    }
    if (env("MASTER_PORT")) {
      w.master_port = parse_int("MASTER_PORT", env("MASTER_PORT"), 1, 65535);
    } else {
      const char* job = env("SLURM_JOB_ID");
      if (!job) job = env("SLURM_JOBID");
      if (!job) throw ConfigError("SLURM_PROCID is set but neither SLURM_JOB_ID nor MASTER_PORT");
      uint64_t id = std::strtoull(job, nullptr, 10);
      uint64_t step = env("SLURM_STEP_ID") ? std::strtoull(env("SLURM_STEP_ID"), nullptr, 10) : 0;
      w.master_port = 15000 + static_cast<int>((id * 131 + step) % 20000);
    }
    return w;
  }
  return w;
}

bool distributed_available() {
#ifdef SGS_C10D_GLOO
  return true;
#else
  return false;
#endif
}

}  // namespace sgs
