// dbb: Diverse Branch Blocks (Ding et al. 2021, DiverseBranchBlock;
// docs/method.md 5). Every KxK conv (K odd, groups 1) becomes four branches,
// summed:
//   origin:  BN(W_o * x)                                KxK, the block's stride and padding
//   1x1:     BN(W_1 * x)                                1x1, stride s, centred
//   1x1-KxK: BN(W_k * pad_b(BN((I + D) * x)))           1x1 (identity-based, D = 0 at
//                                                       start) then KxK, stride s
//   avg:     BN(avgpool_K,s(pad_b(BN(W_a * x))))        1x1 then KxK average pooling
// pad_b pads with the inner BN's value for a zero input (eval mode, running
// statistics, detached: DBB's BNAndPadLayer), so that the pair equals one KxK
// conv over the zero-padded input in eval mode. Fused: every BN folds into
// the conv before it; the 1x1 kernel goes to the centre; the 1x1-KxK pair
// merges by a kernel product W[o, i] = sum_m W_k[o, m] W_1'[m, i], with bias
// b_k + sum_{m, y, x} W_k[o, m, y, x] b_1'[m]; average pooling is the kernel
// W_a'[o, i] / (kh kw) with bias b_a'. As DBB's builder: convs with a side
// of 7 or more stay plain (option convert_large_kernels) and every conv keeps
// nn.Conv2d's default initialisation (option init), the identity-based 1x1
// starting at zero.
#include "common/branches.h"

#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;

struct DbbOptions : br::BlockOptions {
  static void declare(sgs::Declare<DbbOptions>& d) {
    declare_block(d);
    declare_replace(d);
  }
};

class DbbConv : public sgs::ConvBlock {
 public:
  DbbConv(const sgs::ConvSpec& spec, const DbbOptions& o) : ConvBlock(spec) {
    br::require_supported(spec_, "dbb", /*single_group=*/true);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    const sgs::ConvSpec drawn = o.drawn(spec_);
    origin = register_parameter("origin", sgs::init_conv(drawn).first);
    one = register_parameter("one", sgs::init_conv(br::branch_spec(drawn, in, out, {1, 1})).first);
    idconv1 = register_parameter("idconv1", torch::zeros({in, in, 1, 1}));
    conv2 = register_parameter("conv2", sgs::init_conv(br::branch_spec(drawn, in, out, spec_.kernel)).first);
    avg_conv = register_parameter("avg_conv", sgs::init_conv(br::branch_spec(drawn, in, out, {1, 1})).first);
    origin_bn = register_module("origin_bn", sgs::BatchNorm2d(out));
    one_bn = register_module("one_bn", sgs::BatchNorm2d(out));
    bn1 = register_module("bn1", sgs::BatchNorm2d(in));
    bn2 = register_module("bn2", sgs::BatchNorm2d(out));
    avg_bn = register_module("avg_bn", sgs::BatchNorm2d(out));
    avg_out_bn = register_module("avg_out_bn", sgs::BatchNorm2d(out));
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    const std::vector<int64_t> stride{spec_.stride[0], spec_.stride[1]};
    auto y = origin_bn(torch::conv2d(x, origin, {}, stride, {spec_.padding[0], spec_.padding[1]}));
    y = y + one_bn(br::centred_conv(x, one, spec_));
    // Identity-based 1x1: conv(x, I + D) = x + conv(x, D).
    auto mid = bn1(x + torch::conv2d(x, idconv1));
    y = y + bn2(torch::conv2d(br::pad_with_values(mid, br::bn_scale_shift(bn1).second, spec_.padding), conv2, {},
                              stride));
    auto avg = avg_bn(torch::conv2d(x, avg_conv));
    avg = torch::avg_pool2d(br::pad_with_values(avg, br::bn_scale_shift(avg_bn).second, spec_.padding),
                            {spec_.kernel[0], spec_.kernel[1]}, stride);
    return y + avg_out_bn(avg);
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    const auto& k = spec_.kernel;
    auto [w, b] = br::fold_bn(origin, {}, origin_bn);
    auto [w1, b1] = br::fold_bn(one, {}, one_bn);
    w = w + br::pad_to_centre(w1, k);
    b = b + b1;
    // 1x1-KxK: W1' [m, i] then W2' [o, m, kh, kw].
    auto eye = torch::eye(spec_.in_channels, idconv1.options()).view({spec_.in_channels, spec_.in_channels, 1, 1});
    auto [wi, bi] = br::fold_bn(idconv1 + eye, {}, bn1);
    auto [wk, bk] = br::fold_bn(conv2, {}, bn2);
    w = w + torch::einsum("omyx,mi->oiyx", {wk, wi.flatten(1)});
    b = b + bk + torch::einsum("omyx,m->o", {wk, bi});
    // avg: the 1x1 (BN folded) spread as a constant KxK kernel, then the outer BN.
    auto [wa, ba] = br::fold_bn(avg_conv, {}, avg_bn);
    auto avg_kernel = (wa / static_cast<double>(k[0] * k[1])).expand({-1, -1, k[0], k[1]});
    auto [wa2, ba2] = br::fold_bn(avg_kernel, ba, avg_out_bn);
    return {w + wa2, b + ba2};
  }

  torch::Tensor origin, one, idconv1, conv2, avg_conv;
  sgs::BatchNorm2d origin_bn{nullptr}, one_bn{nullptr}, bn1{nullptr}, bn2{nullptr}, avg_bn{nullptr},
      avg_out_bn{nullptr};
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, dbb,
             "DBB (Ding et al. 2021): KxK-BN + 1x1-BN + 1x1-BN-KxK-BN + 1x1-BN-avgpool-BN, summed", DbbOptions,
             [](const DbbOptions& o) { return std::make_unique<br::BlockStrategy<DbbConv, DbbOptions>>(o); });
