// bench_structural: the training cost of the structural baselines against SGS
// (paper section 4.1: "SGS ... only requiring a third of [DBB's] training
// time"). For VGG-16 on CIFAR shapes (3x32x32, 10 classes; --input, --classes
// and --width for others, e.g. the study's 1x28x28 at width 0.125) at each batch
// size, one training step (forward, cross-entropy, backward, SGD with momentum
// and weight decay) of
//   none                the plain model
//   mutual_information  the plain model + SGS's gradient multiply G ⊙ grad (timed apart);
//                       its scaling update (gather + mutual information) is timed
//                       once after the steps and reported separately, with its
//                       amortised cost and the peak memory it adds beyond the steps'
//   acb, dbb, repvgg    the branched models
//   qarepvgg            repvgg's variant qarepvgg (QARepVGG's block)
//   orepa               OREPA: its branches composed into one kernel every step, one conv
//   repopt              RepOpt's search: LinearAddBlocks (3x3 and 1x1 convs, identity, scales)
//   repopt_target       RepOpt's target: the plain model, its gradients multiplied by M
//                       (scales of 1 from a search run file this benchmark writes)
//   dyrep               the model after --dyrep-growths adjustments of DyRep
//                       (grow_interval 1: one growth each, the conv of largest
//                       synflow over a step; a quick run of 4 epochs grows 3)
// Step time is the best over rounds (each configuration visited in turn) and
// timed steps: the machine may be shared, and the best step is the one least
// disturbed. Wall time and the process's CPU time (all threads) are both
// given; the gradient multiply is the mean over a round's steps.
// Each configuration runs in a fresh child process (this binary re-executed),
// so that its peak memory is the growth of the child's max RSS (getrusage)
// from just before the first step to after the last one: activations,
// gradients and optimizer state, not the model's weights. On --device cuda
// (auto: where there is one) everything is on the GPU, each timed part ends
// by waiting for it, and the peak is the CUDA caching allocator's peak of
// allocated bytes over the same span, less what was allocated at its start
// (as torch.cuda.max_memory_allocated counts); cpu_s is then the host's
// share of a step.
//
//   build/bench/bench_structural [--model vgg16] [--batches 64,128] [--rounds 2] [--steps 2] [--warmup 1]
//                                [--threads 2] [--strategies none,mutual_information,acb,dbb,repvgg,qarepvgg,dyrep,orepa,repopt,repopt_target]
//                                [--update-batches 2] [--dyrep-growths 3] [--device auto|cpu|cuda]
//                                [--input 3x32x32] [--classes 10] [--width 1]
#include "bench/bench_args.h"

#include <sgs/config.h>
#include <sgs/model.h>
#include <sgs/optimizer.h>
#include <sgs/registry.h>
#include <sgs/run_log.h>
#include <sgs/strategy.h>

#include <torch/torch.h>
#ifdef SGS_BENCH_CUDA_MEMORY
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using sgs::bench::arg;
using sgs::bench::Clock;
using sgs::bench::seconds_since;
using sgs::bench::parse_shape;
using sgs::bench::Shape;
using sgs::bench::split;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

// Peak memory: a mark taken now, and the growth past it since, in MiB.
struct MemoryMark {
  torch::Device device;
  c10::DeviceIndex index;  // the CUDA device's
  double rss_mb = 0;
  int64_t cuda_bytes = 0;
  explicit MemoryMark(const torch::Device& d) : device(d), index(d.has_index() ? d.index() : 0) {
    if (!device.is_cuda()) {
      rss_mb = max_rss_mb();
      return;
    }
#ifdef SGS_BENCH_CUDA_MEMORY
    sgs::bench::synchronize(device);
    c10::cuda::CUDACachingAllocator::resetPeakStats(index);
    cuda_bytes = c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].current;
#endif
  }
  double growth_mb() const {
    if (!device.is_cuda()) return max_rss_mb() - rss_mb;
#ifdef SGS_BENCH_CUDA_MEMORY
    sgs::bench::synchronize(device);
    const auto peak = c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].peak;
    return static_cast<double>(peak - cuda_bytes) / (1024.0 * 1024.0);
#else
    return NAN;  // a LibTorch without CUDA has no CUDA device to run on
#endif
  }
};

