// Reading run.h5 back (layout: docs/run_file.md): the one reader, used by the
// trainer (resume), the suite (state of each run) and analysis (report,
// plot). RunLog (sgs/run_log.h) is the only writer. The core reads its own
// datasets by name (metrics, kernel magnitudes) and every strategy's as
// plain columns; what they mean is the strategy's (docs/run_file.md).
#pragma once

#include <sgs/run_status.h>
#include <sgs/schema.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sgs {

// A row-major rows x cols matrix.
struct RunMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;
  double at(int64_t r, int64_t c) const { return values[static_cast<size_t>(r * cols + c)]; }
};

// A dataset of a strategy's table (LogTable in sgs/run_log.h), as doubles.
struct RunColumn {
  std::vector<int64_t> shape;  // rows first
  std::vector<double> values;  // row-major
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  // Row `r` of a scalar column.
  double value(int64_t r) const { return values[static_cast<size_t>(r)]; }
  // The rows of a [rows, a, b] column as matrices; throws DataError for another shape.
  std::vector<RunMatrix> matrices() const;
};

// One /layers/<name> group.
struct RunLayer {
  std::string name;
  int64_t index = 0;
  std::array<int64_t, 2> kernel{0, 0};
  std::vector<RunMatrix> kernel_magnitude;  // the trainer's: row 0 at initialisation, row e after epoch e
  // Every other dataset of the group: the columns of the strategy's
  // per-layer tables (docs/run_file.md).
  std::map<std::string, RunColumn> columns;
};

// One record under /deploy (docs/run_file.md), written whole by sgs export
// --check ("export_check") and sgs quantize ("int8/<weights>_<activations>_<calibration>").
struct DeployLayer {
  std::string name;
  int64_t index = 0;
  std::map<std::string, double> values;       // numeric attributes
  std::map<std::string, std::string> text;    // string attributes
  std::map<std::string, RunColumn> columns;   // datasets
};
struct DeployRecord {
  std::map<std::string, double> values;     // numeric attributes
  std::map<std::string, std::string> text;  // string attributes ("written", "sgs_version", ...)
  std::vector<DeployLayer> layers;          // the group's "layers", ordered by index
  double value(const std::string& key) const;  // NaN when absent
};

struct RunFile {
  std::string file;                 // the run.h5 read
  Json config;                      // root attribute "config" (the resolved config)
  std::optional<RunStatus> status;  // nullopt: the file records none, or an unknown one
  std::string status_recorded;      // the "status" attribute as written ("" when absent)
  std::string error;
  std::string run_id;   // "" in files written before run ids
  std::string created;  // ISO-8601 UTC
  std::vector<int64_t> epochs;                         // /metrics/epoch
  std::map<std::string, std::vector<double>> metrics;  // /metrics/* (as many rows as `epochs`, NaN-padded)
  std::map<std::string, double> summary;               // /summary attributes (empty while running)
  std::vector<RunLayer> layers;                        // ordered by their index attribute
  std::map<std::string, RunColumn> columns;            // datasets of the root group: run-wide tables
  std::map<std::string, DeployRecord> deploy;          // /deploy's records by path ("export_check", "int8/...")

  bool completed() const { return status == RunStatus::Completed; }
  // The last row of every metric; empty without epochs.
  std::map<std::string, double> last_metrics() const;
};

// What to read besides the root attributes (always read).
enum RunFileParts : unsigned {
  kRunAttributes = 0,
  kRunMetrics = 1u << 0,
  kRunSummary = 1u << 1,
  kRunLayers = 1u << 2,
  kRunDeploy = 1u << 3,
  kRunEverything = kRunMetrics | kRunSummary | kRunLayers | kRunDeploy,
};

// Reads a run.h5. Throws DataError naming the file when it cannot be read or
// is not a run file (no "config" attribute holding JSON).
RunFile read_run_file(const std::string& path, unsigned parts = kRunEverything);

}  // namespace sgs
