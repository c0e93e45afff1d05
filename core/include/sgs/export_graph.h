// A model's inference graph in standard operators (ONNX's names and
// attributes), written by the model (Model::export_graph, mirroring its
// forward in eval mode) and serialised by `sgs export`. BatchNorms that
// follow a conv are folded into it; every conv is written as its fused
// kernel and bias (ConvBlock::fused), so a branched model exports as its
// deployed form.
#pragma once

#include <sgs/conv.h>
#include <sgs/norm.h>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace sgs {

// A model without Model::export_graph (its name is the caller's to add).
struct NotExportable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ExportGraph {
 public:
  using Value = std::string;  // the name of a tensor of the graph
  using Attribute = std::variant<int64_t, float, std::vector<int64_t>>;
  struct Node {
    std::string op;  // ONNX operator type ("Conv", "Relu", ...)
    std::vector<Value> inputs;
    Value output;
    std::vector<std::pair<std::string, Attribute>> attributes;
    std::string layer;  // Conv: the block's path; Gemm: the linear layer's name; else empty
  };

  // The graph's input, float32 [N, C, H, W].
  Value input() const { return "input"; }
  // A conv (its fused kernel and bias) and, when given, the BatchNorm after it folded in.
  Value conv(ConvBlock& conv, const Value& x, const BatchNorm2d& norm_after = BatchNorm2d(nullptr));
  Value unit(const ConvNorm& unit, const Value& x) { return conv(*unit.conv, x, unit.norm); }
  // The modules of `seq` in order: convs (with a BatchNorm right after them
  // folded in), BatchNorms, ReLUs, max-pools. Throws NotExportable for others.
  Value sequential(const torch::nn::Sequential& seq, Value x);
  Value batch_norm(const BatchNorm2d& norm, const Value& x);
  Value relu(const Value& x);
  Value max_pool(const Value& x, int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode);
  Value global_average_pool(const Value& x);
  Value flatten(const Value& x);  // [N, C, 1, 1] -> [N, C]
  // `name`: the layer's name in the model ("classifier", "fc"), for per-layer reports.
  Value linear(torch::nn::LinearImpl& linear, const Value& x, const std::string& name = "linear");
  Value add(const Value& a, const Value& b);
  // Names the graph's output ("logits").
  void output(const Value& x);

  const std::vector<Node>& nodes() const { return nodes_; }
  // Weights, float32, contiguous, on the CPU, in the order first used.
  const std::vector<std::pair<std::string, torch::Tensor>>& initializers() const { return initializers_; }
  const Value& output_name() const { return output_; }

 private:
  Value node(std::string op, std::vector<Value> inputs, std::vector<std::pair<std::string, Attribute>> attributes = {});
  Value constant(const std::string& hint, const torch::Tensor& value);
  std::vector<Node> nodes_;
  std::vector<std::pair<std::string, torch::Tensor>> initializers_;
  Value output_;
};

}  // namespace sgs
