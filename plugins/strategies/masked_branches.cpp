// masked_branches: the N-branch reparameterization of Lemma 1 (paper section
// 3.2, docs/method.md 2). Every spatial conv becomes N convs of the full kernel
// size with binary masks M_n, no normalisation inside, summed:
//   y = sum_n (M_n ⊙ W_n) * x        fused: W = sum_n M_n ⊙ W_n.
// Training it with SGD (momentum, weight decay) gives step for step the merged
// weights of the plain conv trained with the raw scaling G = sum_n M_n
// (strategy fixed, normalize false). Initialisation: the base weight is drawn
// exactly as the plain conv draws it (nothing else is drawn), and every kernel
// position is given to the first branch whose mask covers it, the others 0,
// so that sum_n M_n ⊙ W_n(0) = W(0).
// The N branches run as one conv with N x out channels (branch-interleaved so
// that groups stay intact), summed over the branches.
//   "masks": "acb_masks"                       KxK, 1xK, Kx1 (full, centre row, centre column)
//   "masks": [[[1,1,1],[1,1,1],[1,1,1]], ...]  any 0/1 masks; a conv uses those of its kernel size
#include "common/json_matrix.h"
#include "common/branches.h"

#include <sgs/errors.h>
#include <sgs/strategy.h>

#include <torch/torch.h>

namespace {

namespace br = sgs::branches;
const char* const kPreset = "acb_masks";

// N masks [N, kh, kw] of 0/1 (float32).
torch::Tensor acb_masks(const std::array<int64_t, 2>& k) {
  auto m = torch::zeros({3, k[0], k[1]});
  m[0].fill_(1);
  m[1][k[0] / 2].fill_(1);
  m.select(0, 2).select(1, k[1] / 2).fill_(1);
  return m;
}

class MaskedConv : public sgs::ConvBlock {
 public:
  MaskedConv(const sgs::ConvSpec& spec, const torch::Tensor& masks) : ConvBlock(spec) {
    auto [base, b] = sgs::init_conv(spec_);
    torch::NoGradGuard no_grad;
    const int64_t n = masks.size(0);
    // Position (y, x) goes to the first branch whose mask has it.
    auto first = masks * (1 - masks).cumprod(0).roll(1, 0).index_put_({0}, 1.0);
    auto w = base.unsqueeze(0) * first.view({n, 1, 1, spec_.kernel[0], spec_.kernel[1]});
    weight = register_parameter("weight", w.contiguous());
    this->masks = register_buffer("masks", masks.view({n, 1, 1, spec_.kernel[0], spec_.kernel[1]}).clone());
    if (b.defined()) bias = register_parameter("bias", b);
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    const int64_t n = weight.size(0), out = spec_.out_channels;
    // [N, O, I, kh, kw] -> [O, N, I, kh, kw]: channel o * N + n stays in o's group.
    auto w = (weight * masks).transpose(0, 1).reshape({out * n, weight.size(2), spec_.kernel[0], spec_.kernel[1]});
    auto y = torch::conv2d(x, w, {}, {spec_.stride[0], spec_.stride[1]}, {spec_.padding[0], spec_.padding[1]},
                           {spec_.dilation[0], spec_.dilation[1]}, spec_.groups);
    y = y.view({y.size(0), out, n, y.size(2), y.size(3)}).sum(2);
    return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    auto w = (weight * masks).sum(0);
    auto b = bias.defined() ? bias.detach().clone() : torch::zeros({spec_.out_channels}, w.options());
    return {w, b};
  }
  bool fused_has_bias() const override { return spec_.bias; }

  torch::Tensor weight, masks, bias;
};

class MaskedFactory : public sgs::ConvFactory {
 public:
  MaskedFactory(bool preset, std::vector<torch::Tensor> masks, std::string where)
      : preset_(preset), masks_(std::move(masks)), where_(std::move(where)) {}

