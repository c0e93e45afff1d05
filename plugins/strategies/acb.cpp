// acb: Asymmetric Convolution Blocks (Ding et al. 2019, ACNet; docs/method.md 5).
// Every KxK conv (K odd) becomes three convs, each with its own BatchNorm,
// summed:
//   y = BN_s(W_s * x) + BN_h(W_h * x) + BN_v(W_v * x),
// W_s KxK, W_h 1xK (the centre row of the window), W_v Kx1 (the centre
// column), all with the block's stride. Fused (eval mode): each BN folds into
// its conv, the 1xK and Kx1 kernels are added into the centre row and column,
// the shifts summed into one bias. The KxK weight is drawn first, exactly as
// the plain conv draws it.
#include "common/branches.h"

#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;

class AcbConv : public sgs::ConvBlock {
 public:
  explicit AcbConv(const sgs::ConvSpec& spec) : ConvBlock(spec) {
    br::require_supported(spec_, "acb", /*single_group=*/false);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    square = register_parameter("square", sgs::init_conv(spec_).first);
    hor = register_parameter("hor", sgs::init_conv(br::branch_spec(spec_, in, out, {1, spec_.kernel[1]})).first);
    ver = register_parameter("ver", sgs::init_conv(br::branch_spec(spec_, in, out, {spec_.kernel[0], 1})).first);
    square_bn = register_module("square_bn", sgs::BatchNorm2d(out));
    hor_bn = register_module("hor_bn", sgs::BatchNorm2d(out));
    ver_bn = register_module("ver_bn", sgs::BatchNorm2d(out));
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    auto y = square_bn(torch::conv2d(x, square, {}, {spec_.stride[0], spec_.stride[1]},
                                     {spec_.padding[0], spec_.padding[1]}, {1, 1}, spec_.groups));
    y = y + hor_bn(br::centred_conv(x, hor, spec_));
    return y + ver_bn(br::centred_conv(x, ver, spec_));
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    auto [ws, bs] = br::fold_bn(square, {}, square_bn);
    auto [wh, bh] = br::fold_bn(hor, {}, hor_bn);
    auto [wv, bv] = br::fold_bn(ver, {}, ver_bn);
    return {ws + br::pad_to_centre(wh, spec_.kernel) + br::pad_to_centre(wv, spec_.kernel), bs + bh + bv};
  }

  torch::Tensor square, hor, ver;
  sgs::BatchNorm2d square_bn{nullptr}, hor_bn{nullptr}, ver_bn{nullptr};
};

class AcbFactory : public sgs::ConvFactory {
 public:
  std::shared_ptr<sgs::ConvBlock> make(const sgs::ConvSpec& spec) override {
    if (!spec.spatial()) return ConvFactory::make(spec);
    return std::make_shared<AcbConv>(spec);
  }
};

class Acb : public sgs::Strategy {
 public:
  std::shared_ptr<sgs::ConvFactory> conv_factory() override { return std::make_shared<AcbFactory>(); }
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, acb, "ACB (Ding et al. 2019): KxK + 1xK + Kx1 convs, each with its BatchNorm, summed",
             sgs::NoOptions, [](const sgs::NoOptions&) { return std::make_unique<Acb>(); });
