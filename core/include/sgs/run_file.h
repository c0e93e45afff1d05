// Reading run.h5 back (layout: docs/run_file.md): the one reader, used by the
// trainer (resume), the suite (state of each run) and analysis (report,
// plot). RunLog (sgs/run_log.h) is the only writer.
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

// One /layers/<name> group.
struct RunLayer {
  std::string name;
  int64_t index = 0;
  std::array<int64_t, 2> kernel{0, 0};
  std::vector<RunMatrix> scaling;           // one per update
  std::vector<int64_t> scaling_epoch;       // as many as `scaling` (-1 where the file has none)
  std::vector<RunMatrix> kernel_magnitude;  // row 0 at initialisation, row e after epoch e
  // Graph changes (dyrep): growths and cuts, in order (RunLog::append_structure).
  struct Change {
    static constexpr int kGrow = 1, kCut = 2;  // the values of `event`
    int64_t epoch = 0;  // completed epochs when it took effect
    int event = 0;      // kGrow or kCut
    int node = 0;       // 0: the layer's conv; 1: its dbb_kxk.conv; 2: its dbb_1x1_kxk.conv2
    std::array<int, 7> branches{};
  };
  std::vector<Change> structure;
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
  kRunEverything = kRunMetrics | kRunSummary | kRunLayers,
};

// Reads a run.h5. Throws DataError naming the file when it cannot be read or
// is not a run file (no "config" attribute holding JSON).
RunFile read_run_file(const std::string& path, unsigned parts = kRunEverything);

}  // namespace sgs
