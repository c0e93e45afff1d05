#include <sgs/export_graph.h>
#include <sgs/model.h>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>
#include <torch/torch.h>

#include <tuple>

namespace sgs {

namespace {

// Folding needs the running statistics (sgs/norm.h's fold_bn).
void require_statistics(const BatchNorm2d& bn) {
  if (!bn->running_mean.defined()) throw NotExportable("a BatchNorm without running statistics cannot be folded");
}

}  // namespace

ExportGraph::Value ExportGraph::constant(const std::string& hint, const torch::Tensor& value) {
  const std::string name = hint + "_" + std::to_string(initializers_.size());
  initializers_.emplace_back(name, value.detach().to(torch::kCPU, torch::kFloat32).contiguous());
  return name;
}

ExportGraph::Value ExportGraph::node(std::string op, std::vector<Value> inputs,
                                     std::vector<std::pair<std::string, Attribute>> attributes) {
  Node n{std::move(op), std::move(inputs), "t" + std::to_string(nodes_.size()), std::move(attributes)};
  nodes_.push_back(std::move(n));
  return nodes_.back().output;
}

ExportGraph::Value ExportGraph::conv(ConvBlock& block, const Value& x, const BatchNorm2d& norm_after) {
  torch::NoGradGuard no_grad;
  auto [w, b] = block.fused();
  auto weight = w.detach().to(torch::kFloat64);
  auto bias = b.defined() ? b.detach().to(torch::kFloat64) : torch::zeros({weight.size(0)}, torch::kFloat64);
  if (norm_after) {
    require_statistics(norm_after);
    std::tie(weight, bias) = fold_bn(weight, bias, norm_after);
  }
  const auto& s = block.spec();
  const std::string base = block.path().empty() ? "conv" : block.path();
  const Value out = node("Conv", {x, constant(base + ".weight", weight), constant(base + ".bias", bias)},
              {{"kernel_shape", std::vector<int64_t>{s.kernel[0], s.kernel[1]}},
               {"strides", std::vector<int64_t>{s.stride[0], s.stride[1]}},
               {"pads", std::vector<int64_t>{s.padding[0], s.padding[1], s.padding[0], s.padding[1]}},
               {"dilations", std::vector<int64_t>{s.dilation[0], s.dilation[1]}},
               {"group", s.groups}});
  nodes_.back().layer = base;
  return out;
}

ExportGraph::Value ExportGraph::batch_norm(const BatchNorm2d& norm, const Value& x) {
  // Alone (not after a conv): y = t * x + shift, as BatchNormalization with mean 0, var 1 - eps.
  require_statistics(norm);
  auto [t, shift] = bn_scale_shift(norm);
  const float eps = 1e-5f;
  return node("BatchNormalization",
              {x, constant("bn.scale", t), constant("bn.shift", shift), constant("bn.mean", torch::zeros_like(t)),
               constant("bn.var", torch::full_like(t, 1.0 - eps))},
              {{"epsilon", eps}});
}

ExportGraph::Value ExportGraph::sequential(const torch::nn::Sequential& seq, Value x) {
  const auto children = seq->children();
  for (size_t i = 0; i < children.size(); ++i) {
    auto* m = children[i].get();
    if (auto* c = dynamic_cast<ConvBlock*>(m)) {
      const BatchNorm2d bn(i + 1 < children.size() ? std::dynamic_pointer_cast<BatchNorm2dImpl>(children[i + 1])
                                                   : nullptr);
      x = conv(*c, x, bn);
      if (bn) ++i;
    } else if (auto bn = std::dynamic_pointer_cast<BatchNorm2dImpl>(children[i])) {
      x = batch_norm(BatchNorm2d(bn), x);
    } else if (dynamic_cast<torch::nn::ReLUImpl*>(m) != nullptr) {
      x = relu(x);
    } else if (auto* p = dynamic_cast<torch::nn::MaxPool2dImpl*>(m)) {
      const auto& o = p->options;
      const auto k = (*o.kernel_size())[0], st = (*o.stride())[0], pad = (*o.padding())[0];
      if ((*o.kernel_size())[1] != k || (*o.stride())[1] != st || (*o.padding())[1] != pad || (*o.dilation())[0] != 1)
        throw NotExportable("a max-pool with unequal sides or dilation is not exported");
      x = max_pool(x, k, st, pad, o.ceil_mode());
    } else {
      throw NotExportable("module '" + m->name() + "' in a Sequential has no export");
    }
  }
  return x;
}

ExportGraph::Value ExportGraph::relu(const Value& x) { return node("Relu", {x}); }

ExportGraph::Value ExportGraph::max_pool(const Value& x, int64_t kernel, int64_t stride, int64_t padding,
                                         bool ceil_mode) {
  // Ceil mode with kernel = stride and no padding equals floor mode with
  // stride - 1 more padding at the end, for every input size (also one
  // smaller than the kernel, where OpenCV 4.6's ceil mode fails): written so.
  int64_t end = padding;
  if (ceil_mode && kernel == stride && padding == 0) {
    end = stride - 1;
    ceil_mode = false;
  }
  return node("MaxPool", {x},
              {{"kernel_shape", std::vector<int64_t>{kernel, kernel}},
               {"strides", std::vector<int64_t>{stride, stride}},
               {"pads", std::vector<int64_t>{padding, padding, end, end}},
               {"ceil_mode", int64_t{ceil_mode ? 1 : 0}}});
}

ExportGraph::Value ExportGraph::global_average_pool(const Value& x) { return node("GlobalAveragePool", {x}); }

ExportGraph::Value ExportGraph::flatten(const Value& x) { return node("Flatten", {x}, {{"axis", int64_t{1}}}); }

ExportGraph::Value ExportGraph::linear(torch::nn::LinearImpl& linear, const Value& x, const std::string& name) {
  auto bias = linear.bias.defined() ? linear.bias : torch::zeros({linear.weight.size(0)});
  const Value out = node("Gemm", {x, constant(name + ".weight", linear.weight), constant(name + ".bias", bias)},
                         {{"transB", int64_t{1}}});
  nodes_.back().layer = name;
  return out;
}

ExportGraph::Value ExportGraph::add(const Value& a, const Value& b) { return node("Add", {a, b}); }

void ExportGraph::output(const Value& x) {
  if (x == input()) throw NotExportable("the graph has no operator");
  for (auto& n : nodes_) {
    if (n.output == x) n.output = "logits";
    for (auto& in : n.inputs)
      if (in == x) in = "logits";
  }
  output_ = "logits";
}

}  // namespace sgs

namespace sgs {

std::string Model::export_graph(ExportGraph&, const std::string&) {
  throw NotExportable("it does not write its graph (Model::export_graph)");
}

}  // namespace sgs
