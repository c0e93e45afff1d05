// orepa: Online Convolutional Re-parameterization (Hu et al., CVPR 2022;
// JUGGHM/OREPA_CVPR2022, blocks.py; docs/method.md 5). Each block keeps its
// linear branches as parameters but computes their sum as one kernel on every
// forward, so that training runs a single conv followed by one BatchNorm:
//   y = BN(conv(x, W)),  W = sum_b vector[b, o] * W_b
// with six KxK branches (OREPA; its names are the authors'):
//   0 origin   weight_orepa_origin [o, i, K, K]
//   1 avg      weight_orepa_avg_conv[o, i] * 1/K^2 over the window
//   2 prior    weight_orepa_pfir_conv[o, i] * prior[o, h, w], a fixed
//              frequency prior: cos(pi (h + 1/2)(o + 1) / 3) for the first
//              half of the outputs, cos(pi (w + 1/2)(o + 1 - out/2) / 3) after
//   3 1x1-KxK  sum_t (idconv1 + I)[t, i] * conv2[o, t, h, w]
//   4 1x1      weight_orepa_1x1 at the window's centre
//   5 dw-sep   sum_{t<8} gconv_dw[8 i + t, h, w] * gconv_pw[o, 8 i + t]
// No BatchNorm inside the branches. Where the authors' builder (their
// convnet_utils.choose_blk, ResNet) puts other blocks, so does this one: a
// 1x1 conv becomes OREPA_1x1, W = v0 * origin + v1 * (conv2 @ conv1), one
// factor starting as the identity (the main path's and a bottleneck's
// shortcut; a basic block's shortcut stays a plain conv + BN, as theirs);
// a kernel of 7 and more (an ImageNet stem) becomes OREPA_LargeConv, the
// composition of (K - 1)/2 3x3 OREPA kernels (no BatchNorm each, one after).
// VGG, which the authors do not build, gets an OREPA in place of each 3x3
// conv + BN. Fused (eval mode): W with the BatchNorm folded.
#include "common/branches.h"

#include <sgs/errors.h>
#include <sgs/strategy.h>

#include <torch/torch.h>

#include <cmath>

namespace {

namespace br = sgs::branches;
namespace init = torch::nn::init;

struct OrepaOptions : br::BlockOptions {
  OrepaOptions() { convert_large_kernels = true; }  // the authors' builder converts the stem
  static void declare(sgs::Declare<OrepaOptions>& d) {
    d.key(&BlockOptions::convert_large_kernels, "convert_large_kernels",
          "replace convs with a kernel side of 7 or more (an ImageNet stem) by OREPA_LargeConv, as the authors' "
          "builder does (false: they stay conv + BN)");
    d.choice(&BlockOptions::init, "init", {"pytorch", "model"},
             "pytorch: every branch drawn as the authors' blocks draw it; model: the origin kernel drawn as the model "
             "draws its plain convs");
  }
};

torch::Tensor kaiming(std::vector<int64_t> shape, double a) {
  auto t = torch::empty(shape);
  init::kaiming_uniform_(t, a);
  return t;
}

// The six-branch kernel of one OREPA (blocks.py OREPA.weight_gen): a module
// of its own so that OREPA_LargeConv can hold several.
class OrepaKernelImpl : public torch::nn::Module {
 public:
  OrepaKernelImpl(int64_t in, int64_t out, int64_t k, bool draw_origin_as_model, const sgs::ConvSpec& model_spec)
      : in_(in), k_(k) {
    constexpr int64_t kExpand = 8;
    origin = register_parameter(
        "weight_orepa_origin", draw_origin_as_model ? sgs::init_conv(model_spec).first : kaiming({out, in, k, k}, 0.0));
    avg_conv = register_parameter("weight_orepa_avg_conv", kaiming({out, in, 1, 1}, 0.0));
    pfir_conv = register_parameter("weight_orepa_pfir_conv", kaiming({out, in, 1, 1}, 0.0));
    avg_avg = register_buffer("weight_orepa_avg_avg", torch::full({k, k}, 1.0 / static_cast<double>(k * k)));
    one = register_parameter("weight_orepa_1x1", kaiming({out, in, 1, 1}, 0.0));
    idconv1 = register_parameter("weight_orepa_1x1_kxk_idconv1", torch::zeros({in, in, 1, 1}));
    id_tensor = register_buffer("id_tensor", torch::eye(in).view({in, in, 1, 1}));
    conv2 = register_parameter("weight_orepa_1x1_kxk_conv2", kaiming({out, in, k, k}, 0.0));
    gconv_dw = register_parameter("weight_orepa_gconv_dw", kaiming({in * kExpand, 1, k, k}, 0.0));
    gconv_pw = register_parameter("weight_orepa_gconv_pw", kaiming({out, in * kExpand, 1, 1}, 0.0));
    vector = register_parameter("vector", torch::tensor({0.25, 0.25, 0.0, 0.5, 1.0, 0.5}, torch::kFloat32)
                                              .view({6, 1})
                                              .expand({6, out})
                                              .contiguous());
    // The frequency prior. (The authors fill only h, w < 3; their blocks are
    // 3x3, where that is the whole window: the same formula fills it here.)
    auto prior_tensor = torch::empty({out, k, k});
    const double half = static_cast<double>(out) / 2;
    auto p = prior_tensor.accessor<float, 3>();
    for (int64_t o = 0; o < out; ++o)
      for (int64_t h = 0; h < k; ++h)
        for (int64_t w = 0; w < k; ++w)
          p[o][h][w] = static_cast<float>(
              static_cast<double>(o) < half ? std::cos(M_PI * (static_cast<double>(h) + 0.5) * static_cast<double>(o + 1) / 3)
                                            : std::cos(M_PI * (static_cast<double>(w) + 0.5) *
                                                       (static_cast<double>(o + 1) - half) / 3));
    prior = register_buffer("weight_orepa_prior", prior_tensor);
  }