  std::shared_ptr<sgs::ConvBlock> make(const sgs::ConvSpec& spec) override {
    if (!spec.spatial()) return ConvFactory::make(spec);
    const auto& k = spec.kernel;
    if (preset_) {
      if (k[0] % 2 == 0 || k[1] % 2 == 0)
        throw sgs::ConfigError(where_ + ": " + kPreset + " needs odd kernel sizes, got a " + br::kernel_text(k) +
                               " conv (give the masks as a list)");
      return std::make_shared<MaskedConv>(spec, acb_masks(k));
    }
    std::vector<torch::Tensor> fit;
    std::vector<std::string> sizes;
    for (const auto& m : masks_) {
      if (m.size(0) == k[0] && m.size(1) == k[1]) fit.push_back(m);
      sizes.push_back(br::kernel_text({m.size(0), m.size(1)}));
    }
    if (fit.empty()) {
      std::sort(sizes.begin(), sizes.end());
      sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
      throw sgs::ConfigError(where_ + ": no " + br::kernel_text(k) + " mask for a " + br::kernel_text(k) +
                             " conv (masks given: " + sgs::join(sizes, ", ") + ")");
    }
    return std::make_shared<MaskedConv>(spec, torch::stack(fit));
  }

 private:
  bool preset_;
  std::vector<torch::Tensor> masks_;
  std::string where_;
};

struct MaskedBranchesOptions : sgs::PluginOptions {
  sgs::Json masks = kPreset;
  static void declare(sgs::Declare<MaskedBranchesOptions>& d) {
    d.key(&MaskedBranchesOptions::masks, "masks",
          "\"acb_masks\" (KxK, 1xK, Kx1) or a list of kh x kw 0/1 masks; a conv uses those of its kernel size");
  }
};

class MaskedBranches : public sgs::Strategy {
 public:
  explicit MaskedBranches(const MaskedBranchesOptions& o) : where_(o.where("masks")) {
    const auto& m = o.masks;
    if (m.is_string()) {
      if (m.get<std::string>() != kPreset)
        throw sgs::ConfigError(where_ + ": unknown preset '" + m.get<std::string>() + "' (known: " + kPreset +
                               "; or give a list of 0/1 matrices)");
      preset_ = true;
      return;
    }
    if (!m.is_array() || m.empty())
      throw sgs::ConfigError(where_ + ": expected \"" + kPreset + "\" or a non-empty list of 0/1 matrices");
    for (size_t n = 0; n < m.size(); ++n) masks_.push_back(parse_mask(m[n], where_ + "[" + std::to_string(n) + "]"));
    // The union of the masks of each size must cover the kernel: W(0) is given to the branches.
    std::map<std::pair<int64_t, int64_t>, torch::Tensor> cover;
    for (const auto& mask : masks_) {
      auto& c = cover[{mask.size(0), mask.size(1)}];
      c = c.defined() ? torch::maximum(c, mask) : mask;
    }
    for (const auto& [size, c] : cover) {
      auto holes = (c == 0).nonzero();
      if (holes.size(0) > 0)
        throw sgs::ConfigError(where_ + ": the " + br::kernel_text({size.first, size.second}) +
                               " masks leave kernel position [" + std::to_string(holes[0][0].item<int64_t>()) + "][" +
                               std::to_string(holes[0][1].item<int64_t>()) +
                               "] uncovered (their union must cover the kernel)");
    }
  }

  std::shared_ptr<sgs::ConvFactory> conv_factory() override {
    return std::make_shared<MaskedFactory>(preset_, masks_, where_);
  }

 private:
  static torch::Tensor parse_mask(const sgs::Json& m, const std::string& path) {
    auto t = sgs::read_json_matrix(m, path, "0/1", [](const sgs::Json& v, const std::string& at) {
                 if (!v.is_number() || (v.get<double>() != 0 && v.get<double>() != 1))
                   throw sgs::ConfigError(at + ": expected 0 or 1, got " + sgs::excerpt(v));
               }).to(torch::kFloat32);
    const int64_t rows = t.size(0), cols = t.size(1);
    if (rows < 2 || cols < 2)
      throw sgs::ConfigError(path + ": a " + std::to_string(rows) + "x" + std::to_string(cols) +
                             " mask; masks have the full kernel size (at least 2x2; 1xK branches are masks such as "
                             "[[0,0,0],[1,1,1],[0,0,0]])");
    if (!(t > 0).any().item<bool>()) throw sgs::ConfigError(path + ": an all-zero mask (a branch that never acts)");
    return t;
  }

  std::string where_;
  bool preset_ = false;
  std::vector<torch::Tensor> masks_;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, masked_branches,
             "Lemma 1's N parallel full-size convs with binary masks, summed (no normalisation inside)",
             MaskedBranchesOptions, [](const MaskedBranchesOptions& o) { return std::make_unique<MaskedBranches>(o); });
