// sgs report DIR... [--format md|csv|json] [--by KEYS] [--against GROUP]
// [--int8 CONFIGS]: a table of every run.h5 below the directories, runs
// differing only by seed grouped (mean ± sample std), each group's final
// test accuracy, and its int8 accuracy in every configuration sgs quantize
// recorded, against the reference group's (difference, 95 % interval, p,
// Holm; analysis/stats.h), unfinished and failed runs listed apart
// (analysis/report.h).
#include "verb.h"

#include "analysis/report.h"

#include <sgs/errors.h>

#include <iostream>
#include <sstream>

namespace {

std::vector<std::string> split_list(const std::string& s, const std::string& option, const std::string& example) {
  std::vector<std::string> keys;
  std::stringstream in(s);
  std::string key;
  while (std::getline(in, key, ','))
    if (!key.empty()) keys.push_back(key);
  if (keys.empty()) throw sgs::ConfigError(option + ": expected a comma-separated list, e.g. " + option + " " + example);
  return keys;
}

int run_report(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::vector<std::string> inputs;
  std::string format = "md", by, against, int8;
  opts.add_options()("runs", po::value(&inputs)->required(), "run directories, directories of runs or run.h5 files")(
      "format", po::value(&format), "md (default) | csv | json")(
      "by", po::value(&by), "group by these config keys (comma-separated, e.g. strategy.name,strategy.k) "
                            "instead of everything but the seed")(
      "against", po::value(&against),
      "compare every group with this one (its label as the table prints it; default: the baseline group, "
      "strategy none, when there is one)")(
      "int8", po::value(&int8),
      "the int8 configurations of the int8 columns and comparisons, comma-separated, as sgs quantize names them "
      "(default: every configuration the runs recorded)");
  po::positional_options_description pos;
  pos.add("runs", -1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("report", "DIR... [--format md|csv|json] [--by KEYS] [--against GROUP] [--int8 CONFIGS]", args, opts, pos,
                            vm))
    return 0;
  if (vm.count("against") && against.empty()) throw sgs::ConfigError("--against: expected a group's label");
  if (format != "md" && format != "csv" && format != "json")
    throw sgs::ConfigError("--format: expected md, csv or json, got '" + format + "'");
  auto found = sgs::analysis::find_runs(inputs);
  for (const auto& w : found.warnings) std::cerr << "sgs report: warning: " << w << "\n";
  if (found.runs.empty()) throw sgs::DataError("no readable run.h5 in " + sgs::join(inputs, ", "));
  auto report = sgs::analysis::make_report(
      found.runs, vm.count("by") ? split_list(by, "--by", "strategy.name,strategy.k") : std::vector<std::string>{},
      against,
      vm.count("int8") ? split_list(int8, "--int8", "per-channel_symmetric_minmax,per-tensor_symmetric_minmax")
                       : std::vector<std::string>{});
  for (const auto& w : report.warnings) std::cerr << "sgs report: warning: " << w << "\n";
  if (format == "md")
    std::cout << sgs::analysis::format_markdown(report);
  else if (format == "csv")
    std::cout << sgs::analysis::format_csv(report);
  else
    std::cout << sgs::analysis::format_json(report).dump(2) << "\n";
  return 0;
}

}  // namespace

SGS_VERB("report", "a table of runs (mean ± std over seeds) from run.h5 files", run_report)