struct Measurement {
  double step_s = NAN, cpu_s = NAN, multiply_s = NAN, peak_mb = NAN, update_s = NAN, update_peak_mb = NAN;
};

// A completed repopt search run in `dir` whose scales are all 1 (the step's
// cost does not depend on their values), for repopt's target mode.
void write_unit_scales(const std::string& dir, const std::vector<std::shared_ptr<sgs::ConvBlock>>& convs) {
  const sgs::Json config = {{"strategy", {{"name", "repopt"}, {"mode", "search"}}}};
  auto search = sgs::Registry::global().factory<sgs::StrategyKind>("repopt")(
      sgs::Options(sgs::resolve_object({{"name", "repopt"}}, "strategy",
                                       sgs::Registry::global().get("strategy", "repopt").schema, {"name"}),
                   "strategy"));
  auto log = sgs::RunLog::create(dir + "/run.h5", config, "cpu", 1, search->log_tables());
  int64_t index = 0;
  for (const auto& b : convs) {
    const auto& spec = b->spec();
    if (spec.kernel[0] != 3 || spec.kernel[1] != 3) continue;
    log->add_layer(b->path(), index++, spec);
    const bool identity = spec.in_channels == spec.out_channels && spec.stride[0] == 1 && spec.stride[1] == 1 &&
                          spec.padding[0] == 1 && spec.padding[1] == 1;
    auto ones = torch::ones({spec.out_channels}, torch::kFloat64);
    log->append("repopt", b->path(),
                {ones, ones, identity ? ones : torch::full({spec.out_channels}, NAN, torch::kFloat64),
                 torch::scalar_tensor(1, torch::kInt64)});
  }
  log->set_status(sgs::RunStatus::Completed);
}

