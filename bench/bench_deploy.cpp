// bench_deploy: inference speed of the deployed models, on the CPU. For each
// model (VGG-11, ResNet-18; CIFAR shapes 3x32x32, 10 classes by default) and
// structural strategy, at each batch size, images/s and latency of
//   branched_libtorch  the model as trained (its branched blocks), eval mode
//   fused_libtorch     the fused plain model (sgs::fuse_model, as `sgs fuse`)
//   opencv_fp32        the fused model's ONNX file (as `sgs export` writes it:
//                      every BatchNorm folded) in OpenCV's DNN, float32
//   opencv_int8        the same net after OpenCV's own int8 quantization
//                      (Net::quantize, as `sgs quantize --opencv`), calibrated
//                      on --calib-batches batches of 16 random images
// Strategies: none (the plain baseline: its "branched" model is the plain one
// too), acb, dbb, repvgg, qarepvgg (repvgg's QARepVGG variant), orepa, repopt
// (RepOpt's search block; its target trains the plain model: none's rows),
// and dyrep after --dyrep-growths growths (grow
// interval 1: a recorded training step on random images, then a growth, as
// bench_structural does; BN recalibration on 2 batches only). Every model's
// BatchNorms then get random affine parameters and the running statistics of
// a training-mode pass over 8 random images, so that fusion and folding have
// something to fold.
// Latency is the median forward time of one measurement (--iters forwards, or
// with --iters 0 as many as fill --min-time seconds, at least one), the best
// over --rounds rounds that visit every configuration in turn (the machine
// may be shared: the best round is the least disturbed); images/s is the
// batch over that latency. x_plain: the latency over the plain baseline's
// (none) fused LibTorch latency at the same batch. max|d|: the largest logit
// difference, on the timed batch, from the fused LibTorch model (the
// reference, whose row gives its largest |logit| as the scale; flagged above
// 1e-3 for the float32 rows, for int8 only shown).
// Every runtime runs --warmup forwards per batch size before it is timed.
// CPU only: OpenCV's DNN runs on its CPU backend, LibTorch next to it with
// the same --threads (intra-op; OpenCV's own pool too, where the build links
// OpenCV's core). Without ONNX or OpenCV's DNN in the build, the opencv rows
// are skipped (a line says so) and the LibTorch ones still timed.
//
//   build/bench/bench_deploy [--models vgg11,resnet18] [--strategies none,acb,dbb,repvgg,dyrep,...]
//                            [--batches 1,64] [--rounds 3] [--iters 0] [--min-time 0.3] [--warmup 1]
//                            [--threads 2] [--input 3x32x32] [--classes 10] [--width 1]
//                            [--dyrep-growths 3] [--calib-batches 2] [--device cpu]
#include "bench/bench_args.h"
#include "deploy/onnx_model.h"
#include "deploy/opencv_net.h"

#include <sgs/assembly.h>
#include <sgs/config.h>
#include <sgs/export_graph.h>
#include <sgs/fuse.h>
#include <sgs/model.h>
#include <sgs/norm.h>
#include <sgs/optimizer.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>

#include <torch/torch.h>
#ifdef SGS_BENCH_OPENCV_THREADS
#include <opencv2/core/utility.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using sgs::bench::arg;
using sgs::bench::Clock;
using sgs::bench::seconds_since;
using sgs::bench::parse_shape;
using sgs::bench::Shape;
using sgs::bench::split;

std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

const std::vector<std::string> kRuntimes = {"branched_libtorch", "fused_libtorch", "opencv_fp32", "opencv_int8"};
constexpr double kTolerance = 1e-3;

// One strategy's model in its four forms.
struct Deployed {
  std::string strategy;
  sgs::RunModel run;  // the branched model (run.model), eval mode
  std::shared_ptr<sgs::Model> fused;
  std::optional<sgs::deploy::OpenCvNet> fp32, int8;
  std::string note;  // why an opencv form is missing, if it is

