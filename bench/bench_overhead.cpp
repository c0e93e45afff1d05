// What SGS adds to a training epoch of the quick Fashion-MNIST model
// (experiments/quick/fashion_mnist_sgs.json: VGG-11 width 1/4, batch 128,
// mutual-information scalings recomputed every epoch from 2 batches).
//   build/bench/bench_overhead [--repeats 5] [--steps 10] [--config PATH] [--epochs 2] [--skip-runs]
//                              [--baseline PATH] [--device auto|cpu|cuda]
// Whole epochs on shared cores cannot resolve 1-3 %, so the parts are timed
// in one process, interleaved, --repeats times, and medians compared:
//  (a) one scaling update (the mutual_information strategy's on_epoch_begin:
//      2 training batches through the model in eval mode with the conv inputs
//      captured, then dependence::compute for each spatial conv), against an epoch
//      of training steps (steps per epoch x the median step);
//  (b) the gradient multiply (the strategy's after_backward, G on every
//      spatial conv) against one training step (forward, loss, backward, SGD step on
//      a real Fashion-MNIST batch, batches held in memory).
// Then (c), for information: `sgs run` of the baseline (--baseline; default
// fashion_mnist.json next to --config) and of --config with --set epochs=N; epoch_seconds
// (training) and scaling_seconds (updates) read back from their run.h5.
// On --device cuda (auto: where there is one; (c) gets it as --set device=)
// the model, the held batches and the gathered ones are on the GPU, and each
// timed part ends by waiting for the GPU.
#include "bench/bench_args.h"

#include <sgs/config.h>
#include <sgs/dataset.h>
#include <sgs/loader.h>
#include <sgs/model.h>
#include <sgs/optimizer.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>

#include <H5Cpp.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using sgs::bench::arg;

bool flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == "--" + name) return true;
  return false;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<double> read_metric(const std::string& file, const std::string& name) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  auto ds = f.openDataSet("/metrics/" + name);
  hsize_t n = 0;
  ds.getSpace().getSimpleExtentDims(&n);
  std::vector<double> v(n);
  if (n > 0) ds.read(v.data(), H5::PredType::NATIVE_DOUBLE);
  return v;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The SGS config's model, optimizer and strategy, built as the trainer builds them.
struct Setup {
  sgs::Json config;
  std::shared_ptr<sgs::Dataset> dataset;
  std::shared_ptr<sgs::Model> model;
  std::unique_ptr<sgs::Strategy> strategy;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<std::shared_ptr<sgs::ConvBlock>> spatial;
  sgs::StrategyContext ctx;
  torch::Device device = torch::kCPU;
  double gather_seconds = 0;
  int64_t batch_size = 0, steps_per_epoch = 0;
};

void build(Setup& s, const std::string& config_path, const torch::Device& device) {
  s.config = sgs::load_config(config_path, {});
  s.device = device;
  const auto& reg = sgs::Registry::global();
  const auto seed = static_cast<uint64_t>(s.config["seed"].get<int64_t>());
  int64_t threads = s.config["threads"].get<int64_t>();
  if (threads == 0) threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(threads));
  auto plugin = [&](const char* slot) { return s.config[slot]["name"].get<std::string>(); };
  s.dataset = reg.factory<sgs::DatasetKind>(plugin("dataset"))(sgs::slot_options(s.config, "dataset"), seed);
  const auto& info = s.dataset->info();
  s.strategy = reg.factory<sgs::StrategyKind>(plugin("strategy"))(sgs::slot_options(s.config, "strategy"));
  auto factory = s.strategy->conv_factory();
  sgs::ConvFactory plain;
  torch::manual_seed(static_cast<int64_t>(seed));
  s.model = reg.factory<sgs::ModelKind>(plugin("model"))(
      sgs::slot_options(s.config, "model"), sgs::ModelSpec{info.channels, info.num_classes, info.height, info.width},
      factory ? *factory : plain);
  s.model->to(device);
  for (auto& b : sgs::conv_blocks(*s.model))
    if (b->spec().spatial()) s.spatial.push_back(b);
  s.optimizer = reg.factory<sgs::OptimizerKind>(plugin("optimizer"))(sgs::slot_options(s.config, "optimizer"),
                                                                     s.model->parameters());
  s.batch_size = s.config["batch_size"].get<int64_t>();
  s.ctx.model = s.model.get();
  s.ctx.convs = s.spatial;
  s.ctx.optimizer = s.optimizer.get();
  s.ctx.device = device;
  s.ctx.seed = seed;
  s.ctx.epochs = s.config["epochs"].get<int64_t>();
  // As Trainer::run_batches: a fresh loader drawn with draw_seed, eval mode, no grad, capture on.
  s.ctx.run_batches = [&s](const sgs::BatchPass& pass) {
    auto start = Clock::now();
    sgs::LoaderOptions lo;
    lo.batch_size = s.batch_size;
    lo.seed = pass.draw_seed;
    lo.workers = 0;
    sgs::Loader loader(s.dataset->train(), lo);
    loader.start_epoch(0);
    torch::NoGradGuard no_grad;
    s.model->eval();
    if (pass.prepare) pass.prepare();
    if (pass.sink)
      for (auto& b : s.spatial) b->set_capture(pass.sink);
    int64_t images = 0;
    for (int64_t i = 0; i < pass.batches; ++i) {
      auto batch = loader.next();
      if (!batch) break;
      s.model->forward(batch->images.to(s.device, /*non_blocking=*/true));
      images += batch->images.size(0);
    }
    for (auto& b : s.spatial) b->set_capture(nullptr);
    s.model->train();
    sgs::bench::synchronize(s.device);
    s.gather_seconds += since(start);
    return images;
  };
  s.strategy->attach(s.ctx);
}

}  // namespace