// One configuration, in this (child) process. Prints one line of numbers.
int child(const std::string& model_name, const std::string& strategy_name, int64_t batch, int steps, int warmup,
          int64_t update_batches, int64_t dyrep_growths, const torch::Device& device, const Shape& shape,
          double width) {
  const auto& reg = sgs::Registry::global();
  // "qarepvgg": the repvgg strategy's QARepVGG variant; "repopt_target": repopt's target mode.
  const std::string plugin =
      strategy_name == "qarepvgg" ? "repvgg" : strategy_name == "repopt_target" ? "repopt" : strategy_name;
  sgs::Json sk = {{"name", plugin}};
  if (strategy_name == "mutual_information") sk["batches"] = update_batches;
  if (strategy_name == "dyrep") sk["grow_interval"] = 1;
  if (strategy_name == "qarepvgg") sk["variant"] = "qarepvgg";
  char search_dir[] = "/tmp/bench_structural_repopt.XXXXXX";
  if (strategy_name == "repopt_target") {
    if (mkdtemp(search_dir) == nullptr) throw std::runtime_error("cannot create a temporary folder");
    sk["mode"] = "target";
    sk["scales_from"] = search_dir;
  }
  sgs::Options so(sgs::resolve_object(sk, "strategy", reg.get("strategy", plugin).schema, {"name"}), "strategy");
  auto strategy = reg.factory<sgs::StrategyKind>(plugin)(so);
  auto factory = strategy->conv_factory();
  sgs::ConvFactory plain;
  sgs::Json mk = {{"name", model_name}, {"width", width}};
  sgs::Options mo(sgs::resolve_object(mk, "model", reg.get("model", model_name).schema, {"name"}), "model");
  torch::manual_seed(0);
  auto model = reg.factory<sgs::ModelKind>(model_name)(mo, {shape.channels, shape.classes, shape.height, shape.width},
                                                        factory ? *factory : plain);
  model->to(device);
  sgs::Json ok = {{"name", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 1e-4}};
  sgs::Options oo(sgs::resolve_object(ok, "optimizer", reg.get("optimizer", "sgd").schema, {"name"}), "optimizer");
  auto params = model->parameters();
  auto optimizer = reg.factory<sgs::OptimizerKind>("sgd")(oo, params);
  auto x = torch::randn({batch, shape.channels, shape.height, shape.width}, device);
  auto y = torch::randint(0, shape.classes, {batch}, torch::TensorOptions(device).dtype(torch::kInt64));

  sgs::StrategyContext ctx;
  ctx.model = model.get();
  for (auto& b : sgs::conv_blocks(*model))
    if (b->spec().spatial()) ctx.convs.push_back(b);
  ctx.optimizer = optimizer.get();
  ctx.device = device;
  ctx.epochs = 600;
  int64_t gather_batch = batch;
  ctx.run_batches = [&](const sgs::BatchPass& pass) {
    torch::NoGradGuard no_grad;
    model->eval();
    if (pass.prepare) pass.prepare();
    for (auto& b : ctx.convs) b->set_capture(pass.sink);
    for (int64_t i = 0; i < pass.batches; ++i) model->forward(torch::randn({gather_batch, shape.channels, shape.height, shape.width}, device));
    for (auto& b : ctx.convs) b->set_capture(nullptr);
    model->train();
    return pass.batches * gather_batch;
  };
  if (strategy_name == "repopt_target") write_unit_scales(search_dir, ctx.convs);
  strategy->attach(ctx);
  if (strategy_name == "repopt_target") std::filesystem::remove_all(search_dir);
  Measurement m;
  const bool sgs_run = strategy_name == "mutual_information";
  // Before DyRep's growth steps, which reach (almost) the timed steps' peak.
  const MemoryMark before_steps(device);
  if (strategy_name == "dyrep") {
    // One recorded step, then an adjustment (a growth), dyrep_growths times.
    model->train();
    for (int64_t g = 1; g <= dyrep_growths; ++g) {
      optimizer->zero_grad();
      torch::nn::functional::cross_entropy(model->forward(x), y).backward();
      strategy->after_backward(ctx);
      optimizer->step();
      ctx.epochs_done = g;
      strategy->on_epoch_begin(ctx);
    }
    params = model->parameters();
  }
  if (sgs_run) {
    // A first, small update (one batch of 4 images) puts a G on every layer, so
    // that the timed steps apply it; the full-size update is timed at the end.
    ctx.epochs_done = 1;  // past the default 1 warm-up epoch: an update is due
    gather_batch = 4;
    strategy->on_epoch_begin(ctx);
    gather_batch = batch;
  }
  model->train();
  double best = INFINITY, best_cpu = INFINITY, multiply = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    auto start = Clock::now();
    const double cpu_start = cpu_seconds();
    for (auto& p : params) p.mutable_grad().reset();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    sgs::bench::synchronize(device);
    auto t = Clock::now();
    strategy->after_backward(ctx);  // SGS: G ⊙ grad on every spatial conv
    sgs::bench::synchronize(device);
    const double mult = seconds_since(t);
    optimizer->step();
    strategy->after_step(ctx);
    sgs::bench::synchronize(device);
    if (i >= warmup) {
      best = std::min(best, seconds_since(start));
      best_cpu = std::min(best_cpu, cpu_seconds() - cpu_start);
      multiply += mult;
    }
  }
  m.step_s = best;
  m.cpu_s = best_cpu;
  m.peak_mb = before_steps.growth_mb();
  if (sgs_run) {
    m.multiply_s = multiply / steps;
    // On the CPU beyond the training steps' peak (max RSS only grows); on a
    // GPU beyond what the update starts with (its peak is reset).
    const MemoryMark before_update(device);
    auto start = Clock::now();
    strategy->on_epoch_begin(ctx);
    sgs::bench::synchronize(device);
    m.update_s = seconds_since(start);
    m.update_peak_mb = before_update.growth_mb();
  }
  std::printf("%.9g %.9g %.9g %.9g %.9g %.9g\n", m.step_s, m.cpu_s, m.multiply_s, m.peak_mb, m.update_s, m.update_peak_mb);
  return 0;
}

