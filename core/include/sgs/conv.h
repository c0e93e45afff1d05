// The convolution seam. Every model builds each convolution, with the
// BatchNorm that follows it, through a ConvFactory (conv_bn): the strategy
// decides what replaces the pair. The block it returns knows its module path
// and geometry, can
// hand its zero-padded input to a sink (LibTorch modules have no forward
// hooks; the dependence measures need these inputs), exposes the weight that
// gradient scaling acts on, and returns its fused KxK kernel and bias.
// Models never know which strategy runs.
#pragma once

#include <sgs/norm.h>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sgs {

struct ConvSpec {
  int64_t in_channels = 0, out_channels = 0;
  std::array<int64_t, 2> kernel{3, 3};
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool bias = false;
  // How the weight is drawn: PyTorch's Conv2d default (kaiming_uniform, a =
  // sqrt(5)) or kaiming_normal with fan_out and ReLU gain (torchvision's
  // VGG/ResNet). Structural blocks draw their base weight the same way first.
  enum class Init { PytorchDefault, KaimingFanOut } init = Init::KaimingFanOut;
  // Where the model uses it: the main path, or a residual block's projection
  // shortcut (of a basic block or of a bottleneck). Most strategies do not
  // care; OREPA's builder converts a bottleneck's shortcut, not a basic
  // block's.
  enum class Role { Main, BasicShortcut, BottleneckShortcut } role = Role::Main;

  // A kernel larger than 1 in both dimensions: scaled by SGS, replaced by
  // structural reparameterizations, logged under /layers.
  bool spatial() const { return kernel[0] > 1 && kernel[1] > 1; }
};

// Receives a block's zero-padded input (padded by the block's own padding),
// float32 and contiguous (NCHW) in every precision and memory format.
using CaptureSink = std::function<void(const std::string& path, const torch::Tensor& padded_input)>;

class ConvBlock : public torch::nn::Module {
 public:
  explicit ConvBlock(ConvSpec spec) : spec_(spec) {}
  virtual torch::Tensor forward(torch::Tensor x) = 0;

  const ConvSpec& spec() const { return spec_; }
  const std::string& path() const { return path_; }
  void set_path(std::string path) { path_ = std::move(path); }

  // While a sink is set, every forward hands it the padded input first.
  void set_capture(CaptureSink sink) { sink_ = std::move(sink); }

  // The single KxK weight that gradient scaling multiplies, or an undefined
  // tensor when the block has no such weight (branched blocks).
  virtual torch::Tensor scalable_weight() { return {}; }

  // Weight [out, in/groups, kh, kw] and bias [out] of the one convolution that
  // computes the block's eval-mode function. Detached, on the block's device.
  virtual std::pair<torch::Tensor, torch::Tensor> fused() = 0;
  // Whether the fused bias is a parameter of the deployed conv (false for a
  // plain conv built without bias; true where BatchNorms fold into it).
  virtual bool fused_has_bias() const { return true; }

 protected:
  void capture(const torch::Tensor& x);

  ConvSpec spec_;
  std::string path_;
  CaptureSink sink_;
};

// The plain convolution: one weight (and optional bias).
class PlainConv : public ConvBlock {
 public:
  explicit PlainConv(ConvSpec spec);
  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor scalable_weight() override { return weight; }
  std::pair<torch::Tensor, torch::Tensor> fused() override;
  bool fused_has_bias() const override { return spec_.bias; }

  torch::Tensor weight, bias;
};

// The weight [out, in/groups, kh, kw] (and bias [out] when spec.bias, else
// undefined) drawn as spec.init says, from the default generator.
std::pair<torch::Tensor, torch::Tensor> init_conv(const ConvSpec& spec);

// A conv and the normalisation after it, as the strategy builds the pair.
struct ConvNorm {
  std::shared_ptr<ConvBlock> conv;
  BatchNorm2d norm{nullptr};  // null where the block carries its own (acb, dbb, repvgg)
  torch::Tensor forward(const torch::Tensor& x) {
    return norm ? norm->forward(conv->forward(x)) : conv->forward(x);
  }
};

class ConvFactory {
 public:
  virtual ~ConvFactory() = default;
  // What models call: the conv of `spec` and, where norm_after(spec), a
  // BatchNorm2d of its output channels.
  ConvNorm conv_bn(const ConvSpec& spec);
  // The strategy's two decisions: the conv block (default: PlainConv) ...
  virtual std::shared_ptr<ConvBlock> make(const ConvSpec& spec);
  // ... and whether the model's BatchNorm follows it (default: yes; no where
  // the block replaces conv + BN with its own branch BatchNorms).
  virtual bool norm_after(const ConvSpec& spec) const { return true; }
};

// All ConvBlocks of a module tree with their paths set, in forward order of
// registration.
std::vector<std::shared_ptr<ConvBlock>> conv_blocks(torch::nn::Module& root);

// Zero-pads x [N, C, H, W] by the spec's padding (height, width).
torch::Tensor pad_input(const torch::Tensor& x, const ConvSpec& spec);

}  // namespace sgs