int main(int argc, char** argv) try {
  const int repeats = std::stoi(arg(argc, argv, "repeats", "5"));
  const int steps = std::stoi(arg(argc, argv, "steps", "10"));
  const int multiplies = 50;
  const std::string config =
      arg(argc, argv, "config", std::string(SGS_SOURCE_DIR) + "/experiments/quick/fashion_mnist_sgs.json");
  const std::string epochs = arg(argc, argv, "epochs", "2");
  const torch::Device device = sgs::bench::device_arg(argc, argv);

  Setup s;
  build(s, config, device);
  const auto& strategy_cfg = s.config["strategy"];
  {
    sgs::LoaderOptions lo;
    lo.batch_size = s.batch_size;
    lo.seed = s.ctx.seed;
    lo.workers = 0;
    s.steps_per_epoch = sgs::Loader(s.dataset->train(), lo).batches_per_epoch();
  }
  // Training batches held in memory, so that a step is the model's work only.
  std::vector<sgs::Batch> pool;
  {
    sgs::LoaderOptions lo;
    lo.batch_size = s.batch_size;
    lo.seed = s.ctx.seed;
    lo.workers = 0;
    sgs::Loader loader(s.dataset->train(), lo);
    loader.start_epoch(0);
    for (int i = 0; i < 16; ++i) {  // or the whole epoch, when it is shorter
      auto b = loader.next();
      if (!b) break;
      b->images = b->images.to(device);
      b->labels = b->labels.to(device);
      pool.push_back(std::move(*b));
    }
  }
  const double label_smoothing = s.config["label_smoothing"].get<double>();
  auto params = s.model->parameters();
  size_t next = 0;
  auto step = [&] {  // as Trainer::train_epoch, without the strategy hooks
    const auto& b = pool[next++ % pool.size()];
    for (auto& p : params) p.mutable_grad().reset();
    auto loss = torch::nn::functional::cross_entropy(
        s.model->forward(b.images), b.labels,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
    loss.backward();
    s.optimizer->step();
    return loss.item<double>();  // waits for the device
  };

  std::printf("%s: %s, batch %lld, %lld steps per epoch, strategy %s (batches %s, every %s), %s, %d threads (%u "
              "cores)\n",
              std::filesystem::path(config).filename().c_str(), s.config["model"].dump().c_str(),
              static_cast<long long>(s.batch_size), static_cast<long long>(s.steps_per_epoch),
              strategy_cfg["name"].get<std::string>().c_str(), strategy_cfg["batches"].dump().c_str(),
              strategy_cfg["every"].dump().c_str(), device.str().c_str(), at::get_num_threads(),
              std::thread::hardware_concurrency());
  std::printf("interleaved: %d x (%d training steps, 1 scaling update, %d gradient multiplies); medians\n\n",
              repeats, steps, multiplies);

  for (int i = 0; i < 3; ++i) step();  // warm-up
  std::vector<double> step_s, update_s, gather_s, multiply_s;
  for (int r = 0; r < repeats; ++r) {
    for (int i = 0; i < steps; ++i) {
      auto t = Clock::now();
      step();
      step_s.push_back(since(t));
    }
    // An update as at the start of epoch 2 + r (warm-up 1, every 1: due).
    s.ctx.epochs_done = 1 + r;
    s.gather_seconds = 0;
    auto t = Clock::now();
    s.strategy->on_epoch_begin(s.ctx);
    sgs::bench::synchronize(device);
    update_s.push_back(since(t));
    gather_s.push_back(s.gather_seconds);
    // The multiply acts on the gradients the last step left (defined for every conv).
    for (int i = 0; i < multiplies; ++i) {
      auto u = Clock::now();
      s.strategy->after_backward(s.ctx);
      sgs::bench::synchronize(device);
      multiply_s.push_back(since(u));
    }
  }
  const double step_med = median(step_s), update_med = median(update_s), gather_med = median(gather_s);
  const double multiply_med = median(multiply_s), epoch_est = static_cast<double>(s.steps_per_epoch) * step_med;
  std::printf("training step (forward, backward, SGD)     %10.2f ms   (median of %zu)\n", 1e3 * step_med,
              step_s.size());
  std::printf("epoch of steps (%lld x median step)          %10.2f s\n", static_cast<long long>(s.steps_per_epoch),
              epoch_est);
  std::printf("scaling update                            %10.2f ms   (median of %zu; gather %.2f ms, dependence "
              "and the rest %.2f ms)\n",
              1e3 * update_med, update_s.size(), 1e3 * gather_med, 1e3 * (update_med - gather_med));
  std::printf("gradient multiply (%2zu convs)              %10.4f ms   (median of %zu)\n\n", s.spatial.size(),
              1e3 * multiply_med, multiply_s.size());
  const double a = 100 * update_med / epoch_est, b = 100 * multiply_med / step_med;
  std::printf("(a) scaling update / epoch:       %7.3f %%   (target <= 3 %%: %s)\n", a, a <= 3 ? "holds" : "MISSED");
  std::printf("(b) gradient multiply / step:     %7.3f %%   (target <  1 %%: %s)\n", b, b < 1 ? "holds" : "MISSED");
  std::printf("    together, an SGS epoch / a baseline epoch: +%.3f %%\n", a + b);

  if (!flag(argc, argv, "skip-runs")) {
    const auto dir = std::filesystem::temp_directory_path() / ("sgs_bench_overhead_" + std::to_string(getpid()));
    std::printf("\n(c) for information: sgs run --set epochs=%s (whole epochs, noisy on shared cores)\n",
                epochs.c_str());
    std::printf("%-28s %-6s %14s %16s\n", "config", "epoch", "epoch_seconds", "scaling_seconds");
    const std::string base =
        arg(argc, argv, "baseline", std::filesystem::path(config).parent_path() / "fashion_mnist.json");
    std::vector<double> totals;
    for (const auto& cfg : {base, config}) {
      const auto out = dir / std::filesystem::path(cfg).stem();
      const std::string cmd = shell_quote(SGS_BINARY) + " run " + shell_quote(cfg) + " --set epochs=" + epochs +
                              " --set device=" + (device.is_cuda() ? "cuda" : "cpu") +
                              " --out " + shell_quote(out.string()) + " --quiet > /dev/null";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
      const auto h5 = (out / "run.h5").string();
      auto ep = read_metric(h5, "epoch_seconds"), sc = read_metric(h5, "scaling_seconds");
      double total = 0;
      for (size_t i = 0; i < ep.size(); ++i) {
        std::printf("%-28s %-6zu %14.2f %16.3f\n", std::filesystem::path(cfg).filename().c_str(), i + 1, ep[i],
                    i < sc.size() ? sc[i] : NAN);
        if (i > 0) total += ep[i] + (i < sc.size() ? sc[i] : 0);  // epoch 1: warm-up (no update)
      }
      totals.push_back(total);
    }
    if (totals.size() == 2 && totals[0] > 0)
      std::printf("epochs 2..%s, SGS (training + scaling) / baseline: %+.1f %%\n", epochs.c_str(),
                  100 * (totals[1] / totals[0] - 1));
    std::filesystem::remove_all(dir);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_overhead: " << e.what() << "\n";
  return 1;
}
