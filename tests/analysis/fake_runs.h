// Fabricated run.h5 files for the report and plot tests, written with the
// trainer's own RunLog so that they have the real layout.
#pragma once

#include "plugins/strategies/common/scaling.h"

#include <sgs/conv.h>
#include <sgs/registry.h>
#include <sgs/run_log.h>

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sgs::test {

struct FakeLayer {
  std::string name;
  int64_t kernel = 3;
};

struct FakeRun {
  Json config;
  std::string status = "completed", error;
  std::vector<double> test_acc;  // one per epoch, in [0, 1]
  std::vector<double> val_acc;   // empty: no validation split
  std::vector<FakeLayer> layers;
  int64_t scaling_updates = 0;   // scaling rows per layer, at epochs 1, 2, ...
  double train_seconds = 360;
  int64_t parameters = 1000, parameters_fused = 1000;
  // Int8 records (/deploy/int8/<configuration>) of a completed run: the
  // int8 test accuracy in [0, 1]; fp32_acc is the last test_acc.
  std::map<std::string, double> int8_acc;
};

inline Json fake_config(const std::string& strategy, int64_t seed, double k = 5) {
  Json c{{"seed", seed},
         {"epochs", 3},
         {"threads", 1},
         {"description", "fake run " + std::to_string(seed)},
         {"dataset", {{"name", "synthetic"}}},
         {"model", {{"name", "vgg11"}, {"width", 0.125}}},
         {"optimizer", {{"name", "sgd"}, {"lr", 0.05}}},
         {"strategy", {{"name", strategy}}}};
  // k where the strategy has it: the config is one this build resolves.
  if (strategy != "none")
    for (const auto& key : Registry::global().get("strategy", strategy).schema)
      if (key.name == "k") c["strategy"]["k"] = k;
  return c;
}

// A deterministic matrix whose entries depend on (layer, row, update).
inline torch::Tensor fake_matrix(int64_t k, double base) {
  auto m = torch::arange(k * k, torch::kFloat64).reshape({k, k});
  return base + 0.1 * m;
}

inline std::filesystem::path write_fake_run(const std::filesystem::path& dir, const FakeRun& run) {
  std::filesystem::create_directories(dir);
  const auto file = dir / "run.h5";
  auto log = RunLog::create(file.string(), run.config, "cpu", 1, {ScalingStrategy::table(false)});
  for (size_t i = 0; i < run.layers.size(); ++i) {
    ConvSpec spec;
    spec.in_channels = spec.out_channels = 8;
    spec.kernel = {run.layers[i].kernel, run.layers[i].kernel};
    spec.padding = {run.layers[i].kernel / 2, run.layers[i].kernel / 2};
    log->add_layer(run.layers[i].name, static_cast<int64_t>(i), spec);
    log->append_matrix(run.layers[i].name, "kernel_magnitude", fake_matrix(run.layers[i].kernel, 1.0));
  }
  for (size_t e = 0; e < run.test_acc.size(); ++e) {
    const int64_t epoch = static_cast<int64_t>(e) + 1;
    for (size_t i = 0; i < run.layers.size(); ++i)
      if (epoch <= run.scaling_updates) {
        log->append("scaling", run.layers[i].name,
                    {fake_matrix(run.layers[i].kernel, 0.5 + 0.1 * epoch + i), torch::scalar_tensor(epoch, torch::kInt64)});
      }
    std::map<std::string, double> m{{"train_loss", 2.0 / epoch},
                                    {"train_acc", 0.3 + 0.1 * epoch},
                                    {"test_loss", 2.5 / epoch},
                                    {"test_acc", run.test_acc[e]},
                                    {"lr", 0.05},
                                    {"epoch_seconds", run.train_seconds / run.test_acc.size()},
                                    {"scaling_seconds", 0.0}};
    if (!run.val_acc.empty()) {
      m["val_acc"] = run.val_acc[e];
      m["val_loss"] = 2.4 / epoch;
    }
    log->append_metrics(epoch, m);
    for (size_t i = 0; i < run.layers.size(); ++i)
      log->append_matrix(run.layers[i].name, "kernel_magnitude", fake_matrix(run.layers[i].kernel, 1.0 + 0.2 * epoch));
  }
  const auto status = sgs::parse_run_status(run.status).value();
  if (status == sgs::RunStatus::Completed || status == sgs::RunStatus::Diverged)
    log->set_summary({{"final_test_acc", run.test_acc.empty() ? 0.0 : run.test_acc.back()},
                      {"train_seconds", run.train_seconds},
                      {"epochs_completed", static_cast<double>(run.test_acc.size())},
                      {"parameters", static_cast<double>(run.parameters)},
                      {"parameters_fused", static_cast<double>(run.parameters_fused)}});
  log->set_status(status, run.error);
  log.reset();
  for (const auto& [configuration, acc] : run.int8_acc) {
    DeployRecord record;
    record.values = {{"fp32_acc", run.test_acc.back()}, {"int8_acc", acc}, {"int8_drop", run.test_acc.back() - acc}};
    RunLog::write_deploy(file.string(), "int8/" + configuration, record);
  }
  return file;
}

}  // namespace sgs::test
