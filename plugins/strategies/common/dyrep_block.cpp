#include "dyrep_block.h"

#include "branches.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace sgs::dyrep {

namespace br = sgs::branches;

const char* branch_name(int b) {
  static const char* names[kBranches] = {"dbb_1x1", "dbb_1x1_kxk", "dbb_1x1_avg", "dbb_kxk",
                                         "dbb_1xk", "dbb_kx1",     "dbb_id"};
  return names[b];
}

namespace detail {

// The parameter of an nn.Conv2d without bias, under its name.
struct Leaf : torch::nn::Module {
  explicit Leaf(torch::Tensor w) { weight = register_parameter("weight", std::move(w)); }
  torch::Tensor weight;
};

// DyRep's ConvBN: dbb_1x1, dbb_1xk, dbb_kx1.
struct Branch1x1 : torch::nn::Module {
  Branch1x1(torch::Tensor w, int64_t out) {
    conv = register_module("conv", std::make_shared<Leaf>(std::move(w)));
    bn = register_module("bn", sgs::BatchNorm2d(out));
  }
  std::shared_ptr<Leaf> conv;
  sgs::BatchNorm2d bn{nullptr};
};

// DyRep's BNAndPad: a BatchNorm under the name "bn".
struct PadBn : torch::nn::Module {
  explicit PadBn(int64_t c) { bn = register_module("bn", sgs::BatchNorm2d(c)); }
  sgs::BatchNorm2d bn{nullptr};
};

struct Branch1x1Kxk : torch::nn::Module {
  Branch1x1Kxk(torch::Tensor w1, std::shared_ptr<GrowableConv> second, int64_t internal, int64_t out) {
    conv1 = register_module("conv1", std::make_shared<Leaf>(std::move(w1)));
    bn1 = register_module("bn1", std::make_shared<PadBn>(internal));
    conv2 = register_module("conv2", std::move(second));
    bn2 = register_module("bn2", sgs::BatchNorm2d(out));
  }
  std::shared_ptr<Leaf> conv1;
  std::shared_ptr<PadBn> bn1;
  std::shared_ptr<GrowableConv> conv2;
  sgs::BatchNorm2d bn2{nullptr};
};

// With a 1x1 conv where groups < out (always here: groups is 1), else the
// average pooling alone.
struct Branch1x1Avg : torch::nn::Module {
  Branch1x1Avg(torch::Tensor w, int64_t out) {
    if (w.defined()) {
      conv = register_module("conv", std::make_shared<Leaf>(std::move(w)));
      bn = register_module("bn", std::make_shared<PadBn>(out));
    }
    avgbn = register_module("avgbn", sgs::BatchNorm2d(out));
  }
  std::shared_ptr<Leaf> conv;
  std::shared_ptr<PadBn> bn;
  sgs::BatchNorm2d avgbn{nullptr};
};

struct BranchKxk : torch::nn::Module {
  BranchKxk(std::shared_ptr<GrowableConv> c, int64_t out) {
    conv = register_module("conv", std::move(c));
    bn = register_module("bn", sgs::BatchNorm2d(out));
  }
  std::shared_ptr<GrowableConv> conv;
  sgs::BatchNorm2d bn{nullptr};
};

}  // namespace detail

namespace {

// DyRep's _init_branch: every conv He normal (fan-out: 2 / (kh kw out)) or
// zero, biases zero; every BatchNorm reset with beta 0 and gamma 1, the
// branch's last one `last_gamma`.
void init_branch(torch::nn::Module& branch, bool zero, double last_gamma, torch::Generator& gen) {
  torch::NoGradGuard no_grad;
  auto draw = [&](const torch::Tensor& w) {
    if (zero) {
      w.zero_();
      return;
    }
    const double std = std::sqrt(2.0 / static_cast<double>(w.size(0) * w.size(2) * w.size(3)));
    w.copy_(torch::empty(w.sizes(), torch::kFloat).normal_(0.0, std, gen));
  };
  std::vector<sgs::BatchNorm2dImpl*> bns;
  for (const auto& m : branch.modules(/*include_self=*/true)) {
    if (auto* leaf = dynamic_cast<detail::Leaf*>(m.get())) {
      draw(leaf->weight);
    } else if (auto* conv = dynamic_cast<GrowableConv*>(m.get())) {
      if (conv->grown()) continue;
      draw(conv->weight());
      if (conv->bias().defined()) conv->bias().zero_();
    } else if (auto* bn = dynamic_cast<sgs::BatchNorm2dImpl*>(m.get())) {
      bns.push_back(bn);
    }
  }
  for (size_t i = 0; i < bns.size(); ++i) {
    bns[i]->reset_running_stats();
    bns[i]->weight.fill_(i + 1 == bns.size() ? last_gamma : 1.0);
    bns[i]->bias.zero_();
  }
}

double mean_abs(const torch::Tensor& t) { return t.detach().abs().mean().item<double>(); }

}  // namespace