  bool has(const std::string& runtime) const {
    if (runtime == "opencv_fp32") return fp32.has_value();
    if (runtime == "opencv_int8") return int8.has_value();
    return true;
  }
  torch::Tensor forward(const std::string& runtime, const torch::Tensor& x) {
    if (runtime == "branched_libtorch") return run.model->forward(x);
    if (runtime == "fused_libtorch") return fused->forward(x);
    if (runtime == "opencv_fp32") return fp32->forward(x);
    return int8->forward(x);
  }
};

// Random affine parameters on every BatchNorm, then running statistics: those
// of a training-mode pass over 8 random images (the affine parameters first,
// so that the statistics are those of the activations the model computes).
void exercise_batch_norms(sgs::Model& model, const Shape& shape) {
  torch::NoGradGuard no_grad;
  std::vector<std::pair<sgs::BatchNorm2dImpl*, c10::optional<double>>> momenta;
  for (const auto& m : model.modules())
    if (auto* bn = dynamic_cast<sgs::BatchNorm2dImpl*>(m.get()); bn != nullptr) {
      if (bn->weight.defined()) {
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.normal_(0.0, 0.1);
      }
      if (!bn->running_mean.defined()) continue;
      bn->reset_running_stats();
      momenta.emplace_back(bn, bn->options.momentum());
      bn->options.momentum(c10::nullopt);  // a cumulative average: the batch's statistics
    }
  model.train();
  model.forward(torch::randn({8, shape.channels, shape.height, shape.width}));
  model.eval();
  for (auto& [bn, momentum] : momenta) bn->options.momentum(momentum);
}

// DyRep's growths as in a run with grow_interval 1: a recorded training step
// (SGD from the config's optimizer slot), then an adjustment, `growths` times.
void grow_dyrep(sgs::RunModel& run, const Shape& shape, int64_t growths) {
  const auto& reg = sgs::Registry::global();
  auto& model = *run.model;
  auto params = model.parameters();
  auto optimizer = reg.factory<sgs::OptimizerKind>(run.config["optimizer"]["name"].get<std::string>())(
      sgs::slot_options(run.config, "optimizer"), params);
  const int64_t batch = 8;
  auto x = torch::randn({batch, shape.channels, shape.height, shape.width});
  auto y = torch::randint(0, shape.classes, {batch}, torch::TensorOptions().dtype(torch::kInt64));
  sgs::StrategyContext ctx;
  ctx.model = &model;
  for (auto& b : sgs::conv_blocks(model))
    if (b->spec().spatial()) ctx.convs.push_back(b);
  ctx.optimizer = optimizer.get();
  ctx.epochs = 600;
  ctx.run_batches = [&](const sgs::BatchPass& pass) {
    torch::NoGradGuard no_grad;
    model.eval();
    if (pass.prepare) pass.prepare();
    for (auto& b : ctx.convs) b->set_capture(pass.sink);
    for (int64_t i = 0; i < pass.batches; ++i)
      model.forward(torch::randn({batch, shape.channels, shape.height, shape.width}));
    for (auto& b : ctx.convs) b->set_capture(nullptr);
    model.train();
    return pass.batches * batch;
  };
  run.strategy->attach(ctx);
  model.train();
  for (int64_t g = 1; g <= growths; ++g) {
    optimizer->zero_grad();
    torch::nn::functional::cross_entropy(model.forward(x), y).backward();
    run.strategy->after_backward(ctx);
    optimizer->step();
    run.strategy->after_step(ctx);
    ctx.epochs_done = g;
    run.strategy->on_epoch_begin(ctx);
  }
  for (auto& p : model.parameters()) p.mutable_grad().reset();
  model.eval();
}

