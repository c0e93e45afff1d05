// Reading run.h5 files back (layout: docs/run_file.md) for `sgs report`
// and `sgs plot`, with what the strategies' tables mean, and grouping runs
// that differ only by seed. Read-only (RunLog, sgs/run_log.h, writes them).
#pragma once

#include <sgs/run_file.h>
#include <sgs/schema.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sgs::analysis {

using Matrix = RunMatrix;
using LayerData = RunLayer;

// The scaling strategies' table in a layer ("scaling"; docs/run_file.md):
// G after each update, and the completed epochs when it took effect (-1
// where the file has none). Empty for other strategies.
struct LayerScalings {
  std::vector<Matrix> scaling;
  std::vector<int64_t> epoch;  // as many as `scaling`
};
LayerScalings layer_scalings(const LayerData& layer);

// DyRep's table in a layer ("structure"): its growths and cuts, in order.
struct StructureChange {
  static constexpr int kGrow = 1, kCut = 2;  // the values of structure_event
  int64_t epoch = 0;  // completed epochs when it took effect
  int event = 0;      // kGrow or kCut
  int node = 0;       // 0: the layer's conv; 1: its dbb_kxk.conv; 2: its dbb_1x1_kxk.conv2
  std::array<int, 7> branches{};  // afterwards, in DyRep's order (docs/run_file.md)
  bool operator==(const StructureChange& o) const {
    return epoch == o.epoch && event == o.event && node == o.node && branches == o.branches;
  }
};
std::vector<StructureChange> structure_changes(const LayerData& layer);

// A run file read back, with the name it has among the runs read together.
struct RunData : RunFile {
  std::string name;  // short unique name among the runs read together (see find_runs)

  std::string status_text() const { return status ? to_string(*status) : "unknown"; }
  bool has_metric(const std::string& name) const;
  // The last finite value of a metric, NaN when none.
  double final_metric(const std::string& name) const;
  // The largest finite value of a metric, NaN when none.
  double max_metric(const std::string& name) const;
  // summary train_seconds, else the sum of /metrics/epoch_seconds.
  double train_seconds() const;
  // A summary attribute, NaN when absent.
  double summary_value(const std::string& name) const;
  std::string strategy() const;  // config strategy.name ("none" when absent)
  bool has_scalings() const;     // any layer with at least one scaling row
};

// Reads one run.h5; throws DataError naming the file when it cannot.
RunData read_run(const std::string& file);

struct FoundRuns {
  std::vector<RunData> runs;          // ordered by name
  std::vector<std::string> warnings;  // unreadable files, one line each
};

// Every run.h5 at or below each input (a run.h5 file, a run directory or a
// directory of runs, searched recursively). An input that does not exist or
// holds no run.h5 throws ConfigError naming it; an unreadable run.h5 is a
// warning. Names are the run directories relative to the deepest directory
// containing them all (the directory's own name for a single run).
FoundRuns find_runs(const std::vector<std::string>& inputs);

// The config flattened to dotted keys ("strategy.k"); lists and other
// non-object values are leaves.
std::map<std::string, Json> flatten_config(const Json& config);

// A value as a short label: 5.0 -> "5", "sgd" -> "sgd", null -> "-".
std::string value_label(const Json& value);

// The key as shown in a label: its last component, or the slot name for
// "<slot>.name"; the full key when the last component is ambiguous.
std::string short_key(const std::string& key, const std::vector<std::string>& all_keys);

// Runs that differ only by seed (and run-specific keys), or, with `by`, runs
// that agree on the given keys.
struct RunGroup {
  std::string label;                                     // "strategy=mutual_information, k=5"
  std::vector<std::pair<std::string, Json>> values;      // the keys that tell groups apart, with this group's values
  std::vector<size_t> members;                           // indices into the runs given, in their order
};
struct Grouping {
  std::vector<std::string> keys;  // the keys that tell groups apart (`by`, or those that vary)
  std::vector<RunGroup> groups;   // ordered by their values, key by key (numbers numerically)
};
// `ignore`: further keys left out of the default grouping.
Grouping group_runs(const std::vector<const RunData*>& runs, const std::vector<std::string>& by = {},
                    const std::set<std::string>& ignore = {});

// Orders two config values: null first, then numbers (numerically), then the rest by their JSON text.
bool value_less(const Json& a, const Json& b);

// Writes `content` to `path` through a temporary file in the same directory
// and a rename, so that no reader sees it half-written.

}  // namespace sgs::analysis
