#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/fuse.h>
#include <sgs/loader.h>
#include <sgs/quantize.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace sgs {

std::string Int8Options::key() const { return int8_key(weights, activations, calibration); }

void Int8Options::check(const std::string& prefix) const {
  auto one_of = [&](const std::string& name, const std::string& value, std::initializer_list<const char*> allowed) {
    std::string list;
    for (const char* a : allowed) {
      if (value == a) return;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    throw ConfigError(prefix + name + ": expected one of " + list + ", got '" + value + "'");
  };
  one_of("weights", weights, {"per-channel", "per-tensor"});
  one_of("activations", activations, {"symmetric", "asymmetric"});
  one_of("calibration", calibration, {"minmax", "percentile", "mse"});
  if (!(percentile > 50 && percentile <= 100))
    throw ConfigError(prefix + "percentile: expected a number in (50, 100], got " + std::to_string(percentile));
  if (calib_batches < 1)
    throw ConfigError(prefix + "calib_batches: expected >= 1, got " + std::to_string(calib_batches));
}

namespace {

const ExportGraph::Attribute* attribute(const ExportGraph::Node& n, const std::string& name) {
  for (const auto& [key, value] : n.attributes)
    if (key == name) return &value;
  return nullptr;
}

std::vector<int64_t> ints(const ExportGraph::Node& n, const std::string& name, std::vector<int64_t> fallback) {
  const auto* a = attribute(n, name);
  return a == nullptr ? fallback : std::get<std::vector<int64_t>>(*a);
}

int64_t one_int(const ExportGraph::Node& n, const std::string& name, int64_t fallback) {
  const auto* a = attribute(n, name);
  return a == nullptr ? fallback : std::get<int64_t>(*a);
}

// ONNX pads [top, left, bottom, right]: symmetric ones as the op's padding,
// others by padding first with `fill`.
torch::Tensor pad_unequal(const torch::Tensor& x, const std::vector<int64_t>& pads, double fill,
                          std::vector<int64_t>& symmetric) {
  if (pads[0] == pads[2] && pads[1] == pads[3]) {
    symmetric = {pads[0], pads[1]};
    return x;
  }
  symmetric = {0, 0};
  return torch::constant_pad_nd(x, {pads[1], pads[3], pads[0], pads[2]}, fill);
}

}  // namespace

GraphRunner::GraphRunner(const ExportGraph& graph) : graph_(graph) {
  for (const auto& [name, value] : graph.initializers()) constants_[name] = value;
  const auto& nodes = graph.nodes();
  std::map<std::string, size_t> producer;
  last_use_.assign(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& in : nodes[i].inputs) {
      auto p = producer.find(in);
      if (p != producer.end()) last_use_[p->second] = i;
    }
    producer[nodes[i].output] = i;
    if (nodes[i].op == "Conv" || nodes[i].op == "Gemm") {
      layers_.push_back(&nodes[i]);
      weights_.push_back(constants_.at(nodes[i].inputs[1]));
    }
  }
}