// The model of `model_name` x `strategy`, built as a run builds it (the
// resolved config, the strategy's conv factory recorded for fuse_model), and
// its fused, ONNX and OpenCV forms.
Deployed deploy(const std::string& model_name, const std::string& strategy, double width, const Shape& shape,
                int64_t dyrep_growths, int64_t calib_batches, bool opencv) {
  sgs::Json raw = {
      {"seed", 0},
      // Only the slot's schema matters here: the dataset is never built (the spec is --input's).
      {"dataset", {{"name", "synthetic"}, {"size", shape.height}, {"channels", shape.channels},
                   {"classes", shape.classes}}},
      {"model", {{"name", model_name}, {"width", width}}},
      {"strategy", {{"name", strategy == "qarepvgg" ? std::string("repvgg") : strategy}}}};
  if (strategy == "qarepvgg") raw["strategy"]["variant"] = "qarepvgg";  // repvgg's QARepVGG variant
  if (strategy == "dyrep") {
    raw["strategy"]["grow_interval"] = 1;
    raw["strategy"]["recal_bn_batches"] = 2;  // of 8 images; exercise_batch_norms sets every BN's statistics after
  }
  Deployed d;
  d.strategy = strategy;
  auto& run = d.run;
  run.config = sgs::resolve_config(raw, "bench_deploy");
  run.spec = sgs::ModelSpec{shape.channels, shape.classes, shape.height, shape.width};
  run.strategy = sgs::make_strategy(run.config);
  auto inner = run.strategy->conv_factory();
  sgs::RecordingConvFactory recording(inner ? inner : std::make_shared<sgs::ConvFactory>());
  run.model = sgs::build_model(run.config, run.spec, recording);
  run.made = recording.blocks();
  run.norms_after = recording.norms_after();
  sgs::conv_blocks(*run.model);  // sets the blocks' paths
  torch::manual_seed(1);
  if (strategy == "dyrep") grow_dyrep(run, shape, dyrep_growths);
  exercise_batch_norms(*run.model, shape);
  d.fused = sgs::fuse_model(run);
  d.fused->eval();
  if (!opencv) return d;
  try {
    sgs::ExportGraph g;
    g.output(d.fused->export_graph(g, g.input()));
    sgs::deploy::OnnxModelInfo info;
    info.batch = "dynamic";
    info.input_shape = {shape.channels, shape.height, shape.width};
    info.classes = shape.classes;
    d.fp32 = sgs::deploy::OpenCvNet::from_onnx(sgs::deploy::onnx_model_bytes(g, info));
    std::vector<torch::Tensor> calibration;
    for (int64_t i = 0; i < calib_batches; ++i)
      calibration.push_back(torch::randn({16, shape.channels, shape.height, shape.width}));
    d.int8 = d.fp32->quantized(calibration);
  } catch (const std::exception& e) {  // NotExportable, or a runtime that refuses the model
    d.note = e.what();
  }
  return d;
}

