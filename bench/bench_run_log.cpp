// What crash consistency costs: run.h5 is written whole and renamed at every commit
// (sgs/run_log.h). This writes the run file of a long VGG-16 run with
// mutual-information scaling (13 spatial convs: kernel magnitudes every epoch,
// a dependence and a scaling matrix at every update) and times each epoch's
// commit against the epoch's appends, at several lengths of history.
//   build/bench/bench_run_log [--epochs 600] [--every 1] [--dir /tmp]
#include "bench_args.h"

#include <sgs/conv.h>
#include <sgs/run_log.h>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  const int64_t epochs = std::stoll(sgs::bench::arg(argc, argv, "epochs", "600"));
  const int64_t every = std::stoll(sgs::bench::arg(argc, argv, "every", "1"));
  const fs::path dir = fs::path(sgs::bench::arg(argc, argv, "dir", fs::temp_directory_path().string())) /
                       "sgs_bench_run_log";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string file = (dir / "run.h5").string();
  // A scaling strategy's table (plugins/strategies/common/scaling.cpp).
  using Type = sgs::LogColumn::Type;
  const sgs::LogTable scaling{"scaling",
                              sgs::LogTable::Scope::kLayer,
                              "scaling_epoch",
                              {{"dependence", Type::kFloat64, {3, 3}},
                               {"scaling", Type::kFloat64, {3, 3}},
                               {"scaling_epoch", Type::kInt32, {}}}};
  auto log = sgs::RunLog::create(file, sgs::Json{{"bench", true}}, "cpu", 1, {scaling});
  const int layers = 13;
  for (int i = 0; i < layers; ++i) {
    sgs::ConvSpec spec;
    spec.in_channels = spec.out_channels = 64;
    log->add_layer("features." + std::to_string(i), i, spec);
  }
  log->flush();
  using Clock = std::chrono::steady_clock;
  std::printf("epoch\tfile_kB\tappend_ms\tcommit_ms\n");
  double commit_total = 0;
  for (int64_t e = 1; e <= epochs; ++e) {
    auto t0 = Clock::now();
    std::map<std::string, double> m{{"train_loss", 1.0 / e}, {"train_acc", 0.5}, {"test_loss", 1.0}, {"test_acc", 0.5},
                                    {"lr", 0.1},         {"epoch_seconds", 1}, {"scaling_seconds", 0}};
    log->append_metrics(e, m);
    for (int i = 0; i < layers; ++i) {
      const std::string l = "features." + std::to_string(i);
      log->append_matrix(l, "kernel_magnitude", torch::rand({3, 3}, torch::kFloat64));
      if (e % every == 0) {
        log->append("scaling", l,
                    {torch::rand({3, 3}, torch::kFloat64), torch::rand({3, 3}, torch::kFloat64),
                     torch::scalar_tensor(e, torch::kInt64)});
      }
    }
    auto t1 = Clock::now();
    log->flush();
    auto t2 = Clock::now();
    const double append = std::chrono::duration<double, std::milli>(t1 - t0).count();
    const double commit = std::chrono::duration<double, std::milli>(t2 - t1).count();
    commit_total += commit;
    if (e == 1 || e == 10 || e == 100 || e == epochs || e % 200 == 0)
      std::printf("%lld\t%.0f\t%.2f\t%.2f\n", static_cast<long long>(e), fs::file_size(file) / 1024.0, append, commit);
  }
  std::printf("mean commit over %lld epochs: %.2f ms (image, write, fsync, rename)\n", static_cast<long long>(epochs),
              commit_total / static_cast<double>(epochs));
  log.reset();
  fs::remove_all(dir);
  return 0;
}
