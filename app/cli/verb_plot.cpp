// sgs plot RUN_OR_DIR... --out DIR: the paper's figures (scaling heatmaps,
// kernel magnitudes, accuracy vs k, training curves) as PNG + CSV
// (analysis/plot.h).
#include "verb.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/version.h>

#if SGS_WITH_OPENCV
#include "analysis/plot.h"

#include <iostream>

namespace {

int run_plot(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::vector<std::string> inputs;
  std::string out, int8 = sgs::kDefaultInt8;
  opts.add_options()("runs", po::value(&inputs)->required(), "run directories, directories of runs or run.h5 files")(
      "out", po::value(&out)->required(), "directory for the PNG and CSV files")(
      "int8", po::value(&int8),
      "the int8 configuration of the int8 figures, as sgs quantize names it (default per-channel_symmetric_minmax)");
  po::positional_options_description pos;
  pos.add("runs", -1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("plot", "RUN_OR_DIR... --out DIR [--int8 CONFIG]", args, opts, pos, vm)) return 0;
  auto found = sgs::analysis::find_runs(inputs);
  for (const auto& w : found.warnings) std::cerr << "sgs plot: warning: " << w << "\n";
  if (found.runs.empty()) throw sgs::DataError("no readable run.h5 in " + sgs::join(inputs, ", "));
  for (const auto& file : sgs::analysis::make_plots(found.runs, out, int8)) std::cout << file << "\n";
  return 0;
}

}  // namespace

SGS_VERB("plot", "figures (PNG + CSV) from run.h5 files: scalings, kernel magnitudes, accuracy vs k, curves", run_plot)

#else

namespace {

int run_plot(const std::vector<std::string>&) {
  throw sgs::ConfigError("sgs plot needs OpenCV, which this build was configured without (SGS_WITH_OPENCV)");
}

}  // namespace

SGS_VERB("plot", "not in this build: it needs OpenCV (figures from run.h5 files)", run_plot)

#endif  // SGS_WITH_OPENCV
