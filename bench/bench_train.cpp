// Training-step throughput of the C++ runner's step (sgs::TrainStep: the
// model from the registry, SGD with momentum and weight decay, cross-entropy,
// gradients set to none) on synthetic 32x32 (or --size) batches, next to the
// same network and loop in PyTorch's Python API on the same LibTorch
// (bench/train_step.py), for each precision / memory-format setting.
//   build/bench/bench_train [--model vgg11] [--widths 1,0.25] [--batch 128] [--size 32]
//                           [--channels 3] [--threads 2] [--steps 20] [--rounds 3]
//                           [--settings fp32,channels_last,bf16,bf16+channels_last]
//                           [--device auto|cpu|cuda] [--python /usr/bin/python3]
// For every width and setting, C++ and Python alternate --rounds times; each
// reports its best round. "vs Py fp32" is the C++ setting against Python's
// default (fp32, contiguous) at the same width.
#include "bench/bench_args.h"

#include <sgs/config.h>
#include <sgs/model.h>
#include <sgs/optimizer.h>
#include <sgs/precision.h>
#include <sgs/registry.h>
#include <sgs/train_step.h>
#include <sgs/trainer.h>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace {

using sgs::bench::arg;

struct Setting {
  std::string name;
  sgs::Precision precision = sgs::Precision::Fp32;
  bool channels_last = false;
};

Setting parse_setting(const std::string& text) {
  Setting s;
  s.name = text;
  std::stringstream parts(text);
  for (std::string part; std::getline(parts, part, '+');) {
    if (part == "channels_last") s.channels_last = true;
    else s.precision = sgs::parse_precision(part);
  }
  return s;
}

struct Shape {
  std::string model;
  int64_t batch, size, channels;
  int steps;
};

double cpp_images_per_second(const Shape& shape, double width, const Setting& setting, const torch::Device& device) {
  const auto& reg = sgs::Registry::global();
  sgs::Json mk = {{"name", shape.model}, {"width", width}};
  sgs::Options mo(sgs::resolve_object(mk, "model", reg.get("model", shape.model).schema, {"name"}), "model");
  sgs::ConvFactory plain;
  torch::manual_seed(0);
  auto model = reg.factory<sgs::ModelKind>(shape.model)(mo, {shape.channels, 10, shape.size, shape.size}, plain);
  model->to(device);
  const auto format = setting.channels_last ? c10::MemoryFormat::ChannelsLast : c10::MemoryFormat::Contiguous;
  sgs::set_memory_format(*model, format);
  sgs::Json ok = {{"name", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 5e-4}};
  sgs::Options oo(sgs::resolve_object(ok, "optimizer", reg.get("optimizer", "sgd").schema, {"name"}), "optimizer");
  auto params = model->parameters();
  auto opt = reg.factory<sgs::OptimizerKind>("sgd")(oo, params);
  auto x = torch::randn({shape.batch, shape.channels, shape.size, shape.size}, device).contiguous(format);
  auto y = torch::randint(0, 10, {shape.batch}, torch::TensorOptions(device).dtype(torch::kInt64));
  sgs::StepOptions so;
  so.precision = setting.precision;
  std::unique_ptr<sgs::LossScaler> scaler;
  if (setting.precision == sgs::Precision::Fp16) scaler = std::make_unique<sgs::LossScaler>();
  sgs::TrainStep step(*model, *opt, device, so, scaler.get());
  model->train();
  std::chrono::steady_clock::time_point start;
  const int warmup = 5;
  for (int i = 0; i < warmup + shape.steps; ++i) {
    if (i == warmup) {
      sgs::bench::synchronize(device);
      start = std::chrono::steady_clock::now();
    }
    step.run(params, x, y);
  }
  sgs::bench::synchronize(device);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(shape.batch) * shape.steps / s;
}