torch::Tensor GraphRunner::forward(const torch::Tensor& input, const Visit& visit,
                                   const std::vector<torch::Tensor>* weights) const {
  torch::NoGradGuard no_grad;
  const auto& nodes = graph_.nodes();
  std::vector<torch::Tensor> out(nodes.size());
  std::map<std::string, size_t> index;
  auto value = [&](const std::string& name) -> torch::Tensor {
    if (name == graph_.input()) return input;
    auto c = constants_.find(name);
    if (c != constants_.end()) return c->second;
    return out[index.at(name)];
  };
  size_t layer = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    torch::Tensor x = value(n.inputs[0]), y;
    if (n.op == "Conv" || n.op == "Gemm") {
      if (visit) {
        auto replaced = visit(layer, x);
        if (replaced.defined()) x = replaced;
      }
      const auto w = weights != nullptr ? (*weights)[layer] : value(n.inputs[1]);
      const auto b = value(n.inputs[2]);
      ++layer;
      if (n.op == "Gemm") {
        y = torch::nn::functional::linear(x, w, b);
      } else {
        std::vector<int64_t> padding;
        x = pad_unequal(x, ints(n, "pads", {0, 0, 0, 0}), 0.0, padding);
        y = torch::conv2d(x, w, b, ints(n, "strides", {1, 1}), padding, ints(n, "dilations", {1, 1}),
                          one_int(n, "group", 1));
      }
    } else if (n.op == "Relu") {
      y = torch::relu(x);
    } else if (n.op == "MaxPool") {
      std::vector<int64_t> padding;
      x = pad_unequal(x, ints(n, "pads", {0, 0, 0, 0}), -std::numeric_limits<double>::infinity(), padding);
      y = torch::max_pool2d(x, ints(n, "kernel_shape", {}), ints(n, "strides", {1, 1}), padding, {1, 1},
                            one_int(n, "ceil_mode", 0) != 0);
    } else if (n.op == "GlobalAveragePool") {
      y = x.mean({2, 3}, /*keepdim=*/true);
    } else if (n.op == "Flatten") {
      y = x.flatten(1);
    } else if (n.op == "Add") {
      y = x + value(n.inputs[1]);
    } else if (n.op == "BatchNormalization") {
      const auto* eps = attribute(n, "epsilon");
      y = torch::batch_norm(x, value(n.inputs[1]), value(n.inputs[2]), value(n.inputs[3]), value(n.inputs[4]),
                            /*training=*/false, 0.0, eps == nullptr ? 1e-5 : std::get<float>(*eps), false);
    } else {
      throw std::runtime_error("graph runner: operator " + n.op + " is not supported");
    }
    out[i] = y;
    index[n.output] = i;
    for (size_t j = 0; j < i; ++j)  // outputs no later node reads
      if (out[j].defined() && last_use_[j] <= i && nodes[j].output != graph_.output_name()) out[j] = torch::Tensor();
  }
  return value(graph_.output_name());
}