GrowableConv::GrowableConv(const ConvSpec& spec, int depth) : ConvBlock(spec), depth_(depth) {
  auto [w, b] = init_conv(spec_);
  make_plain(w, b);
}

GrowableConv::GrowableConv(const ConvSpec& spec, int depth, torch::Tensor weight, torch::Tensor bias)
    : ConvBlock(spec), depth_(depth) {
  make_plain(std::move(weight), std::move(bias));
}

void GrowableConv::make_plain(torch::Tensor weight, torch::Tensor bias) {
  weight_ = register_parameter("weight", std::move(weight));
  bias_ = bias.defined() ? register_parameter("bias", std::move(bias)) : torch::Tensor();
  spec_.bias = bias_.defined();
}

torch::TensorOptions GrowableConv::options() const {
  auto params = parameters();
  return params.empty() ? torch::TensorOptions() : params.front().options();
}

void GrowableConv::make_block(const Branches& b, torch::Tensor kxk_bias, const torch::TensorOptions& opts) {
  const int64_t in = spec_.in_channels, out = spec_.out_channels, kh = spec_.kernel[0], kw = spec_.kernel[1];
  auto zeros = [&](std::vector<int64_t> shape) { return torch::zeros(shape, opts); };
  auto nested = [&](ConvSpec s, torch::Tensor bias) {
    return std::make_shared<GrowableConv>(s, depth_ + 1, zeros({s.out_channels, s.in_channels, kh, kw}),
                                          std::move(bias));
  };
  if (b[k1x1]) one_ = register_module(branch_name(k1x1), std::make_shared<detail::Branch1x1>(zeros({out, in, 1, 1}), out));
  if (b[k1x1Kxk]) {
    ConvSpec second = spec_;  // internal channels = in (DyRep's default), padding 0: it follows the pad
    second.padding = {0, 0};
    second.bias = false;
    one_kxk_ = register_module(branch_name(k1x1Kxk), std::make_shared<detail::Branch1x1Kxk>(
                                                         zeros({in, in, 1, 1}), nested(second, {}), in, out));
  }
  if (b[k1x1Avg])
    avg_ = register_module(branch_name(k1x1Avg), std::make_shared<detail::Branch1x1Avg>(zeros({out, in, 1, 1}), out));
  ConvSpec square = spec_;
  square.bias = true;
  kxk_ = register_module(branch_name(kKxk), std::make_shared<detail::BranchKxk>(nested(square, kxk_bias), out));
  if (b[k1xK]) hor_ = register_module(branch_name(k1xK), std::make_shared<detail::Branch1x1>(zeros({out, in, 1, kw}), out));
  if (b[kKx1]) ver_ = register_module(branch_name(kKx1), std::make_shared<detail::Branch1x1>(zeros({out, in, kh, 1}), out));
  if (b[kIdentity]) id_ = register_module(branch_name(kIdentity), sgs::BatchNorm2d(out));
  for (int i = 0; i < kBranches; ++i)
    if (auto* m = branch_module(i)) m->to(opts.device(), opts.dtype().toScalarType());
  branches_ = b;
  branches_[kKxk] = true;
  grown_ = true;
}

void GrowableConv::drop_modules() {
  for (int b = 0; b < kBranches; ++b)
    if (branch_module(b) != nullptr) unregister_module(branch_name(b));
  one_ = hor_ = ver_ = nullptr;
  one_kxk_ = nullptr;
  avg_ = nullptr;
  kxk_ = nullptr;
  id_ = nullptr;
  branches_ = {};
  grown_ = false;
}

torch::nn::Module* GrowableConv::branch_module(int b) const {
  switch (b) {
    case k1x1: return one_.get();
    case k1x1Kxk: return one_kxk_.get();
    case k1x1Avg: return avg_.get();
    case kKxk: return kxk_.get();
    case k1xK: return hor_.get();
    case kKx1: return ver_.get();
    default: return id_ ? id_.ptr().get() : nullptr;
  }
}

