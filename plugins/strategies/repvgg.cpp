// repvgg: RepVGG blocks (Ding et al. 2021, RepVGG; docs/method.md 5). Every
// KxK conv (K odd) becomes up to three branches, summed:
//   y = BN_d(W_d * x) + BN_1(W_1 * x) + BN_id(x)
// W_d KxK with the block's stride and padding, W_1 1x1 at the window's
// centre (the block's stride), and the identity branch, a BatchNorm of the
// input, only where the block maps its input onto a map of the same shape
// (in = out, stride 1, padding K/2). Fused (eval mode): each BatchNorm folds
// into its branch; the 1x1 kernel goes to the centre, the identity becomes a
// kernel with 1 at the centre of channel i's own input (i mod in/groups).
//
// variant qarepvgg: QARepVGG's block (Chu et al., Make RepVGG Greater Again,
// AAAI 2024; meituan/YOLOv6's QARepVGGBlock), built so that the fused model
// quantizes: the KxK branch keeps its BatchNorm, the 1x1 (no bias) and the
// identity have none, and one BatchNorm follows the sum:
//   y = BN(BN_d(W_d * x) + W_1 * x + x)
// qarepvgg_v2 (YOLOv6's QARepVGGBlockV2, which its QA models use) adds a KxK
// average pool (zero padding counted) beside the identity, where the
// identity is: a kernel of 1/K^2 over the window of channel i's own input.
//
// RepVGG's own blocks are 3x3; like acb and dbb, convs with a side of 7 or
// more stay plain unless convert_large_kernels, and every conv keeps
// nn.Conv2d's default initialisation unless init: model.
#include "common/branches.h"

#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;

struct RepvggOptions : br::BlockOptions {
  std::string variant = "repvgg";
  static void declare(sgs::Declare<RepvggOptions>& d) {
    declare_block(d);
    d.choice(&RepvggOptions::variant, "variant", {"repvgg", "qarepvgg", "qarepvgg_v2"},
             "repvgg: a BatchNorm on every branch (RepVGG); qarepvgg: BatchNorm on the KxK branch only and one after "
             "the sum (QARepVGG, for int8); qarepvgg_v2: also a KxK average pool beside the identity (YOLOv6's "
             "QARepVGGBlockV2)");
  }
};

class RepvggConv : public sgs::ConvBlock {
 public:
  RepvggConv(const sgs::ConvSpec& spec, const RepvggOptions& o)
      : ConvBlock(spec), qa_(o.variant != "repvgg"), average_(o.variant == "qarepvgg_v2" && br::has_identity(spec)) {
    br::require_supported(spec_, "repvgg", /*single_group=*/false);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    const sgs::ConvSpec drawn = o.drawn(spec_);
    dense = register_parameter("dense", sgs::init_conv(drawn).first);
    one = register_parameter("one", sgs::init_conv(br::branch_spec(drawn, in, out, {1, 1})).first);
    dense_bn = register_module("dense_bn", sgs::BatchNorm2d(out));
    if (qa_) {
      bn = register_module("bn", sgs::BatchNorm2d(out));
    } else {
      one_bn = register_module("one_bn", sgs::BatchNorm2d(out));
      if (br::has_identity(spec_)) identity_bn = register_module("identity_bn", sgs::BatchNorm2d(in));
    }
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    const std::vector<int64_t> stride{spec_.stride[0], spec_.stride[1]}, padding{spec_.padding[0], spec_.padding[1]};
    auto y = dense_bn(torch::conv2d(x, dense, {}, stride, padding, {1, 1}, spec_.groups));
    if (!qa_) {
      y = y + one_bn(br::centred_conv(x, one, spec_));
      return identity_bn ? y + identity_bn(x) : y;
    }
    y = y + br::centred_conv(x, one, spec_);
    if (br::has_identity(spec_)) y = y + x;
    if (average_)
      y = y + torch::avg_pool2d(x, {spec_.kernel[0], spec_.kernel[1]}, stride, padding, /*ceil_mode=*/false,
                                /*count_include_pad=*/true);
    return bn(y);
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    auto [w, b] = br::fold_bn(dense, {}, dense_bn);
    if (!qa_) {
      auto [w1, b1] = br::fold_bn(one, {}, one_bn);
      w = w + br::pad_to_centre(w1, spec_.kernel);
      b = b + b1;
      if (identity_bn) {
        auto [wi, bi] = br::fold_bn(br::identity_kernel(spec_, dense.options(), false), {}, identity_bn);
        w = w + wi;
        b = b + bi;
      }
      return {w, b};
    }
    w = w + br::pad_to_centre(one, spec_.kernel);
    if (br::has_identity(spec_)) w = w + br::identity_kernel(spec_, dense.options(), false);
    if (average_) w = w + br::identity_kernel(spec_, dense.options(), true);
    return br::fold_bn(w, b, bn);
  }

  torch::Tensor dense, one;
  sgs::BatchNorm2d dense_bn{nullptr}, one_bn{nullptr}, identity_bn{nullptr}, bn{nullptr};

 private:
  bool qa_, average_;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, repvgg,
             "RepVGG (Ding et al. 2021): KxK-BN + 1x1-BN + identity-BN (where in = out and stride 1), summed; "
             "variant qarepvgg: QARepVGG's block, BN(KxK-BN + 1x1 + identity)",
             RepvggOptions, [](const RepvggOptions& o) {
               return std::make_unique<br::BlockStrategy<RepvggConv, RepvggOptions>>(o);
             });
