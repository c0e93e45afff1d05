// RunLog's seam for strategies' own tables (sgs/log_table.h): declared once,
// appended row by row, refused when misused, truncated on resume.
#include <doctest/doctest.h>

#include "support/support.h"

#include <sgs/conv.h>
#include <sgs/run_file.h>
#include <sgs/run_log.h>

#include <torch/torch.h>

using namespace sgs;

namespace {

using Type = LogColumn::Type;

// A per-layer table with a matrix whose size the first row sets, and a
// run-wide one.
std::vector<LogTable> tables() {
  return {{"probe", LogTable::Scope::kLayer, "probe_epoch",
           {{"probe_epoch", Type::kInt32, {}}, {"probe", Type::kFloat64, {LogColumn::kAnySize, 2}}}},
          {"events", LogTable::Scope::kRun, "event_epoch",
           {{"event_epoch", Type::kInt32, {}}, {"event_code", Type::kInt32, {}}}}};
}

torch::Tensor epoch_value(int64_t e) { return torch::scalar_tensor(e, torch::kInt64); }

// A run file with rows taking effect at epochs 0..3 in both tables.
std::string write_run(const test::TempDir& dir) {
  const std::string path = (dir / "run.h5").string();
  auto log = RunLog::create(path, Json{{"probe", true}}, "cpu", 1, tables());
  log->add_layer("conv", 0, ConvSpec{2, 2});
  for (int64_t e = 0; e < 4; ++e) {
    log->append("probe", "conv", {epoch_value(e), torch::full({3, 2}, static_cast<double>(e))});
    log->append("events", "", {epoch_value(e), epoch_value(10 + e)});
    if (e > 0) log->append_metrics(e, {{"train_loss", 1.0 / e}});
  }
  log->flush();
  return path;
}

}  // namespace

TEST_CASE("run log: a strategy's per-layer and run-wide tables are written as declared and read back as columns") {
  test::TempDir dir("run_log_tables");
  const auto run = read_run_file(write_run(dir));
  REQUIRE(run.layers.size() == 1);
  const auto& probe = run.layers[0].columns.at("probe");
  CHECK(probe.shape == std::vector<int64_t>{4, 3, 2});
  CHECK(probe.value(5) == 0);
  CHECK(probe.value(6) == 1);
  CHECK(run.layers[0].columns.at("probe_epoch").values == std::vector<double>{0, 1, 2, 3});
  CHECK(run.columns.at("event_code").values == std::vector<double>{10, 11, 12, 13});
  CHECK(run.columns.count("metrics") == 0);  // groups are not columns
}

TEST_CASE("run log: on resume, every table keeps the rows of the epochs completed (and of the current one mid-epoch)") {
  test::TempDir dir("run_log_resume");
  const std::string path = write_run(dir);
  {
    auto log = RunLog::resume(path, /*epochs_done=*/2, /*mid_epoch=*/true, tables());
    log->flush();
  }
  auto run = read_run_file(path);
  CHECK(run.layers[0].columns.at("probe_epoch").values == std::vector<double>{0, 1, 2});
  CHECK(run.layers[0].columns.at("probe").rows() == 3);
  CHECK(run.columns.at("event_epoch").values == std::vector<double>{0, 1, 2});
  CHECK(run.epochs == std::vector<int64_t>{1, 2});
  {
    auto log = RunLog::resume(path, /*epochs_done=*/1, /*mid_epoch=*/false, tables());
    log->flush();
  }
  run = read_run_file(path);
  CHECK(run.layers[0].columns.at("probe_epoch").values == std::vector<double>{0});
  CHECK(run.layers[0].columns.at("probe").rows() == 1);
  CHECK(run.columns.at("event_code").values == std::vector<double>{10});
  // Tables the resuming strategy does not declare are left as they are.
  {
    auto log = RunLog::resume(path, 0, false, {});
    log->flush();
  }
  CHECK(read_run_file(path).columns.at("event_code").rows() == 1);
}

TEST_CASE("run log: undeclared tables, wrong rows and bad declarations are refused, and nothing of the row is written") {
  test::TempDir dir("run_log_misuse");
  const std::string path = (dir / "run.h5").string();
  auto log = RunLog::create(path, Json::object(), "cpu", 1, tables());
  log->add_layer("conv", 0, ConvSpec{2, 2});
  CHECK_THROWS_WITH_AS(log->append("scaling", "conv", {epoch_value(0)}),
                       "run log: table 'scaling' of conv: not declared (Strategy::log_tables)", std::logic_error);
  CHECK_THROWS_WITH_AS(log->append("probe", "conv", {epoch_value(0)}),
                       "run log: table 'probe' of conv: 1 values for 2 columns", std::logic_error);
  CHECK_THROWS_WITH_AS(log->append("probe", "conv", {epoch_value(0), torch::zeros({3, 3})}),
                       "run log: table 'probe' of conv: column 'probe' got a value of another shape",
                       std::logic_error);
  CHECK_THROWS_WITH_AS(log->append("probe", "", {epoch_value(0), torch::zeros({3, 2})}),
                       "run log: table 'probe': needs a layer", std::logic_error);
  CHECK_THROWS_WITH_AS(log->append("probe", "fc", {epoch_value(0), torch::zeros({3, 2})}),
                       "run log: table 'probe' of fc: no such layer in the run file", std::logic_error);
  log->append("probe", "conv", {epoch_value(0), torch::zeros({3, 2})});
  // The first row fixed the free size at 3.
  CHECK_THROWS_WITH_AS(log->append("probe", "conv", {epoch_value(1), torch::zeros({4, 2})}),
                       "run log: table 'probe' of conv: column 'probe' holds rows of another shape",
                       std::logic_error);
  log->flush();
  const auto run = read_run_file(path);
  CHECK(run.layers[0].columns.at("probe_epoch").rows() == 1);
  CHECK(run.layers[0].columns.at("probe").rows() == 1);

  auto bad = [&](std::vector<LogTable> t) { RunLog::create((dir / "bad.h5").string(), Json::object(), "cpu", 1, t); };
  CHECK_THROWS_WITH_AS(bad({{"t", LogTable::Scope::kLayer, "e", {{"x", Type::kInt32, {}}}}}),
                       "run log: table 't': its epoch column 'e' must be one of its columns, a scalar int32",
                       std::logic_error);
  CHECK_THROWS_WITH_AS(bad({{"t", LogTable::Scope::kRun, "e", {{"e", Type::kInt32, {}}, {"metrics", Type::kInt32, {}}}}}),
                       "run log: table 't': column 'metrics' would replace the run file's own group",
                       std::logic_error);
  CHECK_THROWS_WITH_AS(bad({tables()[0], tables()[0]}), "run log: table 'probe': declared twice", std::logic_error);
  CHECK_FALSE(std::filesystem::exists(dir / "bad.h5"));
}