Measurement spawn(const std::string& self, const std::string& model, const std::string& strategy, int64_t batch,
                  int steps, int warmup, int threads, int64_t update_batches, int64_t dyrep_growths,
                  const torch::Device& device, const Shape& shape, double width) {
  char cmd[1024];
  std::snprintf(cmd, sizeof cmd, "%s --child %s --model %s --batch %lld --steps %d --warmup %d --threads %d "
                                 "--update-batches %lld --dyrep-growths %lld --device %s --input %lldx%lldx%lld "
                                 "--classes %lld --width %.17g",
                self.c_str(), strategy.c_str(), model.c_str(), static_cast<long long>(batch), steps, warmup, threads,
                static_cast<long long>(update_batches), static_cast<long long>(dyrep_growths),
                device.is_cuda() ? "cuda" : "cpu", static_cast<long long>(shape.channels),
                static_cast<long long>(shape.height), static_cast<long long>(shape.width),
                static_cast<long long>(shape.classes), width);
  Measurement m;
  FILE* p = popen(cmd, "r");
  if (p == nullptr) return m;
  if (std::fscanf(p, "%lf %lf %lf %lf %lf %lf", &m.step_s, &m.cpu_s, &m.multiply_s, &m.peak_mb, &m.update_s,
                  &m.update_peak_mb) != 6)
    m = Measurement{};
  if (pclose(p) != 0) std::fprintf(stderr, "bench_structural: %s at batch %lld failed\n", strategy.c_str(),
                                   static_cast<long long>(batch));
  return m;
}

