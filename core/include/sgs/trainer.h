// The training runner: one resolved config -> DIR/run.h5, DIR/config.json,
// DIR/checkpoint.pt. Nothing here knows about SGS: strategies act through
// their hooks (strategy.h).
#pragma once

#include <sgs/run_status.h>
#include <sgs/schema.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace sgs {

class Communicator;
struct World;

struct RunOptions {
  std::string out_dir;
  // Continue from DIR/checkpoint.pt (verified; a corrupt one is refused).
  // Without a checkpoint the run starts, unless run.h5 holds finished epochs.
  bool resume = false;
  std::string config_source;  // the config file, named in errors about its values
  bool quiet = false;
  // Progress: a live bar on a terminal, one line per epoch otherwise.
  enum class Progress { Auto, Bar, Lines, None } progress = Progress::Auto;
  // Lines: also a line at most every this many seconds within an epoch; 0 = never.
  double progress_every = 0;
  // Tests: stop (as if interrupted) after this many steps; 0 = never.
  int64_t stop_after_steps = 0;
  // Data-parallel: this rank's link to the others (sgs/distributed.h); null
  // or one rank: training in one process. Each rank trains on batch_size
  // examples of every global batch of batch_size x ranks; gradients are
  // averaged over ranks; only rank 0 writes run.h5, config.json, the
  // checkpoint and progress.
  Communicator* comm = nullptr;
  int local_rank = 0, local_world_size = 1;  // CUDA device = local_rank; threads 0 = cores / local ranks
};

struct RunResult {
  RunStatus status = RunStatus::Completed;  // Completed | Interrupted (diverged and failed runs throw)
  int64_t epochs_completed = 0;
  std::map<std::string, double> summary;
};

// Trains as the resolved config says. Throws DivergedError (status diverged
// is written first), DataError/ConfigError/other (status failed).
RunResult run_training(const Json& config, const RunOptions& options);

// Where RunChecker applies the rules that depend on the device (fp16
// needs CUDA; "cuda" needs a device): Here, on this machine's devices (the
// run will train here); ExplicitCpu, only where the config says "cpu" (a
// Slurm suite validated on a login node, whose devices say nothing).
enum class DeviceRules { Here, ExplicitCpu };

// Validates resolved configs as `sgs run` does at start-up: the device
// rules, the dataset, the model and the strategy attached to it, built on the
// CPU; writes nothing. Throws ConfigError (DataError: unreadable data). The
// datasets it reads are kept (a suite's runs mostly share one) until it is
// destroyed.
class RunChecker {
 public:
  explicit RunChecker(DeviceRules rules);
  ~RunChecker();
  RunChecker(const RunChecker&) = delete;
  RunChecker& operator=(const RunChecker&) = delete;
  void check(const Json& config);

 private:
  struct Datasets;
  DeviceRules rules_;
  std::unique_ptr<Datasets> datasets_;
};

// This process as one rank of the job `world` describes (sgs/world.h): with
// more than one rank, joins the others first (a c10d process group on the
// config's device; collectives wait at most `timeout`); then run_training
// with options.comm and the local rank fields set from `world`.
RunResult run_training_in(const World& world, const Json& config, RunOptions options,
                          std::chrono::milliseconds timeout);

// A run stops after its current step (checkpoint written, status
// interrupted) once caught_interrupt() (sgs/interrupt.h) is non-zero. Before
// it writes anything it calls latch_interrupts(): under exit_on_interrupts()
// (sgs run), a signal during the start-up ends the process at once.

// Keeps freed memory in the process (glibc malloc): a training step frees and
// reallocates the same large activation buffers every step, and handing them
// back to the kernel each time costs page faults (~10 % of a CPU step).
// Called by `sgs` at start-up; a no-op with other C libraries.
void keep_freed_memory();

}  // namespace sgs
