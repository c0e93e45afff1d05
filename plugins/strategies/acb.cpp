// acb: Asymmetric Convolution Blocks (Ding et al. 2019, ACNet; docs/method.md 5).
// Every KxK conv (K odd) becomes three convs, each with its own BatchNorm,
// summed:
//   y = BN_s(W_s * x) + BN_h(W_h * x) + BN_v(W_v * x),
// W_s KxK, W_h 1xK (the centre row of the window), W_v Kx1 (the centre
// column), all with the block's stride. Fused (eval mode): each BN folds into
// its conv, the 1xK and Kx1 kernels are added into the centre row and column,
// the shifts summed into one bias. As ACNet's builder: convs with a side of 7
// or more stay plain (option convert_large_kernels), every conv keeps
// nn.Conv2d's default initialisation (option init), and gamma_init sets the
// three BatchNorms' scales (ACNet's CIFAR experiments: 1/3; ImageNet: 1).
#include "common/branches.h"

#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;

struct AcbOptions : br::BlockOptions {
  double gamma_init = 1.0;
  static void declare(sgs::Declare<AcbOptions>& d) {
    d.key(&AcbOptions::gamma_init, "gamma_init",
          "initial scale of the three BatchNorms (ACNet: 1/3 in its CIFAR experiments, 1 for ImageNet)")
        .gt(0);
    declare_block(d);
    declare_replace(d);
  }
};

class AcbConv : public sgs::ConvBlock {
 public:
  AcbConv(const sgs::ConvSpec& spec, const AcbOptions& o) : ConvBlock(spec) {
    br::require_supported(spec_, "acb", /*single_group=*/false);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    const sgs::ConvSpec drawn = o.drawn(spec_);
    square = register_parameter("square", sgs::init_conv(drawn).first);
    hor = register_parameter("hor", sgs::init_conv(br::branch_spec(drawn, in, out, {1, spec_.kernel[1]})).first);
    ver = register_parameter("ver", sgs::init_conv(br::branch_spec(drawn, in, out, {spec_.kernel[0], 1})).first);
    square_bn = register_module("square_bn", sgs::BatchNorm2d(out));
    hor_bn = register_module("hor_bn", sgs::BatchNorm2d(out));
    ver_bn = register_module("ver_bn", sgs::BatchNorm2d(out));
    torch::NoGradGuard no_grad;
    for (auto* bn : {&square_bn, &hor_bn, &ver_bn}) (*bn)->weight.fill_(o.gamma_init);
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

}  // namespace

SGS_REGISTER(sgs::StrategyKind, acb, "ACB (Ding et al. 2019): KxK + 1xK + Kx1 convs, each with its BatchNorm, summed",
             AcbOptions, [](const AcbOptions& o) { return std::make_unique<br::BlockStrategy<AcbConv, AcbOptions>>(o); });