torch::Tensor GrowableConv::forward(torch::Tensor x) {
  capture(x);
  const std::vector<int64_t> stride{spec_.stride[0], spec_.stride[1]};
  const std::vector<int64_t> padding{spec_.padding[0], spec_.padding[1]};
  if (!grown_) return torch::conv2d(x, weight_, bias_, stride, padding, {1, 1}, spec_.groups);
  auto y = kxk_->bn(kxk_->conv->forward(x));
  if (one_) y = y + one_->bn(torch::conv2d(x, one_->conv->weight, {}, stride));
  if (one_kxk_) {
    auto& bn1 = one_kxk_->bn1->bn;
    auto mid = bn1(torch::conv2d(x, one_kxk_->conv1->weight));
    mid = br::pad_with_values(mid, br::bn_scale_shift(bn1).second, spec_.padding);
    y = y + one_kxk_->bn2(one_kxk_->conv2->forward(mid));
  }
  if (avg_) {
    const std::vector<int64_t> kernel{spec_.kernel[0], spec_.kernel[1]};
    torch::Tensor a;
    if (avg_->conv) {
      auto& bn = avg_->bn->bn;
      a = bn(torch::conv2d(x, avg_->conv->weight));
      a = torch::avg_pool2d(br::pad_with_values(a, br::bn_scale_shift(bn).second, spec_.padding), kernel, stride);
    } else {
      a = torch::avg_pool2d(x, kernel, stride, padding);
    }
    y = y + avg_->avgbn(a);
  }
  if (hor_) y = y + hor_->bn(torch::conv2d(x, hor_->conv->weight, {}, stride, std::vector<int64_t>{0, spec_.padding[1]}));
  if (ver_) y = y + ver_->bn(torch::conv2d(x, ver_->conv->weight, {}, stride, std::vector<int64_t>{spec_.padding[0], 0}));
  if (id_) y = y + id_(x);
  return y;
}

std::pair<torch::Tensor, torch::Tensor> GrowableConv::fused_branches(bool with_kxk) {
  torch::NoGradGuard no_grad;
  const auto& k = spec_.kernel;
  const int64_t out = spec_.out_channels;
  torch::Tensor w = torch::zeros({out, spec_.in_channels / spec_.groups, k[0], k[1]}, options());
  torch::Tensor b = torch::zeros({out}, w.options());
  auto add = [&](const std::pair<torch::Tensor, torch::Tensor>& wb) {
    w = w + br::pad_to_centre(wb.first, k);
    b = b + wb.second;
  };
  if (with_kxk) {
    auto [wc, bc] = kxk_->conv->fused();
    add(br::fold_bn(wc, bc, kxk_->bn));
  }
  if (one_) add(br::fold_bn(one_->conv->weight, {}, one_->bn));
  if (one_kxk_) {
    // 1x1 [m, i] (BN folded) then KxK [o, m, kh, kw] (its BN folded).
    auto [wi, bi] = br::fold_bn(one_kxk_->conv1->weight, {}, one_kxk_->bn1->bn);
    auto [w2, b2] = one_kxk_->conv2->fused();
    auto [wk, bk] = br::fold_bn(w2, b2, one_kxk_->bn2);
    add({torch::einsum("omyx,mi->oiyx", {wk, wi.flatten(1)}), bk + torch::einsum("omyx,m->o", {wk, bi})});
  }
  if (avg_) {
    const double area = static_cast<double>(k[0] * k[1]);
    if (avg_->conv) {
      auto [wa, ba] = br::fold_bn(avg_->conv->weight, {}, avg_->bn->bn);
      add(br::fold_bn((wa / area).expand({-1, -1, k[0], k[1]}), ba, avg_->avgbn));
    } else {  // pooling alone: 1 / (kh kw) on each channel's own input
      auto kernel = torch::zeros_like(w);
      auto rows = torch::arange(out, torch::kLong);
      kernel.index_put_({rows, rows.remainder(w.size(1))}, 1.0 / area);
      add(br::fold_bn(kernel, {}, avg_->avgbn));
    }
  }
  if (hor_) add(br::fold_bn(hor_->conv->weight, {}, hor_->bn));
  if (ver_) add(br::fold_bn(ver_->conv->weight, {}, ver_->bn));
  if (id_) {
    auto eye = torch::eye(out, w.options()).view({out, out, 1, 1});
    add(br::fold_bn(eye, {}, id_));
  }
  return {w, b};
}