namespace {

constexpr int64_t kBins = 2048;
constexpr int64_t kCandidates = 128;

// The range an input is quantized to, and its scale and zero point.
struct Range {
  double lo = 0, hi = 0, scale = 1;
  int64_t zero_point = 0, qmin = -127, qmax = 127;
};

Range make_range(double lo, double hi, bool symmetric) {
  Range r;
  if (symmetric) {
    const double t = std::max(std::abs(lo), std::abs(hi));
    r.lo = -t;
    r.hi = t;
    r.scale = t > 0 ? t / 127.0 : 1.0;
    return r;
  }
  r.lo = std::min(lo, 0.0);  // the range holds 0 (padding, ReLU's zeros) exactly
  r.hi = std::max(hi, 0.0);
  r.scale = r.hi > r.lo ? (r.hi - r.lo) / 255.0 : 1.0;
  r.qmin = -128;
  r.qmax = 127;
  r.zero_point = static_cast<int64_t>(std::llround(-128.0 - r.lo / r.scale));
  return r;
}

torch::Tensor fake_quantize(const torch::Tensor& x, const Range& r) {
  return torch::fake_quantize_per_tensor_affine(x, r.scale, r.zero_point, r.qmin, r.qmax);
}

// Symmetric int8 weights: a scale per output channel, or one for the tensor.
torch::Tensor quantize_weight(const torch::Tensor& w, bool per_channel) {
  if (!per_channel) {
    const double m = w.abs().max().item<double>();
    return torch::fake_quantize_per_tensor_affine(w, m > 0 ? m / 127.0 : 1.0, 0, -127, 127);
  }
  auto m = w.abs().flatten(1).amax(1);
  auto scale = torch::where(m > 0, m / 127.0, torch::ones_like(m)).to(torch::kFloat32);
  return torch::fake_quantize_per_channel_affine(w, scale, torch::zeros_like(scale, torch::kInt32), 0, -127, 127);
}

double sqnr_db(double signal, double noise) {
  if (noise <= 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

// What calibration gathers about one input.
struct Observed {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  torch::Tensor histogram;  // float64 [kBins] over [lo, hi] (asymmetric) or [0, max |x|] (symmetric)
};

// Bin centres and counts -> the quantization error of each candidate range
// [c_lo, c_hi]: uniform rounding noise (scale^2 / 12) inside, the clipping
// error outside.
torch::Tensor range_errors(const torch::Tensor& centres, const torch::Tensor& counts, const torch::Tensor& c_lo,
                           const torch::Tensor& c_hi, double levels) {
  auto c = centres.unsqueeze(0), n = counts.unsqueeze(0), lo = c_lo.unsqueeze(1), hi = c_hi.unsqueeze(1);
  auto scale = (hi - lo) / levels;
  auto inside = (c >= lo) & (c <= hi);
  auto clip = torch::where(c < lo, lo - c, c - hi);
  auto err = torch::where(inside, (scale * scale / 12.0).expand({lo.size(0), c.size(1)}), clip * clip);
  return (n * err).sum(1);
}

Range calibrated(const Observed& o, const Int8Options& opt) {
  const bool symmetric = opt.activations == "symmetric";
  if (opt.calibration == "minmax" || !o.histogram.defined()) return make_range(o.lo, o.hi, symmetric);
  const double from = symmetric ? 0.0 : o.lo;
  const double to = symmetric ? std::max(std::abs(o.lo), std::abs(o.hi)) : o.hi;
  if (!(to > from)) return make_range(o.lo, o.hi, symmetric);
  const double width = (to - from) / kBins;
  auto counts = o.histogram;
  auto centres = torch::arange(kBins, torch::kFloat64) * width + (from + width / 2);
  const double total = counts.sum().item<double>();
  if (opt.calibration == "percentile") {
    auto cdf = counts.cumsum(0) / total;
    auto at = [&](double q) {  // the upper edge of the first bin whose cumulative share reaches q
      const int64_t i = std::min<int64_t>(kBins - 1, (cdf < q).sum().item<int64_t>());
      return from + width * static_cast<double>(i + 1);
    };
    const double p = opt.percentile / 100.0;
    if (symmetric) return make_range(-at(p), at(p), true);
    return make_range(std::min(at(1.0 - p) - width, 0.0), at(p), false);
  }
  // mse: candidates shrink the observed range towards 0 (128 steps).
  auto alpha = torch::arange(1, kCandidates + 1, torch::kFloat64) / static_cast<double>(kCandidates);
  torch::Tensor c_lo, c_hi;
  if (symmetric) {  // a histogram of |x|: [0, t] with 127 levels stands for [-t, t] with 254
    c_hi = alpha * to;
    c_lo = torch::zeros_like(c_hi);
  } else {
    c_lo = alpha * std::min(from, 0.0);
    c_hi = alpha * std::max(to, 0.0);
  }
  auto errors = range_errors(centres, counts, c_lo, c_hi, symmetric ? 127.0 : 255.0);
  const int64_t best = errors.argmin().item<int64_t>();
  if (symmetric) return make_range(-c_hi[best].item<double>(), c_hi[best].item<double>(), true);
  return make_range(c_lo[best].item<double>(), c_hi[best].item<double>(), false);
}

}  // namespace

Int8Result quantize_graph(const ExportGraph& graph, const std::vector<torch::Tensor>& calibration,
                          const BatchSource& evaluation, const Int8Options& options) {
  options.check();
  if (calibration.empty()) throw DataError("int8 calibration: no calibration images");
  GraphRunner runner(graph);
  const size_t n = runner.layers().size();
  const bool symmetric = options.activations == "symmetric";
  Int8Result result;
  result.options = options;

  // Calibration: min and max of every quantized input, then (percentile, mse) its histogram.
  std::vector<Observed> observed(n);
  for (const auto& images : calibration) {
    runner.forward(images, [&](size_t l, const torch::Tensor& x) {
      auto [lo, hi] = torch::aminmax(x);
      observed[l].lo = std::min(observed[l].lo, lo.item<double>());
      observed[l].hi = std::max(observed[l].hi, hi.item<double>());
      return torch::Tensor();
    });
    result.calib_images += images.size(0);
  }
  if (options.calibration != "minmax") {
    for (auto& o : observed) o.histogram = torch::zeros({kBins}, torch::kFloat64);
    for (const auto& images : calibration)
      runner.forward(images, [&](size_t l, const torch::Tensor& x) {
        auto& o = observed[l];
        const double from = symmetric ? 0.0 : o.lo;
        const double to = symmetric ? std::max(std::abs(o.lo), std::abs(o.hi)) : o.hi;
        if (to > from)
          o.histogram += torch::histc((symmetric ? x.abs() : x).to(torch::kFloat32), kBins, from, to)
                             .to(torch::kFloat64);
        return torch::Tensor();
      });
  }
  std::vector<Range> ranges;
  for (const auto& o : observed) ranges.push_back(calibrated(o, options));

  // Weights.
  std::vector<torch::Tensor> qweights;
  for (size_t l = 0; l < n; ++l) {
    const auto& w = runner.weight(l);
    auto q = quantize_weight(w, options.weights == "per-channel");
    qweights.push_back(q);
    Int8Layer layer;
    layer.name = runner.layers()[l]->layer.empty() ? runner.layers()[l]->output : runner.layers()[l]->layer;
    layer.op = runner.layers()[l]->op;
    layer.index = static_cast<int64_t>(l);
    layer.weight_sqnr_db = sqnr_db(w.to(torch::kFloat64).square().sum().item<double>(),
                                   (w - q).to(torch::kFloat64).square().sum().item<double>());
    auto per_channel = w.to(torch::kFloat64).flatten(1);
    layer.weight_min = std::get<0>(per_channel.min(1));
    layer.weight_max = std::get<0>(per_channel.max(1));
    layer.input_lo = ranges[l].lo;
    layer.input_hi = ranges[l].hi;
    layer.input_scale = ranges[l].scale;
    layer.input_zero_point = ranges[l].zero_point;
    result.layers.push_back(std::move(layer));
  }

  // Evaluation: fp32 and int8 on the same images.
  std::vector<double> signal(n, 0.0), noise(n, 0.0);
  double logit_signal = 0, logit_noise = 0;
  int64_t fp32_correct = 0, int8_correct = 0, agree = 0;
  while (auto batch = evaluation()) {
    const auto& [images, labels] = *batch;
    auto fp32 = runner.forward(images, [&](size_t l, const torch::Tensor& x) {
      auto x64 = x.to(torch::kFloat64);
      signal[l] += x64.square().sum().item<double>();
      noise[l] += (x64 - fake_quantize(x, ranges[l]).to(torch::kFloat64)).square().sum().item<double>();
      return torch::Tensor();
    });
    auto int8 = runner.forward(
        images, [&](size_t l, const torch::Tensor& x) { return fake_quantize(x, ranges[l]); }, &qweights);
    auto y = labels.to(fp32.device());
    fp32_correct += fp32.argmax(1).eq(y).sum().item<int64_t>();
    int8_correct += int8.argmax(1).eq(y).sum().item<int64_t>();
    agree += fp32.argmax(1).eq(int8.argmax(1)).sum().item<int64_t>();
    logit_signal += fp32.to(torch::kFloat64).square().sum().item<double>();
    logit_noise += (fp32 - int8).to(torch::kFloat64).square().sum().item<double>();
    result.images += images.size(0);
  }
  if (result.images == 0) throw DataError("int8 evaluation: no images to evaluate on");
  const auto images = static_cast<double>(result.images);
  result.fp32_acc = static_cast<double>(fp32_correct) / images;
  result.int8_acc = static_cast<double>(int8_correct) / images;
  result.argmax_agreement = static_cast<double>(agree) / images;
  result.logit_sqnr_db = sqnr_db(logit_signal, logit_noise);
  for (size_t l = 0; l < n; ++l) result.layers[l].activation_sqnr_db = sqnr_db(signal[l], noise[l]);
  return result;
}

DeployRecord Int8Result::record() const {
  DeployRecord r;
  r.text = {{"weights", options.weights},
            {"activations", options.activations},
            {"calibration", options.calibration},
            {"split", split}};
  r.values = {{"calib_batches", static_cast<double>(options.calib_batches)},
              {"calib_images", static_cast<double>(calib_images)},
              {"images", static_cast<double>(images)},
              {"fp32_acc", fp32_acc},
              {"int8_acc", int8_acc},
              {"int8_drop", fp32_acc - int8_acc},
              {"argmax_agreement", argmax_agreement},
              {"logit_sqnr_db", logit_sqnr_db}};
  if (options.calibration == "percentile") r.values["percentile"] = options.percentile;
  for (const auto& l : layers) {
    DeployLayer d;
    d.name = l.name;
    d.index = l.index;
    d.text = {{"op", l.op}};
    d.values = {{"weight_sqnr_db", l.weight_sqnr_db},
                {"activation_sqnr_db", l.activation_sqnr_db},
                {"input_lo", l.input_lo},
                {"input_hi", l.input_hi},
                {"input_scale", l.input_scale},
                {"input_zero_point", static_cast<double>(l.input_zero_point)}};
    for (const auto& [name, t] : {std::pair<const char*, const torch::Tensor&>{"weight_min", l.weight_min},
                                  std::pair<const char*, const torch::Tensor&>{"weight_max", l.weight_max}}) {
      auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
      d.columns[name] = RunColumn{{c.size(0)}, std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel())};
    }
    r.layers.push_back(std::move(d));
  }
  return r;
}

std::vector<torch::Tensor> calibration_images(const RunModel& run, int64_t batches, int64_t workers) {
  auto split = run.dataset->train();
  if (!split) throw DataError("int8 calibration: the run's dataset has no training split");
  const RunSettings settings = RunSettings::of(run.config);
  LoaderOptions lo;
  lo.batch_size = settings.batch_size;
  lo.shuffle = lo.augment = false;
  lo.workers = workers;
  lo.seed = static_cast<uint64_t>(settings.seed);
  Loader loader(split, lo);
  loader.start_epoch(0);
  std::vector<torch::Tensor> out;
  while (static_cast<int64_t>(out.size()) < batches) {
    auto batch = loader.next();
    if (!batch) break;
    out.push_back(batch->images.contiguous());
  }
  return out;
}

Int8Inputs int8_inputs(const RunModel& run, int64_t calib_batches, int64_t workers) {
  Int8Inputs in;
  auto fused = fuse_model(run);
  fused->eval();
  in.graph.output(fused->export_graph(in.graph, in.graph.input()));
  in.calibration = calibration_images(run, calib_batches, workers);
  const auto eval = evaluation_split(run, workers, "sgs quantize");
  in.split = eval.name;
  auto loader = std::make_shared<Loader>(eval.split, eval.loader);
  in.restart = [loader] { loader->start_epoch(0); };
  in.evaluation = [loader]() -> std::optional<std::pair<torch::Tensor, torch::Tensor>> {
    auto b = loader->next();
    if (!b) return std::nullopt;
    return std::make_pair(b->images.contiguous(), b->labels);
  };
  return in;
}

Int8Result quantize_run(const RunModel& run, const Int8Options& options, int64_t workers) {
  options.check();
  auto in = int8_inputs(run, options.calib_batches, workers);
  in.restart();
  auto result = quantize_graph(in.graph, in.calibration, in.evaluation, options);
  result.split = in.split;
  return result;
}

}  // namespace sgs