  // W [out, in, K, K], differentiable in every branch parameter.
  torch::Tensor weight() {
    const int64_t out = origin.size(0);
    auto v = [&](int64_t b) { return vector[b].view({out, 1, 1, 1}); };
    auto w = origin * v(0);
    w = w + torch::einsum("oi,hw->oihw", {avg_conv.flatten(1), avg_avg}) * v(1);
    w = w + torch::einsum("oi,ohw->oihw", {pfir_conv.flatten(1), prior}) * v(2);
    w = w + torch::einsum("ti,othw->oihw", {(idconv1 + id_tensor).flatten(1), conv2}) * v(3);
    w = w + br::pad_to_centre(one, {k_, k_}) * v(4);
    auto dw = gconv_dw.view({in_, 8, k_, k_});
    auto pw = gconv_pw.view({out, in_, 8});
    w = w + torch::einsum("ithw,oit->oihw", {dw, pw}) * v(5);
    return w;
  }

  torch::Tensor origin, avg_conv, pfir_conv, avg_avg, one, idconv1, id_tensor, conv2, gconv_dw, gconv_pw, vector, prior;

 private:
  int64_t in_, k_;
};
TORCH_MODULE(OrepaKernel);

// OREPA (KxK, padding K/2) and OREPA_LargeConv (K >= 7): conv(x, W), BN.
class OrepaConv : public sgs::ConvBlock {
 public:
  OrepaConv(const sgs::ConvSpec& spec, const OrepaOptions& o) : ConvBlock(spec) {
    br::require_supported(spec_, "orepa", /*single_group=*/true);
    const int64_t in = spec_.in_channels, out = spec_.out_channels, k = spec_.kernel[0];
    if (spec_.kernel[0] != spec_.kernel[1] || spec_.padding[0] != k / 2 || spec_.padding[1] != k / 2)
      throw sgs::ConfigError("strategy.name: orepa needs square kernels with padding K/2 (the authors' block asserts "
                             "it), got a " + br::kernel_text(spec_.kernel) + " conv with padding " +
                             std::to_string(spec_.padding[0]) + "x" + std::to_string(spec_.padding[1]));
    const bool as_model = o.init == "model";
    if (k < 7) {
      kernels_.push_back(register_module("kernel", OrepaKernel(in, out, k, as_model, o.drawn(spec_))));
    } else {
      // (K - 1)/2 3x3 kernels, in -> out -> ... -> out (the authors' internal channels are out).
      sgs::ConvSpec first = o.drawn(spec_);
      first.kernel = {3, 3};
      first.out_channels = out;
      for (int64_t i = 0; i < (k - 1) / 2; ++i)
        kernels_.push_back(register_module("weight" + std::to_string(i),
                                           OrepaKernel(i == 0 ? in : out, out, 3, as_model && i == 0, first)));
    }
    bn = register_module("bn", sgs::BatchNorm2d(out));
  }

