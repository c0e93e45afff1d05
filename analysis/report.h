// `sgs report`: the paper's kind of table from run.h5 files. Completed runs
// that differ only by seed form a group (mean and sample std over the seeds);
// running, interrupted, failed and diverged runs are listed apart and never
// averaged in.
#pragma once

#include "runs.h"
#include "stats.h"

#include <sgs/config.h>

#include <cmath>
#include <string>
#include <vector>

namespace sgs::analysis {

// Mean and sample standard deviation (n - 1; NaN for fewer than 2 values) of
// the finite values given.
struct Stat {
  std::vector<double> values;
  double mean = NAN, std = NAN;
  size_t n() const { return values.size(); }
};
Stat make_stat(const std::vector<double>& values);

struct ReportGroup {
  std::string label;
  std::vector<std::pair<std::string, Json>> values;  // the grouping keys
  std::vector<std::string> runs;                     // run names
  std::vector<Json> seeds;
  std::vector<double> run_test_acc;  // final test accuracy (%) of each run, as `seeds` (NaN: none)
  // Accuracies in percent.
  Stat final_test_acc, final_val_acc, final_train_acc;
  Stat best_acc;        // max over epochs of val_acc when the runs have it, else of test_acc
  std::string best_on;  // "val", "test" or "" (neither)
  double train_hours = 0;  // train_seconds summed over the group's runs, in hours
  Stat epoch_seconds;      // each run's train_seconds / its epochs
  double parameters = NAN, parameters_fused = NAN;  // of the group's first run
  // Graph changes (dyrep): growths and cuts per run, mean over the group's runs.
  double growths = 0, cuts = 0;
  // Against the reference group (Report::against): final test accuracy,
  // this group minus the reference, in percentage points. Untested
  // (test "") for the reference itself and where there are too few runs.
  Comparison against;
  // Post-training int8 (sgs quantize), one per configuration of
  // Report::int8: the records' test accuracy (percent) and drop from fp32
  // (points), each run's accuracy as `seeds` (NaN: not quantized), and the
  // int8 accuracy against the reference group's, paired as `against`.
  struct Int8 {
    Stat acc, drop;
    std::vector<double> run_acc;
    Comparison against;
  };
  std::vector<Int8> int8;
  bool is_reference = false;
};

struct ExcludedRun {
  std::string name, file, status, error;
  int64_t epochs = 0;  // epochs with metrics
};

struct Report {
  std::vector<std::string> keys;  // grouping keys
  std::vector<ReportGroup> groups;
  std::vector<ExcludedRun> excluded;  // not completed, ordered by name
  std::vector<std::string> warnings;  // e.g. a group holding two runs of one seed
  std::string against;  // the reference group's label; "" when there is none
  std::vector<std::string> int8;  // the int8 configurations reported ("per-channel_symmetric_minmax", ...)
};

// `by`: group by these config keys instead of "everything but the seed".
// `against`: the label of the group the others are compared with; empty:
// the baseline group (strategy none) when there is exactly one, else no
// comparison. Throws ConfigError naming the labels when no group has it.
// `int8`: the int8 configurations whose records give the int8 columns and
// comparisons (each its own Holm family); empty: every configuration some
// completed run recorded, in name order. A configuration no run recorded
// throws ConfigError naming the ones recorded.
Report make_report(const std::vector<RunData>& runs, const std::vector<std::string>& by = {},
                   const std::string& against = "", const std::vector<std::string>& int8 = {});

std::string format_markdown(const Report& report);
std::string format_csv(const Report& report);
Json format_json(const Report& report);

// "12.35 ± 0.21", "12.35 ± -" for a single value, "-" for none (2 decimals).
std::string mean_std_text(const Stat& s);

}  // namespace sgs::analysis
