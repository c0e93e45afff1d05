// sgs run CONFIG.json [--set k=v]... [--out DIR] [--resume]: train one model.
#include "verb.h"

#include <sgs/config.h>
#include <sgs/errors.h>
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
  std::vector<std::string> sets;
  opts.add_options()("config", po::value(&path)->required(), "experiment config (JSON)")(
      "set", po::value(&sets)->composing(), "override a key: --set optimizer.lr=0.05 (repeatable)")(
      "out", po::value(&out), "output directory (default runs/<config name>)")(
      "resume", "continue from OUT/checkpoint.pt when there is one (appends to run.h5)")(
      "quiet,q", "no progress output")("progress", po::value(&progress),
                                       "auto (bar on a terminal, else a line per epoch) | bar | lines | none");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("run", "CONFIG.json [--set KEY=VALUE]... [--out DIR] [--resume]", args, opts, pos, vm))
    return 0;
  sgs::Json config = sgs::load_config(path, sets);  // validated before anything is written
  sgs::RunOptions ro;
  ro.out_dir = out.empty() ? "runs/" + std::filesystem::path(path).stem().string() : out;
  ro.resume = vm.count("resume") > 0;
  ro.quiet = vm.count("quiet") > 0;
  if (progress == "bar") ro.progress = sgs::RunOptions::Progress::Bar;
  else if (progress == "lines") ro.progress = sgs::RunOptions::Progress::Lines;
  else if (progress == "none") ro.progress = sgs::RunOptions::Progress::None;
  else if (progress != "auto") throw sgs::ConfigError("--progress: expected auto, bar, lines or none, got '" + progress + "'");
  sgs::install_interrupt_handlers();
  auto result = sgs::run_training(config, ro);
  if (result.status == "interrupted") {
    int sig = sgs::interrupt_signal();
    return 128 + (sig == 0 ? SIGINT : sig);
  }
  auto pct = [&](const char* key) {
    double v = result.summary.count(key) ? result.summary.at(key) : NAN;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.2f", 100 * v);
    return std::isnan(v) ? std::string("-") : std::string(buf);
  };
  std::cout << "run\tstatus\tepochs\ttrain_acc\tval_acc\ttest_acc\ttrain_seconds\n"
            << ro.out_dir << "\t" << result.status << "\t" << result.epochs_completed << "\t" << pct("final_train_acc")
            << "\t" << pct("final_val_acc") << "\t" << pct("final_test_acc") << "\t"
            << static_cast<int64_t>(result.summary["train_seconds"]) << "\n";
  return 0;
}

}  // namespace

SGS_VERB("run", "train one model from a config; writes OUT/run.h5, config.json, checkpoint.pt", run_run)
