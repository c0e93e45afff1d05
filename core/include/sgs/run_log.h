// run.h5: the run's public output (layout: docs/run_file.md, version 1);
// the writer. Reading it back: sgs/run_file.h.
// Growing datasets are chunked and extendable along their first axis.
//
// Crash consistency: run.h5 is never modified in place. Changes go to a copy
// held in memory; flush() (and set_status) write that copy to run.h5.tmp,
// sync it and rename it over run.h5. Whatever happens (a kill, a full disk),
// run.h5 on disk is a complete file holding every committed epoch, and
// readers may open it at any time. A failed write throws IoError and leaves
// run.h5 as it was.
#pragma once

#include <sgs/log_table.h>
#include <sgs/run_file.h>
#include <sgs/run_status.h>
#include <sgs/schema.h>

#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace H5 {
class H5File;
class Exception;
}  // namespace H5

namespace sgs {

struct ConvSpec;

// The reason an HDF5 call failed: the system's message when its error stack
// holds an errno (e.g. "No space left on device"), else HDF5's own.
std::string h5_error_reason(const H5::Exception& e);

class RunLog {
 public:
  static constexpr int kLayoutVersion = 1;

  // A new file (replacing any): root attributes, status "running".
  // `tables`: the strategy's tables (above), which append() then accepts.
  static std::unique_ptr<RunLog> create(const std::string& path, const Json& config, const std::string& device,
                                        int64_t threads, std::vector<LogTable> tables = {});
  // An existing file, for a resumed run: rows past `epochs_done` (metrics,
  // kernel magnitudes) are dropped, and so are the rows of `tables` that
  // took effect at or after it, except, when resuming `mid_epoch`, those of
  // the current epoch.
  static std::unique_ptr<RunLog> resume(const std::string& path, int64_t epochs_done, bool mid_epoch,
                                        std::vector<LogTable> tables = {});

  ~RunLog();

  // A group /layers/<path> with its attributes (no-op when it exists).
  void add_layer(const std::string& path, int64_t index, const ConvSpec& spec);
  // One row per epoch: "epoch" and the float metrics given (train_loss, ...).
  void append_metrics(int64_t epoch, const std::map<std::string, double>& values);
  // The trainer's own per-layer matrices (kernel_magnitude): [kh, kw]
  // matrices appended as rows of /layers/<layer>/<name>.
  void append_matrix(const std::string& layer, const std::string& name, const torch::Tensor& matrix);
  // One row of the declared table `table`: a value per column, in the
  // table's order (scalars as 0-d tensors), for `layer` ("" for a run-wide
  // table). Throws std::logic_error for an undeclared table, a missing
  // layer, or a value whose shape does not fit its column.
  void append(const std::string& table, const std::string& layer, const std::vector<torch::Tensor>& values);

  // Replaces the record /deploy/<key> of an existing run file (a finished
  // run's) by `record` in one commit, leaving everything else as it was;
  // sets its "written" and "sgs_version" attributes. The caller holds the
  // run directory's lock (sgs/run_dir.h). Throws IoError.
  static void write_deploy(const std::string& path, const std::string& key, const DeployRecord& record);

  // Sets the status and commits.
  void set_status(RunStatus status, const std::string& error = "");
  void set_summary(const std::map<std::string, double>& values);
  // Commits the changes made since the last commit (see above).
  void flush();

  const std::string& path() const { return path_; }

 private:
  struct Impl;
  explicit RunLog(std::string path);
  H5::H5File& working_copy();
  void commit();
  void discard() noexcept;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

// 32 random hexadecimal digits: the root attribute "run_id", set when a run
// file is created and kept across resumes.
std::string new_run_id();

}  // namespace sgs
