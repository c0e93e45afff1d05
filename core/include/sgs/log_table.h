// A strategy's own records in run.h5, declared by the strategy and written
// through RunLog (sgs/run_log.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sgs {

// A strategy's own records (the seam through which it logs without the core
// knowing them): a table is a set of datasets, its columns, that grow by one
// row together, in every /layers/<conv> group (per layer) or in the root
// group (run-wide). A strategy declares its tables once (Strategy::log_tables)
// and appends rows as it trains; the run log refuses rows of undeclared
// tables and, on resume, drops the rows of epochs that will be redone.
struct LogColumn {
  enum class Type { kInt32, kFloat64 };
  static constexpr int64_t kAnySize = -1;  // in `row`: the first row written sets this size
  std::string name;                        // the dataset's name
  Type type = Type::kFloat64;
  std::vector<int64_t> row;                // the shape of one row ({}: scalars)
};

struct LogTable {
  enum class Scope { kLayer, kRun };
  std::string name;  // how the strategy names the table when it appends (not stored)
  Scope scope = Scope::kLayer;
  // The scalar kInt32 column holding, for each row, the epochs completed
  // when it took effect (one of `columns`). On resume every column keeps
  // the rows whose epoch is below the checkpoint's completed epochs (at or
  // below when resuming within an epoch, whose start is not run again).
  std::string epoch_column;
  std::vector<LogColumn> columns;
  // When its rows are written: at the start of an epoch (the rule above), or
  // at the end of one (Strategy::on_epoch_end, row e after epoch e; an
  // initial row 0 may come before the first step): on resume the rows at or
  // below the completed epochs stay.
  enum class Rows { kAtEpochStart, kAtEpochEnd } rows = Rows::kAtEpochStart;
};

}  // namespace sgs