std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string model = arg(argc, argv, "model", "vgg16");
  const int steps = std::stoi(arg(argc, argv, "steps", "2"));
  const int rounds = std::stoi(arg(argc, argv, "rounds", "2"));
  const int warmup = std::stoi(arg(argc, argv, "warmup", "1"));
  const int threads = std::stoi(arg(argc, argv, "threads", "2"));
  const int64_t update_batches = std::stoll(arg(argc, argv, "update-batches", "2"));
  const int64_t dyrep_growths = std::stoll(arg(argc, argv, "dyrep-growths", "3"));
  const torch::Device device = sgs::bench::device_arg(argc, argv);
  const Shape shape = parse_shape(arg(argc, argv, "input", "3x32x32"), std::stoll(arg(argc, argv, "classes", "10")));
  const double width = std::stod(arg(argc, argv, "width", "1"));
  if (!(width > 0)) throw std::invalid_argument("--width: must be positive");
  at::set_num_threads(threads);
  const std::string child_strategy = arg(argc, argv, "child", "");
  if (!child_strategy.empty())
    return child(model, child_strategy, std::stoll(arg(argc, argv, "batch", "128")), steps, warmup, update_batches,
                 dyrep_growths, device, shape, width);

  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = '\0';
  const auto strategies =
      split(arg(argc, argv, "strategies", "none,mutual_information,acb,dbb,repvgg,qarepvgg,dyrep,orepa,repopt,repopt_target"));
  std::vector<int64_t> batches;
  for (const auto& b : split(arg(argc, argv, "batches", "64,128"))) batches.push_back(std::stoll(b));

  std::printf("%s (width %g) training step on %lldx%lldx%lld inputs, %lld classes, %s, %d threads; step_s (wall) and "
              "cpu_s (process CPU time): best of %d rounds x %d steps after %d warm-up; peak = %s over the steps\n",
              model.c_str(), width, static_cast<long long>(shape.channels),
              static_cast<long long>(shape.height), static_cast<long long>(shape.width),
              static_cast<long long>(shape.classes), device.str().c_str(), threads, rounds, steps, warmup,
              device.is_cuda() ? "CUDA allocator's peak allocation growth" : "max-RSS growth");
  std::printf("%-6s %-20s %9s %8s %9s %8s %12s %9s %8s\n", "batch", "strategy", "step_s", "x_plain", "cpu_s",
              "x_plain", "G*grad_ms", "peak_MB", "x_plain");
  // Rounds visit every configuration in turn; each keeps its best round.
  std::map<std::pair<int64_t, std::string>, Measurement> all;
  for (int r = 0; r < rounds; ++r) {
    for (int64_t batch : batches) {
      for (const auto& s : strategies) {
        std::fprintf(stderr, "round %d/%d: %s, batch %lld\n", r + 1, rounds, s.c_str(), static_cast<long long>(batch));
        auto m = spawn(self, model, s, batch, steps, warmup, threads, update_batches, dyrep_growths, device, shape, width);
        auto it = all.find({batch, s});
        if (it == all.end()) {
          all[{batch, s}] = m;
          continue;
        }
        auto& best = it->second;
        auto keep_min = [](double& a, double b) { a = std::isnan(a) ? b : std::min(a, b); };
        keep_min(best.step_s, m.step_s);
        keep_min(best.cpu_s, m.cpu_s);
        keep_min(best.multiply_s, m.multiply_s);
        keep_min(best.update_s, m.update_s);
      }
    }
  }
  for (int64_t batch : batches) {
    for (const auto& s : strategies) {
      const auto& m = all[{batch, s}];
      const auto base = all.count({batch, "none"}) ? all[{batch, "none"}] : Measurement{};
      std::printf("%-6lld %-20s %9s %8s %9s %8s %12s %9s %8s\n", static_cast<long long>(batch), s.c_str(),
                  fmt("%.3f", m.step_s).c_str(), fmt("%.2f", m.step_s / base.step_s).c_str(),
                  fmt("%.3f", m.cpu_s).c_str(), fmt("%.2f", m.cpu_s / base.cpu_s).c_str(),
                  fmt("%.2f", 1e3 * m.multiply_s).c_str(), fmt("%.0f", m.peak_mb).c_str(),
                  fmt("%.2f", m.peak_mb / base.peak_mb).c_str());
    }
  }
  std::printf("\n");
  for (int64_t batch : batches) {
    auto it = all.find({batch, "mutual_information"});
    if (it == all.end() || std::isnan(it->second.update_s)) continue;
    const auto& m = it->second;
    // The paper's CIFAR recipe: 20 batches every 30 epochs of 391 steps (50k images, batch 128).
    const double per_update_20 = m.update_s * 20.0 / static_cast<double>(update_batches);
    const double amortised = per_update_20 / (30.0 * 391.0);
    std::printf("batch %lld: SGS scaling update (mutual information, %lld batches): %.2f s, peak +%.0f MB beyond the steps; "
                "CIFAR recipe (20 batches every 30 epochs of 391 steps): %.4f s/step amortised (%.2f%% of a step)\n",
                static_cast<long long>(batch), static_cast<long long>(update_batches), m.update_s, m.update_peak_mb,
                amortised, 100 * amortised / m.step_s);
  }
  for (int64_t batch : batches) {
    auto s = all.find({batch, "mutual_information"}), d = all.find({batch, "dbb"}), a = all.find({batch, "acb"});
    if (s == all.end() || d == all.end()) continue;
    std::printf("batch %lld: SGS / DBB step time %.2f, SGS / ACB %.2f, SGS / DBB peak memory %.2f (paper, CIFAR-10 on "
                "GPU: SGS takes about a third of DBB's training time)\n",
                static_cast<long long>(batch), s->second.step_s / d->second.step_s,
                a == all.end() ? NAN : s->second.step_s / a->second.step_s, s->second.peak_mb / d->second.peak_mb);
  }
  for (int64_t batch : batches) {
    auto o = all.find({batch, "orepa"}), d = all.find({batch, "dbb"});
    if (o == all.end() || d == all.end()) continue;
    std::printf("batch %lld: OREPA / DBB step time %.2f, peak memory %.2f (paper, ImageNet on GPU: OREPA trains about "
                "2x faster than DBB with about 70%% less memory)\n",
                static_cast<long long>(batch), o->second.step_s / d->second.step_s, o->second.peak_mb / d->second.peak_mb);
  }
  for (int64_t batch : batches) {
    auto t = all.find({batch, "repopt_target"}), n = all.find({batch, "none"}), h = all.find({batch, "repopt"});
    if (t == all.end() || n == all.end()) continue;
    std::printf("batch %lld: RepOpt target / plain step time %.2f, peak memory %.2f; search / plain step time %.2f "
                "(RepOpt's claim: the target trains at the plain model's cost)\n",
                static_cast<long long>(batch), t->second.step_s / n->second.step_s, t->second.peak_mb / n->second.peak_mb,
                h == all.end() ? NAN : h->second.step_s / n->second.step_s);
  }
  for (int64_t batch : batches) {
    auto y = all.find({batch, "dyrep"}), d = all.find({batch, "dbb"});
    if (y == all.end() || d == all.end()) continue;
    std::printf("batch %lld: DyRep (%lld convs grown) / DBB (every conv) step time %.2f, peak memory %.2f (DyRep's "
                "claim: cheaper than DBB on every conv)\n",
                static_cast<long long>(batch), static_cast<long long>(dyrep_growths), y->second.step_s / d->second.step_s,
                y->second.peak_mb / d->second.peak_mb);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_structural: %s\n", e.what());
  return 1;
}