double python_images_per_second(const std::string& python, const Shape& shape, double width, const Setting& setting,
                                const torch::Device& device, int threads) {
  char cmd[768];
  std::snprintf(cmd, sizeof cmd,
                "%s %s/bench/train_step.py --model %s --width %g --batch %lld --size %lld --channels %lld "
                "--threads %d --steps %d --precision %s%s --device %s",
                python.c_str(), SGS_SOURCE_DIR, shape.model.c_str(), width, static_cast<long long>(shape.batch),
                static_cast<long long>(shape.size), static_cast<long long>(shape.channels), threads, shape.steps,
                sgs::precision_name(setting.precision), setting.channels_last ? " --channels-last" : "",
                device.is_cuda() ? "cuda" : "cpu");
  FILE* p = popen(cmd, "r");
  double one = NAN;
  if (p != nullptr && std::fscanf(p, "%lf", &one) != 1) one = NAN;
  if (p != nullptr) pclose(p);
  return one;
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape;
  shape.model = arg(argc, argv, "model", "vgg11");
  shape.batch = std::stoll(arg(argc, argv, "batch", "128"));
  shape.size = std::stoll(arg(argc, argv, "size", "32"));
  shape.channels = std::stoll(arg(argc, argv, "channels", "3"));
  shape.steps = std::stoi(arg(argc, argv, "steps", "20"));
  const int threads = std::stoi(arg(argc, argv, "threads", "2"));
  const std::string python = arg(argc, argv, "python", "");
  const int rounds = std::stoi(arg(argc, argv, "rounds", "3"));
  torch::Device device = torch::kCPU;
  try {
    device = sgs::bench::device_arg(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_train: " << e.what() << "\n";
    return 2;
  }
  sgs::keep_freed_memory();  // as `sgs` does at start-up
  std::vector<double> widths;
  std::stringstream ws(arg(argc, argv, "widths", "1,0.25"));
  for (std::string w; std::getline(ws, w, ',');) widths.push_back(std::stod(w));
  std::vector<Setting> settings;
  std::stringstream ss(arg(argc, argv, "settings",
                           device.is_cuda() ? "fp32,channels_last,bf16,bf16+channels_last,fp16,fp16+channels_last"
                                            : "fp32,channels_last,bf16,bf16+channels_last"));
  try {
    for (std::string s; std::getline(ss, s, ',');) {
      settings.push_back(parse_setting(s));
      sgs::check_precision(settings.back().precision, device);
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_train: --settings: " << e.what() << "\n";
    return 2;
  }
  at::set_num_threads(threads);
  std::printf("%s, batch %lld, %lldx%lldx%lld synthetic, %s, %d threads, %d timed steps; C++ and Python alternate, "
              "best of %d rounds each\n",
              shape.model.c_str(), static_cast<long long>(shape.batch), static_cast<long long>(shape.channels),
              static_cast<long long>(shape.size), static_cast<long long>(shape.size), device.str().c_str(), threads,
              shape.steps, rounds);
  std::printf("%-6s %-20s %10s %10s %8s %11s\n", "width", "setting", "C++ img/s", "Py img/s", "C++/Py", "vs Py fp32");
  for (double w : widths) {
    double python_fp32 = NAN;
    for (const auto& setting : settings) {
      double cpp = 0, py = NAN;
      for (int r = 0; r < rounds; ++r) {
        cpp = std::max(cpp, cpp_images_per_second(shape, w, setting, device));
        if (python.empty()) continue;
        const double one = python_images_per_second(python, shape, w, setting, device, threads);
        if (!std::isnan(one)) py = std::isnan(py) ? one : std::max(py, one);
      }
      if (setting.precision == sgs::Precision::Fp32 && !setting.channels_last) python_fp32 = py;
      std::printf("%-6g %-20s %10.0f %10.0f %8.2f %11.2f\n", w, setting.name.c_str(), cpp, py, cpp / py,
                  cpp / python_fp32);
      std::fflush(stdout);
    }
  }
  return 0;
}
