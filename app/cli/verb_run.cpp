// sgs run CONFIG.json [--set k=v]... [--out DIR] [--resume] [--nproc N]: train
// one model, in one process, as N local ranks, or as one rank of a job that
// the environment describes (torchrun's variables or srun's).
#include "verb.h"

#include <sgs/config.h>
#include <sgs/world.h>

#include "app/launch/launcher.h"
#include <sgs/errors.h>
#include <sgs/interrupt.h>
#include <sgs/trainer.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

int run_run(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::string path, out, progress = "auto";
  double progress_every = 0;
  std::vector<std::string> sets;
  int nproc = 0;
  double dist_timeout = static_cast<double>(sgs::kDefaultDistTimeout.count());
  opts.add_options()("config", po::value(&path)->required(), "experiment config (JSON)")(
      "set", po::value(&sets)->composing(), "override a key: --set optimizer.lr=0.05 (repeatable)")(
      "out", po::value(&out), "output directory (default runs/<config name>)")(
      "resume", "continue from OUT/checkpoint.pt when there is one (appends to run.h5)")(
      "quiet,q", "no progress output")("progress", po::value(&progress),
                                       "auto (bar on a terminal, else a line per epoch) | bar | lines | none")(
      "progress-every", po::value(&progress_every),
      "lines: also a line at most every S seconds within an epoch (epoch, step, img/s, the run's ETA); "
      "default 0: a line per epoch only")(
      "nproc", po::value(&nproc), "train data-parallel as N ranks on this machine (each takes batch_size examples "
                                  "of every global batch of batch_size x N)")(
      "dist-timeout", po::value(&dist_timeout),
      "data-parallel: seconds a rank waits for the others (rendezvous, each collective) before failing; default 60");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("run", "CONFIG.json [--set KEY=VALUE]... [--out DIR] [--resume] [--nproc N]", args, opts,
                            pos, vm))
    return 0;
  // Until the run writes, SIGINT/SIGTERM end it at once (nothing to save);
  // then they are latched and the run stops after its step (sgs/interrupt.h).
  sgs::exit_on_interrupts();
  if (vm.count("out") && out.empty()) throw sgs::ConfigError("--out: expected a directory, got an empty string");
  sgs::Json config = sgs::load_config(path, sets);  // validated before anything is written
  if (!(dist_timeout > 0) || dist_timeout > 1e6)
    throw sgs::ConfigError("--dist-timeout: must be > 0 and at most 1e6 seconds");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(dist_timeout * 1000));
  sgs::World world = sgs::world_from_environment();
  if (vm.count("nproc")) {
    if (nproc < 1) throw sgs::ConfigError("--nproc: must be >= 1, got " + std::to_string(nproc));
    if (world.source != "single")
      throw sgs::ConfigError("--nproc: this process is already rank " + std::to_string(world.rank) + " of " +
                             std::to_string(world.world_size) + " (from the " + world.source +
                             " environment); launch one or the other");
    if (nproc > 1) {
      if (!sgs::distributed_available())
        throw sgs::ConfigError("--nproc: this build has no c10d Gloo process group (gloo headers were not found)");
      // The ranks run this same command line without --nproc.
      std::vector<std::string> argv;
      auto own = sgs::own_command_line();
      for (size_t i = 0; i < own.size(); ++i) {
        if (own[i] == "--nproc") {
          ++i;
          continue;
        }
        if (own[i].rfind("--nproc=", 0) == 0) continue;
        argv.push_back(own[i]);
      }
      return sgs::launch_local_ranks(nproc, argv, timeout + std::chrono::seconds(10));
    }
  }
  sgs::RunOptions ro;
  ro.out_dir = out.empty() ? "runs/" + std::filesystem::path(path).stem().string() : out;
  ro.resume = vm.count("resume") > 0;
  ro.config_source = path;
  ro.quiet = vm.count("quiet") > 0;
  if (progress == "bar") ro.progress = sgs::RunOptions::Progress::Bar;
  else if (progress == "lines") ro.progress = sgs::RunOptions::Progress::Lines;
  else if (progress == "none") ro.progress = sgs::RunOptions::Progress::None;
  else if (progress != "auto") throw sgs::ConfigError("--progress: expected auto, bar, lines or none, got '" + progress + "'");
  if (!(progress_every >= 0) || !std::isfinite(progress_every))
    throw sgs::ConfigError("--progress-every: expected seconds >= 0");
  ro.progress_every = progress_every;
  auto result = sgs::run_training_in(world, config, ro, timeout);
  if (result.status == sgs::RunStatus::Interrupted) {
    int sig = sgs::caught_interrupt();
    return 128 + (sig == 0 ? SIGINT : sig);
  }
  if (world.rank != 0) return 0;  // rank 0 reports
  auto pct = [&](const char* key) {
    double v = result.summary.count(key) ? result.summary.at(key) : NAN;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.2f", 100 * v);
    return std::isnan(v) ? std::string("-") : std::string(buf);
  };
  std::cout << "run\tstatus\tepochs\ttrain_acc\tval_acc\ttest_acc\ttrain_seconds\n"
            << ro.out_dir << "\t" << sgs::to_string(result.status) << "\t" << result.epochs_completed << "\t" << pct("final_train_acc")
            << "\t" << pct("final_val_acc") << "\t" << pct("final_test_acc") << "\t"
            << static_cast<int64_t>(result.summary["train_seconds"]) << "\n";
  return 0;
}

}  // namespace

SGS_VERB("run", "train one model from a config; writes OUT/run.h5, config.json, checkpoint.pt", run_run)
