// The conv that DyRep (Huang et al. 2022) grows: plain until the strategy
// picks it, then DyRep's own Diverse Branch Block of up to seven branches
// (hunto/image_classification_sota, lib/models/utils/dbb/dbb_block.py), each
// ending in its BatchNorm, summed; the model's BatchNorm after it stays:
//   dbb_1x1      BN(W * x)                        1x1, stride s
//   dbb_1x1_kxk  BN(conv2(pad_b(BN(W1 * x))))     1x1, then KxK with padding 0 (conv2: growable)
//   dbb_1x1_avg  BN(avgpool(pad_b(BN(W * x))))    1x1, then KxK average pooling, stride s
//   dbb_kxk      BN(conv(x))                      the KxK conv with bias (growable)
//   dbb_1xk      BN(W * x)                        1xK, padding (0, p)
//   dbb_kx1      BN(W * x)                        Kx1, padding (p, 0)
//   dbb_id       BN(x)                            only where in = out and stride 1
// pad_b pads with what the inner BN maps a zero to (running statistics), so
// that each pair is one KxK conv over the zero-padded input in eval mode.
// Where the conv's padding is not K/2 the map shapes differ and only
// 1x1-KxK, 1x1-avg and KxK are grown (DyRep's `dbb_branches_unequal`).
// A growth sets the new branches' weights to He normal (fan-out), their last
// BN's scale to `gamma`, the others to 1, optionally recalibrates the block's
// BNs on training batches, and sets the KxK conv to the old kernel minus what
// the other branches compute (`_reset_dbb`; times sqrt(1 + eps), undoing
// the KxK BatchNorm's eps, which DyRep leaves): the eval-mode function is kept.
// Paths follow DyRep's modules (x.dbb_kxk.conv.weight, x.dbb_1x1_kxk.bn1.bn.weight).
#pragma once

#include <sgs/conv.h>
#include <sgs/norm.h>

#include <torch/nn/module.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sgs::dyrep {

// DyRep's branch order.
enum Branch : int { k1x1 = 0, k1x1Kxk = 1, k1x1Avg = 2, kKxk = 3, k1xK = 4, kKx1 = 5, kIdentity = 6 };
constexpr int kBranches = 7;
using Branches = std::array<bool, kBranches>;
// "dbb_1x1", "dbb_1x1_kxk", ...: the module name of branch b.
const char* branch_name(int b);

// What a growth or cut draws from and calls.
struct GrowContext {
  torch::Generator generator;  // a CPU generator: the new branches' weights
  double gamma = 0.01;         // the scale of a new branch's last BatchNorm
  // DyRep's recal_bn: re-estimates the running statistics of every
  // BatchNorm in the block on training batches; null: no recalibration.
  std::function<void(torch::nn::Module& block)> recalibrate;
};

namespace detail {
struct Branch1x1;
struct Branch1x1Kxk;
struct Branch1x1Avg;
struct BranchKxk;
}  // namespace detail

class GrowableConv : public ConvBlock {
 public:
  // Plain, its weight (and bias where spec.bias) drawn as spec.init says.
  GrowableConv(const ConvSpec& spec, int depth);
  // Plain, with these tensors as its parameters (bias may be undefined).
  GrowableConv(const ConvSpec& spec, int depth, torch::Tensor weight, torch::Tensor bias);

  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor scalable_weight() override { return grown_ ? torch::Tensor() : weight_; }
  std::pair<torch::Tensor, torch::Tensor> fused() override;
  bool fused_has_bias() const override { return grown_ || spec_.bias; }

  bool grown() const { return grown_; }
  const Branches& branches() const { return branches_; }
  // 0 for a model's conv, 1 for a conv inside its block, ...: DyRep grows
  // only convs of depth < 2.
  int depth() const { return depth_; }
  // The weight and bias of a plain conv (undefined once grown; the bias
  // also where the conv has none).
  const torch::Tensor& weight() const { return weight_; }
  const torch::Tensor& bias() const { return bias_; }

  // The branches DyRep grows this conv into (above).
  Branches growth_branches() const;
  // Plain -> block, the eval-mode function kept (see above).
  void grow(GrowContext& ctx);
  // DyRep's branch weights: mean |gamma| of each active branch's last BN over
  // that of the KxK branch's BN; 1 for the KxK branch, -1 where inactive.
  std::array<double, kBranches> branch_weights() const;
  // Removes every active branch b with !keep[b] (never the KxK one), the
  // eval-mode function kept: the KxK conv becomes the fused kernel minus the
  // branches kept (their weights stay). With only the KxK left the block
  // becomes a plain conv with bias holding the fused kernel.
  void cut(const Branches& keep, GrowContext& ctx);
  // The growable convs inside a block: ("dbb_kxk.conv", ...), ("dbb_1x1_kxk.conv2", ...).
  std::vector<std::pair<std::string, std::shared_ptr<GrowableConv>>> children() const;

  // The graph as text ("p0": plain, "p1": plain with bias, "g1111111[..][..]":
  // a block, its branches and its growable convs) and its rebuilding, with
  // placeholder weights that a checkpoint's then overwrite. Throws
  // std::runtime_error on text that is not such a graph.
  std::string structure() const;
  void restore(const std::string& text);

 private:
  void make_plain(torch::Tensor weight, torch::Tensor bias);
  void make_block(const Branches& branches, torch::Tensor kxk_bias, const torch::TensorOptions& opts);
  void drop_modules();
  // DyRep's _reset_dbb: `keep` branches untouched, the others re-drawn, the
  // KxK one set to (weight, bias) minus them; `recal` on a growth.
  void reset(const torch::Tensor& weight, const torch::Tensor& bias, const Branches& keep, bool recal,
             GrowContext& ctx);
  // The eval-mode kernel and bias of the active branches, with or without the KxK one.
  std::pair<torch::Tensor, torch::Tensor> fused_branches(bool with_kxk);
  size_t restore_from(const std::string& text, size_t at);
  torch::nn::Module* branch_module(int b) const;
  torch::TensorOptions options() const;  // of this conv's parameters

  int depth_ = 0;
  bool grown_ = false;
  Branches branches_{};
  torch::Tensor weight_, bias_;  // plain
  std::shared_ptr<detail::Branch1x1> one_, hor_, ver_;
  std::shared_ptr<detail::Branch1x1Kxk> one_kxk_;
  std::shared_ptr<detail::Branch1x1Avg> avg_;
  std::shared_ptr<detail::BranchKxk> kxk_;
  sgs::BatchNorm2d id_{nullptr};
};

}  // namespace sgs::dyrep
