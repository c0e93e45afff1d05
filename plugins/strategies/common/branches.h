// Shared by the structural reparameterizations (masked_branches, acb, dbb):
// BatchNorm folding (from sgs/norm.h), kernels aligned on the block's centre, and the checks
// the branched blocks need. Fusion is eval-mode: a BatchNorm folds with its
// running statistics, t = gamma / sqrt(var + eps):
//   BN(conv(x, W) + b) = conv(x, t ⊙ W) + beta + t ⊙ (b - mean).
#pragma once

#include <sgs/conv.h>
#include <sgs/norm.h>
#include <sgs/options.h>
#include <sgs/strategy.h>

#include <string>
#include <utility>

namespace sgs::branches {

// The options of the authors' blocks (acb, dbb): which convs become blocks
// and how the block's convs are drawn. The defaults are what the authors'
// model builders do: kernels of 7 and more (an ImageNet stem) stay plain
// conv-BN, and every conv of a block keeps nn.Conv2d's default
// initialisation (kaiming-uniform, a = sqrt(5)).
struct BlockOptions : PluginOptions {
  bool convert_large_kernels = false;
  std::string init = "pytorch";
  // conv_bn: the block with its branch BatchNorms replaces the conv and the
  // model's BatchNorm after it (the authors' placement); conv: the block
  // replaces the conv only and the model's BatchNorm stays (DyRep's code base
  // builds DBB so). Declared by acb and dbb (declare_replace); RepVGG blocks
  // always replace conv + BN.
  std::string replace = "conv_bn";
  template <class T>
  static void declare_block(Declare<T>& d) {
    d.key(&BlockOptions::convert_large_kernels, "convert_large_kernels",
          "also replace convs with a kernel side of 7 or more (the authors' builders leave them plain)");
    d.choice(&BlockOptions::init, "init", {"pytorch", "model"},
             "how the block's convs are drawn: pytorch = nn.Conv2d's default, as the authors' blocks; model = as "
             "the model draws its plain convs (the KxK branch then starts as the plain conv)");
  }
  template <class T>
  static void declare_replace(Declare<T>& d) {
    d.choice(&BlockOptions::replace, "replace", {"conv_bn", "conv"},
             "conv_bn: the block replaces conv + BatchNorm (the authors' placement); conv: the model's BatchNorm "
             "stays after the block (as DyRep's code base builds DBB)");
  }
  // Whether a conv of `spec` becomes a block: spatial, and smaller than 7
  // unless convert_large_kernels.
  bool converts(const ConvSpec& spec) const;
  // Whether the model's BatchNorm follows a conv of `spec`: where it stays
  // plain, and after a block with replace: conv.
  bool norm_after(const ConvSpec& spec) const { return !converts(spec) || replace == "conv"; }
  // `spec` with the initialisation the block's convs are drawn with.
  ConvSpec drawn(ConvSpec spec) const;
};

// The strategy of such a block: its conv factory makes a Block(spec, options)
// for every conv the options convert, a plain conv for the others, and keeps
// the model's BatchNorm where the options' norm_after says.
template <class Block, class BlockOptionsT>
class BlockStrategy : public Strategy {
 public:
  explicit BlockStrategy(BlockOptionsT o) : o_(std::move(o)) {}
  std::shared_ptr<ConvFactory> conv_factory() override { return std::make_shared<Factory>(o_); }

 private:
  class Factory : public ConvFactory {
   public:
    explicit Factory(BlockOptionsT o) : o_(std::move(o)) {}
    std::shared_ptr<ConvBlock> make(const ConvSpec& spec) override {
      if (!o_.converts(spec)) return ConvFactory::make(spec);
      return std::make_shared<Block>(spec, o_);
    }
    bool norm_after(const ConvSpec& spec) const override { return o_.norm_after(spec); }

   private:
    BlockOptionsT o_;
  };
  BlockOptionsT o_;
};

// BatchNorm folding (sgs/norm.h), as the blocks here call it.
using sgs::bn_scale_shift;
using sgs::fold_bn;

// A [o, i, a, b] kernel zero-padded into the centre of `kernel` (both odd
// differences).
torch::Tensor pad_to_centre(const torch::Tensor& weight, const std::array<int64_t, 2>& kernel);

// conv2d of x with a kernel smaller than the block's, aligned on the centre of
// the block's window: padding p - (K - k) / 2 per axis (the input cropped
// where that is negative), the block's stride and groups; the output has the
// block's output shape.
torch::Tensor centred_conv(const torch::Tensor& x, const torch::Tensor& weight, const ConvSpec& block);

// Zero-pads x by `padding` (height, width) with per-channel values [C]
// instead of zeros (the BN of a zero input: DBB's BNAndPadLayer).
torch::Tensor pad_with_values(const torch::Tensor& x, const torch::Tensor& values,
                              const std::array<int64_t, 2>& padding);

// Whether a block of `spec` maps its input onto a map of the same shape (in
// = out, stride 1, padding K/2): where RepVGG and RepOpt add an identity.
bool has_identity(const ConvSpec& spec);

// The identity as a kernel [out, in/groups, K, K]: 1 at the centre of
// channel i's own input (i mod in/groups); with `average`, 1/K^2 over its
// window (QARepVGG v2's average pool).
torch::Tensor identity_kernel(const ConvSpec& spec, const torch::TensorOptions& options, bool average);

// `spec` with other channels and kernel, stride and padding kept (for drawing
// a branch's weight with init_conv).
ConvSpec branch_spec(const ConvSpec& spec, int64_t in_channels, int64_t out_channels,
                     std::array<int64_t, 2> kernel);

// Throws ConfigError ("strategy.name: acb needs ...") unless both kernel sizes
// are odd, dilation is 1 and, when `single_group`, groups is 1.
void require_supported(const ConvSpec& spec, const std::string& strategy, bool single_group);

// "3x3".
std::string kernel_text(const std::array<int64_t, 2>& kernel);

}  // namespace sgs::branches
