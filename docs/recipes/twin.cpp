// twin: every KxK conv becomes two KxK convs, each with its BatchNorm,
// summed: y = BN_a(W_a * x) + BN_b(W_b * x). Fused (eval mode): each
// BatchNorm folds into its conv and the two kernels and biases add up.
#include "common/branches.h"

#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;

struct TwinOptions : br::BlockOptions {
  static void declare(sgs::Declare<TwinOptions>& d) { declare_block(d); }
};

class TwinConv : public sgs::ConvBlock {
 public:
  TwinConv(const sgs::ConvSpec& spec, const TwinOptions& o) : ConvBlock(spec) {
    br::require_supported(spec_, "twin", /*single_group=*/false);
    const sgs::ConvSpec drawn = o.drawn(spec_);
    a = register_parameter("a", sgs::init_conv(drawn).first);
    b = register_parameter("b", sgs::init_conv(drawn).first);
    a_bn = register_module("a_bn", sgs::BatchNorm2d(spec_.out_channels));
    b_bn = register_module("b_bn", sgs::BatchNorm2d(spec_.out_channels));
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    auto conv = [&](const torch::Tensor& w) {
      return torch::conv2d(x, w, {}, {spec_.stride[0], spec_.stride[1]}, {spec_.padding[0], spec_.padding[1]},
                           {1, 1}, spec_.groups);
    };
    return a_bn(conv(a)) + b_bn(conv(b));
  }

  // The plain conv this block equals in eval mode: weight and bias.
  std::pair<torch::Tensor, torch::Tensor> fused() override {
    auto [wa, ba] = br::fold_bn(a, {}, a_bn);
    auto [wb, bb] = br::fold_bn(b, {}, b_bn);
    return {wa + wb, ba + bb};
  }

  torch::Tensor a, b;
  sgs::BatchNorm2d a_bn{nullptr}, b_bn{nullptr};
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, twin, "structural example: two KxK convs, each with its BatchNorm, summed", TwinOptions,
             [](const TwinOptions& o) { return std::make_unique<br::BlockStrategy<TwinConv, TwinOptions>>(o); });