std::pair<torch::Tensor, torch::Tensor> GrowableConv::fused() {
  if (grown_) return fused_branches(/*with_kxk=*/true);
  torch::NoGradGuard no_grad;
  auto w = weight_.detach().clone();
  auto b = bias_.defined() ? bias_.detach().clone() : torch::zeros({spec_.out_channels}, w.options());
  return {w, b};
}

Branches GrowableConv::growth_branches() const {
  Branches b;
  b.fill(true);
  const bool same_window = spec_.padding[0] == spec_.kernel[0] / 2 && spec_.padding[1] == spec_.kernel[1] / 2;
  if (!same_window) b[k1x1] = b[k1xK] = b[kKx1] = b[kIdentity] = false;
  const bool same_map =
      spec_.in_channels == spec_.out_channels && spec_.stride[0] == 1 && spec_.stride[1] == 1;
  if (!same_map) b[kIdentity] = false;
  return b;
}

void GrowableConv::grow(GrowContext& ctx) {
  TORCH_CHECK(!grown_, "dyrep: ", path_, " has grown already");
  torch::Tensor w = weight_, b = bias_;
  parameters_.erase("weight");
  if (b.defined()) parameters_.erase("bias");
  // The KxK conv takes over the bias parameter itself (DyRep: its optimizer
  // state carries over); its value is copied first, as reset() zeroes it.
  auto kxk_bias = b.defined() ? b : torch::zeros({spec_.out_channels}, w.options());
  const torch::Tensor bias_value = b.defined() ? b.detach().clone() : torch::Tensor();
  make_block(growth_branches(), kxk_bias, w.options());
  weight_ = bias_ = torch::Tensor();
  reset(w, bias_value, Branches{}, /*recal=*/true, ctx);
}

void GrowableConv::reset(const torch::Tensor& weight, const torch::Tensor& bias, const Branches& keep, bool recal,
                         GrowContext& ctx) {
  torch::NoGradGuard no_grad;
  init_branch(*kxk_, /*zero=*/true, 1.0, ctx.generator);
  for (int b = 0; b < kBranches; ++b)
    if (b != kKxk && branches_[b] && !keep[b]) init_branch(*branch_module(b), false, ctx.gamma, ctx.generator);
  auto& square = kxk_->conv;
  if (recal && ctx.recalibrate && !square->grown()) {
    // The new branches' statistics measured with the old kernel in place.
    square->weight().copy_(weight);
    if (bias.defined()) square->bias().copy_(bias);
    ctx.recalibrate(*this);
    kxk_->bn->reset_running_stats();
  }
  auto [cw, cb] = fused_branches(/*with_kxk=*/false);
  // The KxK BatchNorm (scale 1, shift 0, statistics reset) divides by
  // sqrt(1 + eps) in eval mode; DyRep's code leaves that factor (a change of
  // about 5e-6 relative), here it is divided out so the function is kept.
  const double eps_factor = std::sqrt(1.0 + kxk_->bn->options.eps());
  auto nw = (weight.detach() - cw) * eps_factor;
  auto nb = ((bias.defined() ? bias.detach() : torch::zeros_like(cb)) - cb) * eps_factor;
  kxk_->bn->weight.fill_(1.0);
  kxk_->bn->bias.zero_();
  if (!square->grown()) {
    square->weight().copy_(nw);
    square->bias().copy_(nb);
  } else {
    square->reset(nw, nb, Branches{}, /*recal=*/false, ctx);
  }
}

std::array<double, kBranches> GrowableConv::branch_weights() const {
  std::array<double, kBranches> w;
  w.fill(-1.0);
  if (!grown_) return w;
  const double kxk = mean_abs(kxk_->bn->weight);
  w[kKxk] = 1.0;
  if (one_) w[k1x1] = mean_abs(one_->bn->weight) / kxk;
  if (one_kxk_) w[k1x1Kxk] = mean_abs(one_kxk_->bn2->weight) / kxk;
  if (avg_) w[k1x1Avg] = mean_abs(avg_->avgbn->weight) / kxk;
  if (hor_) w[k1xK] = mean_abs(hor_->bn->weight) / kxk;
  if (ver_) w[kKx1] = mean_abs(ver_->bn->weight) / kxk;
  if (id_) w[kIdentity] = mean_abs(id_->weight) / kxk;
  return w;
}