// The median forward time of one measurement: `iters` forwards, or (iters 0)
// as many as fill min_time seconds, at least one.
double measure(Deployed& d, const std::string& runtime, const torch::Tensor& x, int iters, double min_time) {
  std::vector<double> times;
  const auto start = Clock::now();
  while (iters > 0 ? static_cast<int>(times.size()) < iters : times.empty() || seconds_since(start) < min_time) {
    const auto t = Clock::now();
    d.forward(runtime, x);
    times.push_back(seconds_since(t));
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 == 1 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

struct Row {
  double latency_s = NAN;  // best over rounds of the measurements' medians
  double max_diff = NAN;   // from the fused LibTorch logits
  double max_logit = NAN;  // fused LibTorch: its largest |logit| (the scale of the differences)
};

}  // namespace

int main(int argc, char** argv) try {
  const auto models = split(arg(argc, argv, "models", "vgg11,resnet18"));
  const auto strategies = split(arg(argc, argv, "strategies", "none,acb,dbb,repvgg,dyrep"));
  std::vector<int64_t> batches;
  for (const auto& b : split(arg(argc, argv, "batches", "1,64"))) batches.push_back(std::stoll(b));
  const int rounds = std::stoi(arg(argc, argv, "rounds", "3"));
  const int iters = std::stoi(arg(argc, argv, "iters", "0"));
  const double min_time = std::stod(arg(argc, argv, "min-time", "0.3"));
  const int warmup = std::stoi(arg(argc, argv, "warmup", "1"));
  const int threads = std::stoi(arg(argc, argv, "threads", "2"));
  const Shape shape = parse_shape(arg(argc, argv, "input", "3x32x32"), std::stoll(arg(argc, argv, "classes", "10")));
  const double width = std::stod(arg(argc, argv, "width", "1"));
  const int64_t dyrep_growths = std::stoll(arg(argc, argv, "dyrep-growths", "3"));
  const int64_t calib_batches = std::stoll(arg(argc, argv, "calib-batches", "2"));
  const std::string device = arg(argc, argv, "device", "cpu");
  if (device != "cpu")
    throw std::invalid_argument("--device: '" + device + "': bench_deploy runs on the CPU only (OpenCV's DNN CPU "
                                "backend next to LibTorch)");
  if (rounds < 1 || iters < 0 || warmup < 0 || threads < 1 || calib_batches < 1 || batches.empty())
    throw std::invalid_argument("--rounds, --threads, --calib-batches must be >= 1, --iters and --warmup >= 0");
  const auto begin = Clock::now();
  at::set_num_threads(threads);
#ifdef SGS_BENCH_OPENCV_THREADS
  cv::setNumThreads(threads);
#endif

  const bool opencv = sgs::deploy::onnx_available() && sgs::deploy::opencv_dnn_available();
  const std::string per_measurement =
      iters > 0 ? std::to_string(iters) + " forwards" : "forwards filling " + fmt("%g", min_time) + " s, at least 1";
  std::printf("Inference on the CPU, %d threads, input %lldx%lldx%lld, %lld classes, width %g; latency: median "
              "forward of a measurement (%s), best of %d rounds after %d warm-up forwards; images/s = batch / "
              "latency; x_plain = latency / none's fused_libtorch latency at the batch; max|d| = max |logit "
              "difference| from fused_libtorch (flag > %g, int8 shown only)\n",
              threads, static_cast<long long>(shape.channels), static_cast<long long>(shape.height),
              static_cast<long long>(shape.width), static_cast<long long>(shape.classes), width,
              per_measurement.c_str(),
              rounds, warmup, kTolerance);
  if (opencv)
    std::printf("OpenCV runtime: %s (fp32; int8 by Net::quantize on %lld x 16 random images)\n",
                sgs::deploy::opencv_runtime_name().c_str(), static_cast<long long>(calib_batches));
  else
    std::printf("opencv_fp32, opencv_int8: skipped: %s\n",
                !sgs::deploy::onnx_available() ? sgs::deploy::missing_onnx("bench_deploy").c_str()
                                               : sgs::deploy::missing_opencv_dnn("bench_deploy").c_str());
  std::printf("\n%-10s %-8s %6s %-18s %11s %11s %8s %10s %s\n", "model", "strategy", "batch", "runtime",
              "latency_ms", "images_s", "x_plain", "max|d|", "check");

  std::vector<std::string> summary;
  int flagged = 0;
  for (const auto& model : models) {
    std::vector<Deployed> all;
    for (const auto& s : strategies) {
      std::fprintf(stderr, "[%.0f s] %s %s: building%s\n", seconds_since(begin), model.c_str(), s.c_str(),
                   opencv ? ", exporting, quantizing" : "");
      all.push_back(deploy(model, s, width, shape, dyrep_growths, calib_batches, opencv));
      if (!all.back().note.empty())
        std::printf("%s %s: %s rows left out: %s\n", model.c_str(), s.c_str(),
                    all.back().fp32 ? "opencv_int8" : "opencv_fp32, opencv_int8", all.back().note.c_str());
    }
    // [batch][strategy][runtime]
    std::map<int64_t, std::map<std::string, std::map<std::string, Row>>> rows;
    for (int64_t batch : batches) {
      torch::NoGradGuard no_grad;
      torch::manual_seed(2);
      const auto x = torch::randn({batch, shape.channels, shape.height, shape.width});
      // Warm-up (the runtimes set up for this batch size), and the logits compared.
      std::fprintf(stderr, "[%.0f s] %s batch %lld: warm-up\n", seconds_since(begin), model.c_str(),
                   static_cast<long long>(batch));
      for (auto& d : all) {
        std::map<std::string, torch::Tensor> logits;
        for (const auto& r : kRuntimes) {
          if (!d.has(r)) continue;
          for (int i = 0; i < std::max(1, warmup); ++i) logits[r] = d.forward(r, x);
        }
        const auto& reference = logits["fused_libtorch"];
        for (const auto& [r, y] : logits)
          rows[batch][d.strategy][r].max_diff = (y - reference).abs().max().item<double>();
        rows[batch][d.strategy]["fused_libtorch"].max_logit = reference.abs().max().item<double>();
      }
      for (int round = 1; round <= rounds; ++round) {
        std::fprintf(stderr, "[%.0f s] %s batch %lld: round %d/%d\n", seconds_since(begin), model.c_str(),
                     static_cast<long long>(batch), round, rounds);
        for (auto& d : all)
          for (const auto& r : kRuntimes) {
            if (!d.has(r)) continue;
            auto& row = rows[batch][d.strategy][r];
            const double t = measure(d, r, x, iters, min_time);
            row.latency_s = std::isnan(row.latency_s) ? t : std::min(row.latency_s, t);
          }
      }
      const auto plain = rows[batch].count("none") ? rows[batch]["none"]["fused_libtorch"].latency_s : NAN;
      for (const auto& d : all)
        for (const auto& r : kRuntimes) {
          if (!d.has(r)) continue;
          const auto& row = rows[batch][d.strategy][r];
          std::string check = "ok";
          if (r == "fused_libtorch") check = "ref, max|logit| " + fmt("%.3g", row.max_logit);
          else if (r == "opencv_int8") check = "(int8)";
          else if (!(row.max_diff <= kTolerance)) {
            check = "FLAG > 1e-3";
            ++flagged;
          }
          std::printf("%-10s %-8s %6lld %-18s %11s %11s %8s %10s %s\n", model.c_str(), d.strategy.c_str(),
                      static_cast<long long>(batch), r.c_str(), fmt("%.3f", 1e3 * row.latency_s).c_str(),
                      fmt("%.1f", static_cast<double>(batch) / row.latency_s).c_str(),
                      fmt("%.2f", row.latency_s / plain).c_str(), fmt("%.1e", row.max_diff).c_str(), check.c_str());
        }
      std::fflush(stdout);
      // The summary line of this model and batch.
      auto latency = [&](const std::string& s, const std::string& r) -> double {
        auto& by_strategy = rows[batch];
        if (!by_strategy.count(s) || !by_strategy[s].count(r)) return NAN;
        return by_strategy[s][r].latency_s;
      };
      std::string line = model + " batch " + std::to_string(batch) + ": fused / plain:";
      for (const auto& d : all)
        if (d.strategy != "none") line += " " + d.strategy + " " + fmt("%.2f", latency(d.strategy, "fused_libtorch") / plain);
      line += "; branched dbb / fused: " + fmt("%.2f", latency("dbb", "branched_libtorch") / latency("dbb", "fused_libtorch"));
      line += "; opencv_fp32 / fused_libtorch (none): " +
              fmt("%.2f", latency("none", "opencv_fp32") / latency("none", "fused_libtorch"));
      line += "; opencv_int8 / opencv_fp32 (none): " +
              fmt("%.2f", latency("none", "opencv_int8") / latency("none", "opencv_fp32"));
      summary.push_back(line);
    }
  }
  std::printf("\n");
  for (const auto& line : summary) std::printf("%s\n", line.c_str());
  std::printf("equivalence: %s\n", flagged == 0 ? "every fp32 form within 1e-3 of fused_libtorch"
                                                : (std::to_string(flagged) + " fp32 row(s) beyond 1e-3 of "
                                                                             "fused_libtorch (FLAG above)")
                                                      .c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_deploy: %s\n", e.what());
  return 1;
}
