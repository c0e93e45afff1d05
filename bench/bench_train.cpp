// Training-step throughput of the C++ runner's loop (model from the registry,
// SGD with momentum and weight decay, cross-entropy, grads set to none) on
// synthetic 32x32 (or --size) batches, optionally next to the same network and
// loop in PyTorch's Python API on the same LibTorch (bench/train_step.py).
//   build/bench/bench_train [--model vgg11] [--widths 1,0.25] [--batch 128] [--size 32]
//                           [--channels 3] [--threads 2] [--steps 20] [--rounds 3] [--python /usr/bin/python3]
// C++ and Python alternate --rounds times; each reports its best round.
#include "bench/bench_args.h"

#include <sgs/config.h>
#include <sgs/model.h>
#include <sgs/optimizer.h>
#include <sgs/registry.h>
#include <sgs/trainer.h>

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace {

using sgs::bench::arg;

double cpp_images_per_second(const std::string& model_name, double width, int64_t batch, int64_t size,
                             int64_t channels, int steps) {
  const auto& reg = sgs::Registry::global();
  sgs::Json mk = {{"name", model_name}, {"width", width}};
  sgs::Options mo(sgs::resolve_object(mk, "model", reg.get("model", model_name).schema, {"name"}), "model");
  sgs::ConvFactory plain;
  torch::manual_seed(0);
  auto model = reg.factory<sgs::ModelKind>(model_name)(mo, {channels, 10, size, size}, plain);
  sgs::Json ok = {{"name", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 5e-4}};
  sgs::Options oo(sgs::resolve_object(ok, "optimizer", reg.get("optimizer", "sgd").schema, {"name"}), "optimizer");
  auto params = model->parameters();
  auto opt = reg.factory<sgs::OptimizerKind>("sgd")(oo, params);
  auto x = torch::randn({batch, channels, size, size});
  auto y = torch::randint(0, 10, {batch});
  model->train();
  std::chrono::steady_clock::time_point start;
  const int warmup = 5;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) start = std::chrono::steady_clock::now();
    for (auto& p : params) p.mutable_grad().reset();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    opt->step();
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(batch) * steps / s;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model = arg(argc, argv, "model", "vgg11");
  const int64_t batch = std::stoll(arg(argc, argv, "batch", "128"));
  const int64_t size = std::stoll(arg(argc, argv, "size", "32"));
  const int64_t channels = std::stoll(arg(argc, argv, "channels", "3"));
  const int threads = std::stoi(arg(argc, argv, "threads", "2"));
  const int steps = std::stoi(arg(argc, argv, "steps", "20"));
  const std::string python = arg(argc, argv, "python", "");
  const int rounds = std::stoi(arg(argc, argv, "rounds", "3"));
  sgs::keep_freed_memory();  // as `sgs` does at start-up
  std::vector<double> widths;
  std::stringstream ws(arg(argc, argv, "widths", "1,0.25"));
  for (std::string w; std::getline(ws, w, ',');) widths.push_back(std::stod(w));
  at::set_num_threads(threads);
  std::printf("%s, batch %lld, %lldx%lldx%lld synthetic, %d threads, %d timed steps; C++ and Python alternate, "
              "best of %d rounds each\n",
              model.c_str(), static_cast<long long>(batch), static_cast<long long>(channels),
              static_cast<long long>(size), static_cast<long long>(size), threads, steps, rounds);
  std::printf("%-8s %14s %14s %8s\n", "width", "C++ img/s", "Python img/s", "ratio");
  for (double w : widths) {
    double cpp = 0, py = NAN;
    for (int r = 0; r < rounds; ++r) {
      cpp = std::max(cpp, cpp_images_per_second(model, w, batch, size, channels, steps));
      if (python.empty()) continue;
      char cmd[512];
      std::snprintf(cmd, sizeof cmd, "%s %s/bench/train_step.py --model %s --width %g --batch %lld --size %lld "
                                     "--channels %lld --threads %d --steps %d",
                    python.c_str(), SGS_SOURCE_DIR, model.c_str(), w, static_cast<long long>(batch),
                    static_cast<long long>(size), static_cast<long long>(channels), threads, steps);
      FILE* p = popen(cmd, "r");
      double one = NAN;
      if (p != nullptr && std::fscanf(p, "%lf", &one) != 1) one = NAN;
      if (p != nullptr) pclose(p);
      if (!std::isnan(one)) py = std::isnan(py) ? one : std::max(py, one);
    }
    std::printf("%-8g %14.0f %14.0f %8.2f\n", w, cpp, py, cpp / py);
  }
  return 0;
}