void GrowableConv::cut(const Branches& keep, GrowContext& ctx) {
  TORCH_CHECK(grown_, "dyrep: ", path_, " has no branches to cut");
  auto [w, b] = fused();
  for (int i = 0; i < kBranches; ++i) {
    if (i == kKxk || !branches_[i] || keep[i]) continue;
    unregister_module(branch_name(i));
    branches_[i] = false;
    switch (i) {
      case k1x1: one_ = nullptr; break;
      case k1x1Kxk: one_kxk_ = nullptr; break;
      case k1x1Avg: avg_ = nullptr; break;
      case k1xK: hor_ = nullptr; break;
      case kKx1: ver_ = nullptr; break;
      default: id_ = nullptr; break;
    }
  }
  bool others = false;
  for (int i = 0; i < kBranches; ++i) others = others || (i != kKxk && branches_[i]);
  if (!others) {  // DyRep's _cut: one conv with bias holding the fused kernel
    drop_modules();
    make_plain(w, b);
    return;
  }
  reset(w, b, branches_, /*recal=*/false, ctx);  // the branches left keep their weights
}

std::vector<std::pair<std::string, std::shared_ptr<GrowableConv>>> GrowableConv::children() const {
  std::vector<std::pair<std::string, std::shared_ptr<GrowableConv>>> out;
  if (!grown_) return out;
  out.emplace_back(std::string(branch_name(kKxk)) + ".conv", kxk_->conv);
  if (one_kxk_) out.emplace_back(std::string(branch_name(k1x1Kxk)) + ".conv2", one_kxk_->conv2);
  return out;
}

std::string GrowableConv::structure() const {
  if (!grown_) return spec_.bias ? "p1" : "p0";
  std::string s = "g";
  for (bool b : branches_) s += b ? '1' : '0';
  for (const auto& [name, child] : children()) s += "[" + child->structure() + "]";
  return s;
}

void GrowableConv::restore(const std::string& text) {
  const size_t end = restore_from(text, 0);
  if (end != text.size())
    throw std::runtime_error("dyrep: graph '" + text + "': unexpected text after position " + std::to_string(end));
}

size_t GrowableConv::restore_from(const std::string& text, size_t at) {
  auto bad = [&](const std::string& why) {
    return std::runtime_error("dyrep: graph '" + text + "' at position " + std::to_string(at) + ": " + why);
  };
  if (at >= text.size()) throw bad("ends early");
  if (text[at] == 'p') {
    if (at + 1 >= text.size() || (text[at + 1] != '0' && text[at + 1] != '1')) throw bad("expected p0 or p1");
    const bool with_bias = text[at + 1] == '1';
    const auto opts = options();
    if (grown_) drop_modules();
    if (weight_.defined()) parameters_.erase("weight");
    if (bias_.defined()) parameters_.erase("bias");
    make_plain(torch::zeros({spec_.out_channels, spec_.in_channels / spec_.groups, spec_.kernel[0], spec_.kernel[1]}, opts),
               with_bias ? torch::zeros({spec_.out_channels}, opts) : torch::Tensor());
    return at + 2;
  }
  if (text[at] != 'g') throw bad("expected p or g");
  if (depth_ >= 2) throw bad("a block nested deeper than DyRep grows");
  if (at + 1 + kBranches > text.size()) throw bad("expected 7 branch flags");
  Branches b{};
  const Branches allowed = growth_branches();
  for (int i = 0; i < kBranches; ++i) {
    const char c = text[at + 1 + static_cast<size_t>(i)];
    if (c != '0' && c != '1') throw bad("expected 7 branch flags");
    b[i] = c == '1';
    if (b[i] && !allowed[i]) throw bad(std::string(branch_name(i)) + " cannot grow on this conv");
  }
  if (!b[kKxk]) throw bad("a block without its KxK branch");
  at += 1 + kBranches;
  const auto opts = options();
  if (grown_) drop_modules();
  if (weight_.defined()) parameters_.erase("weight");
  if (bias_.defined()) parameters_.erase("bias");
  weight_ = bias_ = torch::Tensor();
  make_block(b, torch::zeros({spec_.out_channels}, opts), opts);
  for (const auto& [name, child] : children()) {
    if (at >= text.size() || text[at] != '[') throw bad("expected [");
    at = child->restore_from(text, at + 1);
    if (at >= text.size() || text[at] != ']') throw bad("expected ]");
    ++at;
  }
  return at;
}

}  // namespace sgs::dyrep