  // One kernel, or the large conv's: A = W0^T, then A = conv2d(A, W_j, padding 2)
  // for each later kernel, transposed back (blocks.py OREPA_LargeConv.weight_gen).
  torch::Tensor weight() {
    if (kernels_.size() == 1) return kernels_[0]->weight();
    auto w = kernels_[0]->weight().transpose(0, 1);
    for (size_t i = 1; i < kernels_.size(); ++i) w = torch::conv2d(w, kernels_[i]->weight(), {}, 1, 2);
    return w.transpose(0, 1);
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    return bn(torch::conv2d(x, weight(), {}, {spec_.stride[0], spec_.stride[1]}, {spec_.padding[0], spec_.padding[1]}));
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    return br::fold_bn(weight(), {}, bn);
  }

  sgs::BatchNorm2d bn{nullptr};

 private:
  std::vector<OrepaKernel> kernels_;
};

// OREPA_1x1: W = v0 * origin + v1 * (conv2 @ conv1), BN; the factor on the
// wider side starts as the identity (blocks.py OREPA_1x1).
class Orepa1x1Conv : public sgs::ConvBlock {
 public:
  Orepa1x1Conv(const sgs::ConvSpec& spec, const OrepaOptions& o) : ConvBlock(spec) {
    br::require_supported(spec_, "orepa", /*single_group=*/true);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    origin = register_parameter("weight_or1x1_origin",
                                o.init == "model" ? sgs::init_conv(o.drawn(spec_)).first : kaiming({out, in, 1, 1}, 1.0));
    if (out > in) {
      conv1 = register_parameter("weight_or1x1_l2i_conv1", torch::eye(in).view({in, in, 1, 1}));
      conv2 = register_parameter("weight_or1x1_l2i_conv2", kaiming({out, in, 1, 1}, 1.0));
    } else {
      conv1 = register_parameter("weight_or1x1_l2i_conv1", kaiming({out, in, 1, 1}, 1.0));
      conv2 = register_parameter("weight_or1x1_l2i_conv2", torch::eye(out).view({out, out, 1, 1}));
    }
    vector = register_parameter("vector", torch::tensor({1.0, 0.5}, torch::kFloat32).view({2, 1}).expand({2, out}).contiguous());
    bn = register_module("bn", sgs::BatchNorm2d(out));
  }

  torch::Tensor weight() {
    const int64_t out = origin.size(0);
    auto w = origin * vector[0].view({out, 1, 1, 1});
    return w + torch::einsum("tihw,othw->oihw", {conv1, conv2}) * vector[1].view({out, 1, 1, 1});
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    return bn(torch::conv2d(x, weight(), {}, {spec_.stride[0], spec_.stride[1]}));
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    return br::fold_bn(weight(), {}, bn);
  }

  torch::Tensor origin, conv1, conv2, vector;
  sgs::BatchNorm2d bn{nullptr};
};

class Orepa : public sgs::Strategy {
 public:
  explicit Orepa(OrepaOptions o) : o_(std::move(o)) {}
  std::shared_ptr<sgs::ConvFactory> conv_factory() override { return std::make_shared<Factory>(o_); }

 private:
  class Factory : public sgs::ConvFactory {
   public:
    explicit Factory(OrepaOptions o) : o_(std::move(o)) {}
    std::shared_ptr<sgs::ConvBlock> make(const sgs::ConvSpec& spec) override {
      if (one_by_one(spec)) return std::make_shared<Orepa1x1Conv>(spec, o_);
      if (o_.converts(spec)) return std::make_shared<OrepaConv>(spec, o_);
      return ConvFactory::make(spec);
    }
    bool norm_after(const sgs::ConvSpec& spec) const override { return !one_by_one(spec) && !o_.converts(spec); }

   private:
    // 1x1 convs, but a basic block's shortcut (the authors keep it conv + BN).
    static bool one_by_one(const sgs::ConvSpec& spec) {
      return spec.kernel[0] == 1 && spec.kernel[1] == 1 && spec.role != sgs::ConvSpec::Role::BasicShortcut;
    }
    OrepaOptions o_;
  };
  OrepaOptions o_;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, orepa,
             "OREPA (Hu et al. 2022): six linear branches squeezed into one KxK kernel on every forward, one BN after "
             "the conv; 1x1 convs as OREPA_1x1, kernels of 7 and more as OREPA_LargeConv",
             OrepaOptions, [](const OrepaOptions& o) { return std::make_unique<Orepa>(o); });
