// repvgg: RepVGG blocks (Ding et al. 2021, RepVGG; docs/method.md 5). Every
// KxK conv (K odd) becomes up to three branches, summed:
//   y = BN_d(W_d * x) + BN_1(W_1 * x) + BN_id(x)
// W_d KxK with the block's stride and padding, W_1 1x1 at the window's
// centre (the block's stride), and the identity branch, a BatchNorm of the
// input, only where the block maps its input onto a map of the same shape
// (in = out, stride 1, padding K/2). Fused (eval mode): each BatchNorm folds
// into its branch; the 1x1 kernel goes to the centre, the identity becomes a
// kernel with 1 at the centre of channel i's own input (i mod in/groups).
// RepVGG's own blocks are 3x3; like acb and dbb, convs with a side of 7 or
// more stay plain unless convert_large_kernels, and every conv keeps
// nn.Conv2d's default initialisation unless init: model.
#include "common/branches.h"

#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;

struct RepvggOptions : br::BlockOptions {
  static void declare(sgs::Declare<RepvggOptions>& d) { declare_block(d); }
};

bool has_identity(const sgs::ConvSpec& s) {
  return s.in_channels == s.out_channels && s.stride[0] == 1 && s.stride[1] == 1 &&
         s.padding[0] == s.kernel[0] / 2 && s.padding[1] == s.kernel[1] / 2;
}

class RepvggConv : public sgs::ConvBlock {
 public:
  RepvggConv(const sgs::ConvSpec& spec, const RepvggOptions& o) : ConvBlock(spec) {
    br::require_supported(spec_, "repvgg", /*single_group=*/false);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    const sgs::ConvSpec drawn = o.drawn(spec_);
    dense = register_parameter("dense", sgs::init_conv(drawn).first);
    one = register_parameter("one", sgs::init_conv(br::branch_spec(drawn, in, out, {1, 1})).first);
    dense_bn = register_module("dense_bn", sgs::BatchNorm2d(out));
    one_bn = register_module("one_bn", sgs::BatchNorm2d(out));
    if (has_identity(spec_)) identity_bn = register_module("identity_bn", sgs::BatchNorm2d(in));
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    auto y = dense_bn(torch::conv2d(x, dense, {}, {spec_.stride[0], spec_.stride[1]},
                                    {spec_.padding[0], spec_.padding[1]}, {1, 1}, spec_.groups));
    y = y + one_bn(br::centred_conv(x, one, spec_));
    return identity_bn ? y + identity_bn(x) : y;
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    auto [w, b] = br::fold_bn(dense, {}, dense_bn);
    auto [w1, b1] = br::fold_bn(one, {}, one_bn);
    w = w + br::pad_to_centre(w1, spec_.kernel);
    b = b + b1;
    if (identity_bn) {
      const int64_t c = spec_.out_channels, per_group = spec_.in_channels / spec_.groups;
      auto id = torch::zeros({c, per_group, 1, 1}, dense.options());
      auto rows = torch::arange(c, torch::kLong);
      id.index_put_({rows, rows.remainder(per_group), 0, 0}, 1.0);
      auto [wi, bi] = br::fold_bn(id, {}, identity_bn);
      w = w + br::pad_to_centre(wi, spec_.kernel);
      b = b + bi;
    }
    return {w, b};
  }

  torch::Tensor dense, one;
  sgs::BatchNorm2d dense_bn{nullptr}, one_bn{nullptr}, identity_bn{nullptr};
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, repvgg,
             "RepVGG (Ding et al. 2021): KxK-BN + 1x1-BN + identity-BN (where in = out and stride 1), summed",
             RepvggOptions, [](const RepvggOptions& o) {
               return std::make_unique<br::BlockStrategy<RepvggConv, RepvggOptions>>(o);
             });
