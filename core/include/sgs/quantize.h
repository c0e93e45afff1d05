// Post-training int8 quantization of a deployed model, simulated in LibTorch
// with fake quantization (sgs quantize; docs/guide.md, "INT8"). It works on
// the model's export graph (sgs/export_graph.h: BatchNorms folded, structural
// blocks fused), the graph that `sgs export` writes, as deployment engines do:
//   weights      symmetric int8 ([-127, 127]), a scale per output channel or
//                one per tensor, from the weights' own absolute maximum;
//   activations  int8 per tensor at the input of every Conv and Gemm,
//                symmetric or asymmetric (a zero point), the range from
//                calibration batches: min/max, a percentile, or the range
//                that minimises the quantization's mean squared error;
//   biases and the operators between (Relu, pools, Add) stay float32 (an
//                engine's int32 bias and requantization round less than the
//                int8 inputs around them).
#pragma once

#include <sgs/export_graph.h>
#include <sgs/run_file.h>

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sgs {

struct RunModel;

struct Int8Options {
  std::string weights = "per-channel";    // per-channel | per-tensor
  std::string activations = "symmetric";  // symmetric | asymmetric
  std::string calibration = "minmax";     // minmax | percentile | mse
  double percentile = 99.99;              // calibration "percentile": of |x| (symmetric), of x at both ends
  int64_t calib_batches = 32;             // batches of un-augmented training images
  // "per-channel_symmetric_minmax": the record's name under /deploy/int8.
  std::string key() const;
  // Throws ConfigError naming the offending option (`prefix` first: "--weights", "deploy.weights").
  void check(const std::string& prefix = "") const;
};

// One quantized operator (a Conv or the Gemm).
struct Int8Layer {
  std::string name;  // the layer's name in the model ("features.0", "classifier")
  std::string op;    // "Conv" or "Gemm"
  int64_t index = 0;
  double weight_sqnr_db = 0;      // 10 log10(|w|^2 / |w - q(w)|^2)
  double activation_sqnr_db = 0;  // of the input's quantization, on the evaluation images
  double input_lo = 0, input_hi = 0;  // the input's calibrated range
  double input_scale = 0;
  int64_t input_zero_point = 0;
  torch::Tensor weight_min, weight_max;  // float64 [out_channels]: per output channel
};

struct Int8Result {
  Int8Options options;
  std::string split;  // what was evaluated: "test" or "val"
  int64_t images = 0, calib_images = 0;
  double fp32_acc = 0, int8_acc = 0;  // fractions
  double argmax_agreement = 0;        // int8 vs fp32
  double logit_sqnr_db = 0;
  std::vector<Int8Layer> layers;  // in graph order
  // As written under /deploy/int8/<key> (docs/run_file.md).
  DeployRecord record() const;
};

// An export graph's operators run in LibTorch (float32; the tensors of its
// Conv and Gemm inputs optionally fake-quantized).
class GraphRunner {
 public:
  explicit GraphRunner(const ExportGraph& graph);
  // `visit` (optional) sees the input of every Conv and Gemm, by the node's
  // position among them, and may return a replacement (undefined: keep it).
  using Visit = std::function<torch::Tensor(size_t layer, const torch::Tensor& input)>;
  // `weights` (optional): replacements of the Conv and Gemm weights, by position.
  torch::Tensor forward(const torch::Tensor& input, const Visit& visit = nullptr,
                        const std::vector<torch::Tensor>* weights = nullptr) const;
  // The Conv and Gemm nodes, in order.
  const std::vector<const ExportGraph::Node*>& layers() const { return layers_; }
  const torch::Tensor& weight(size_t layer) const { return weights_[layer]; }

 private:
  const ExportGraph& graph_;
  std::map<std::string, torch::Tensor> constants_;
  std::vector<const ExportGraph::Node*> layers_;
  std::vector<torch::Tensor> weights_;
  std::vector<size_t> last_use_;  // per node: the last node that reads its output
};

// Calibrates on `calibration` (batches of images) and evaluates fp32 and int8
// side by side on the batches `evaluation` yields (nullopt at the end).
using BatchSource = std::function<std::optional<std::pair<torch::Tensor, torch::Tensor>>()>;
Int8Result quantize_graph(const ExportGraph& graph, const std::vector<torch::Tensor>& calibration,
                          const BatchSource& evaluation, const Int8Options& options);

// The first `batches` batches of a run's training split, un-augmented and in
// order (the run's batch size): what quantization calibrates on.
std::vector<torch::Tensor> calibration_images(const RunModel& run, int64_t batches, int64_t workers = 1);

// What quantizing a finished run needs: its fused model's export graph, its
// calibration images, and what it is evaluated on (sgs/fuse.h: the test
// split, else the validation split). Throws NotExportable for a model
// without export_graph.
struct Int8Inputs {
  ExportGraph graph;
  std::vector<torch::Tensor> calibration;
  std::string split;  // "test" or "val"
  BatchSource evaluation;  // from the start at every call of restart()
  std::function<void()> restart;
};
Int8Inputs int8_inputs(const RunModel& run, int64_t calib_batches, int64_t workers = 1);

// int8_inputs + quantize_graph.
Int8Result quantize_run(const RunModel& run, const Int8Options& options, int64_t workers = 1);

}  // namespace sgs
