// repopt: RepOpt (Ding et al. 2023, Re-parameterizing Your Optimizers rather
// than Architectures; DingXiaoH/RepOptimizers; docs/method.md 5). Two runs:
//
// mode search (the authors' Hyper-Search, "hs"): every 3x3 conv (others
// stay plain: RepOpt is defined for 3x3) becomes the authors' LinearAddBlock, with the model's BatchNorm after the
// sum:
//   y = s_conv ⊙ (W * x) + s_1x1 ⊙ (K1 * x) + s_id ⊙ x
// s_* per output channel and trained with the weights; the identity only
// where the block keeps its input's shape (in = out, stride 1, padding K/2).
// The scales start as RepOptVGG's: 1 for a stage's first block, sqrt(2/i)
// for its i-th (a stage starts at each block without an identity), s_id 1.
// mode csla: the same block with s_conv and s_1x1 held at those values (s_id
// still trains, as the authors' CSLA block).
//
// mode target: plain convs, trained with the scales of a search run
// (scales_from: its directory, "{seed}" replaced by this run's seed) as the
// authors' RepOptimizer does it:
//  - each KxK weight starts as W = W3 ⊙ s_conv + pad(K1 ⊙ s_1x1) + I ⊙ s_id,
//    W3 the conv's own draw, K1 a fresh 1x1 draw, I the identity kernel
//    (s_id = 1 with identity_scales_for_reinit false);
//  - its gradient is multiplied by M = s_conv^p + (s_1x1^p at the centre)
//    + (1 at [c, c, centre] where there is an identity), p = 2 with sgd
//    (RepOptimizerSGD: weight decay added unscaled after), p = 1 with adamw
//    (RepOptimizerAdamW: the moments see M ⊙ g, the step is scaled by M
//    once more, the decoupled decay is not):
//      W <- B + M ⊙ (W_adamw - B),  B = W_before (1 - lr wd).
// Other optimizers are refused. The scales are logged per layer in run.h5
// (table "repopt": row 0 at the start, row e after epoch e; a target run
// logs the scales it trains with as row 0).
#include "common/branches.h"

#include <sgs/communicator.h>
#include <sgs/errors.h>
#include <sgs/run_file.h>
#include <sgs/run_log.h>
#include <sgs/strategy.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace {

namespace br = sgs::branches;

struct RepoptOptions : br::BlockOptions {
  std::string mode = "search";
  std::string scales_from;
  bool identity_scales_for_reinit = true;
  static void declare(sgs::Declare<RepoptOptions>& d) {
    d.choice(&RepoptOptions::mode, "mode", {"search", "csla", "target"},
             "search: LinearAddBlocks whose per-channel scales train with the weights (the authors' Hyper-Search); "
             "csla: the same blocks, scales held at their initial values; target: plain convs trained with the "
             "scales of a search run (scales_from) through gradient multipliers (RepOptimizer)");
    d.key(&RepoptOptions::scales_from, "scales_from",
          "mode target: the directory of a completed search run, whose last scales are used; {seed} is replaced "
          "by this run's seed")
        // Like the seed: each target follows its own search run (in a suite, the one of its seed), so
        // sgs report groups targets that differ only in it.
        .specific_to_run();
    d.key(&RepoptOptions::identity_scales_for_reinit, "identity_scales_for_reinit",
          "mode target: start the weight with the identity scaled by the searched s_id (false: by 1)");
    d.choice(&RepoptOptions::init, "init", {"pytorch", "model"},
             "how the KxK and 1x1 kernels are drawn (search: the block's convs; target: W3 and K1 of the start): "
             "pytorch = nn.Conv2d's default, as the authors; model = as the model draws its plain convs");
  }
  // RepOpt is defined for 3x3 kernels (its multipliers' centre, padding 1);
  // other convs (1x1, a 7x7 stem) stay plain in both modes.
  static bool converts(const sgs::ConvSpec& spec) { return spec.kernel[0] == 3 && spec.kernel[1] == 3; }
};

// Per output channel; `identity` undefined where the block has none.
struct Scales {
  torch::Tensor conv, one, identity;
};

// W ⊙ s_conv + pad(K1 ⊙ s_1x1) + I ⊙ s_id: the one kernel of the block.
torch::Tensor equivalent_kernel(const torch::Tensor& w, const torch::Tensor& k1, const Scales& s,
                                const sgs::ConvSpec& spec) {
  auto out = w * s.conv.view({-1, 1, 1, 1}) + br::pad_to_centre(k1 * s.one.view({-1, 1, 1, 1}), spec.kernel);
  if (s.identity.defined()) out = out + br::identity_kernel(spec, w.options(), false) * s.identity.view({-1, 1, 1, 1});
  return out;
}

class RepoptConv : public sgs::ConvBlock {
 public:
  RepoptConv(const sgs::ConvSpec& spec, const RepoptOptions& o, double scale_init, bool train_scales)
      : ConvBlock(spec) {
    br::require_supported(spec_, "repopt", /*single_group=*/false);
    const int64_t in = spec_.in_channels, out = spec_.out_channels;
    const sgs::ConvSpec drawn = o.drawn(spec_);
    conv = register_parameter("conv", sgs::init_conv(drawn).first);
    conv_1x1 = register_parameter("conv_1x1", sgs::init_conv(br::branch_spec(drawn, in, out, {1, 1})).first);
    scale_conv = register_parameter("scale_conv", torch::full({out}, scale_init), train_scales);
    scale_1x1 = register_parameter("scale_1x1", torch::full({out}, scale_init), train_scales);
    // Trained in mode csla too, as the authors' (the +1 of M at [c, c,
    // centre] in mode target). Held as [out, 1, 1, 1]: the optimizers' decay
    // groups then decay it with the weights, as the authors' set_weight_decay
    // decays identity.weight and no other 1-D parameter.
    if (br::has_identity(spec_)) scale_identity = register_parameter("scale_identity", torch::ones({out, 1, 1, 1}));
  }

  torch::Tensor forward(torch::Tensor x) override {
    capture(x);
    auto y = torch::conv2d(x, conv, {}, {spec_.stride[0], spec_.stride[1]}, {spec_.padding[0], spec_.padding[1]},
                           {1, 1}, spec_.groups) *
             scale_conv.view({1, -1, 1, 1});
    y = y + br::centred_conv(x, conv_1x1, spec_) * scale_1x1.view({1, -1, 1, 1});
    return scale_identity.defined() ? y + x * scale_identity.view({1, -1, 1, 1}) : y;
  }

  Scales scales() const {
    return {scale_conv.detach(), scale_1x1.detach(),
            scale_identity.defined() ? scale_identity.detach().view({-1}) : torch::Tensor()};
  }

  std::pair<torch::Tensor, torch::Tensor> fused() override {
    torch::NoGradGuard no_grad;
    auto w = equivalent_kernel(conv, conv_1x1, scales(), spec_);
    return {w, torch::zeros({spec_.out_channels}, w.options())};
  }
  bool fused_has_bias() const override { return false; }

  torch::Tensor conv, conv_1x1, scale_conv, scale_1x1, scale_identity;
};

// A layer's row of the table: the three scales, NaN where there is no identity.
std::vector<torch::Tensor> scale_row(const Scales& s, int64_t epoch) {
  auto cpu = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  auto identity = s.identity.defined() ? cpu(s.identity) : torch::full({s.conv.size(0)}, NAN, torch::kFloat64);
  return {cpu(s.conv), cpu(s.one), identity, torch::scalar_tensor(epoch, torch::kInt64)};
}

// Archive keys may not contain '.', module paths do.
std::string archive_key(const std::string& what, std::string layer) {
  std::replace(layer.begin(), layer.end(), '.', '|');
  return "repopt|" + what + "|" + layer;
}

class Repopt : public sgs::Strategy {
 public:
  explicit Repopt(RepoptOptions o) : o_(std::move(o)), where_(o_.where("scales_from")) {
    if (o_.mode == "target" && o_.scales_from.empty())
      throw sgs::ConfigError(where_ + ": mode target needs the directory of a search run");
    if (o_.mode != "target" && !o_.scales_from.empty())
      throw sgs::ConfigError(where_ + ": only mode target reads scales (mode is '" + o_.mode + "')");
  }

  std::shared_ptr<sgs::ConvFactory> conv_factory() override {
    if (o_.mode == "target") return nullptr;
    return std::make_shared<Factory>(o_);
  }

  std::vector<sgs::LogTable> log_tables() const override {
    using Type = sgs::LogColumn::Type;
    constexpr int64_t any = sgs::LogColumn::kAnySize;
    sgs::LogTable t{"repopt", sgs::LogTable::Scope::kLayer, "scales_epoch", {}};
    t.columns = {{"scale_conv", Type::kFloat64, {any}},
                 {"scale_1x1", Type::kFloat64, {any}},
                 {"scale_identity", Type::kFloat64, {any}},
                 {"scales_epoch", Type::kInt32, {}}};
    t.rows = sgs::LogTable::Rows::kAtEpochEnd;
    return {t};
  }

  void attach(sgs::StrategyContext& ctx) override {
    convs_ = ctx.convs;
    if (o_.mode != "target") return;
    const int power = optimizer_power(ctx);
    if (scales_.empty()) scales_ = read_scales(ctx);
    layers_.clear();
    for (auto& block : convs_) {
      auto it = scales_.find(block->path());
      if (it == scales_.end()) continue;
      const auto& spec = block->spec();
      auto w = block->scalable_weight();
      Scales s{it->second.conv.to(w.options()), it->second.one.to(w.options()),
               it->second.identity.defined() ? it->second.identity.to(w.options()) : torch::Tensor()};
      if (!reinitialized_) reinitialize(*block, s);
      // M = s_conv^p + s_1x1^p at the centre + 1 at [c, c, centre].
      auto m = s.conv.pow(power).view({-1, 1, 1, 1}).expand_as(w).clone();
      m = m + br::pad_to_centre(torch::ones({spec.out_channels, spec.in_channels / spec.groups, 1, 1}, w.options()) *
                                    s.one.pow(power).view({-1, 1, 1, 1}),
                                spec.kernel);
      if (s.identity.defined()) m = m + br::identity_kernel(spec, w.options(), false);
      layers_.push_back({block, m, {}});
    }
    if (!reinitialized_ && ctx.comm) {  // every rank starts from rank 0's draw
      torch::NoGradGuard no_grad;
      for (auto& l : layers_) {
        auto w = l.block->scalable_weight().detach();
        ctx.comm->broadcast(w, 0);
      }
    }
    reinitialized_ = true;
  }

  void on_epoch_begin(sgs::StrategyContext& ctx) override {
    if (ctx.epochs_done == 0 && ctx.step == 0) log_scales(ctx);
  }
  void on_epoch_end(sgs::StrategyContext& ctx) override {
    if (o_.mode != "target") log_scales(ctx);
  }

  void after_backward(sgs::StrategyContext& ctx) override {
    torch::NoGradGuard no_grad;
    for (auto& l : layers_) {
      auto w = l.block->scalable_weight();
      if (!w.grad().defined()) continue;
      w.mutable_grad().mul_(l.mult);
      if (adamw_) l.before = w.detach().clone();
    }
  }

  void after_step(sgs::StrategyContext& ctx) override {
    if (!adamw_) return;
    torch::NoGradGuard no_grad;
    for (auto& l : layers_) {
      if (!l.before.defined()) continue;
      auto w = l.block->scalable_weight();
      const auto& group = group_of(*ctx.optimizer, w);
      const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
      auto base = l.before.mul_(1.0 - options.lr() * options.weight_decay());
      w.copy_(torch::lerp(base, w.detach(), l.mult));
      l.before = torch::Tensor();
    }
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    if (o_.mode != "target") return;
    archive.write("repopt|reinitialized", torch::tensor(reinitialized_ ? 1 : 0));
    for (const auto& [layer, s] : scales_) {
      archive.write(archive_key("conv", layer), s.conv);
      archive.write(archive_key("1x1", layer), s.one);
      if (s.identity.defined()) archive.write(archive_key("identity", layer), s.identity);
    }
  }

  void load(torch::serialize::InputArchive& archive) override {
    if (o_.mode != "target") return;
    scales_.clear();
    const auto keys = archive.keys();
    auto has = [&](const std::string& k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
    if (!has("repopt|reinitialized")) return;
    torch::Tensor flag;
    archive.read("repopt|reinitialized", flag);
    reinitialized_ = flag.item<int64_t>() != 0;
    const std::string prefix = "repopt|conv|";
    for (const auto& key : keys) {
      if (key.rfind(prefix, 0) != 0) continue;
      std::string layer = key.substr(prefix.size());
      Scales s;
      archive.read(key, s.conv);
      archive.read("repopt|1x1|" + layer, s.one);
      if (has("repopt|identity|" + layer)) archive.read("repopt|identity|" + layer, s.identity);
      std::replace(layer.begin(), layer.end(), '|', '.');
      scales_[layer] = s;
    }
  }

 private:
  class Factory : public sgs::ConvFactory {
   public:
    explicit Factory(RepoptOptions o) : o_(std::move(o)) {}
    std::shared_ptr<sgs::ConvBlock> make(const sgs::ConvSpec& spec) override {
      if (!RepoptOptions::converts(spec)) return ConvFactory::make(spec);
      // The i-th block of a stage (0: the first, which changes the shape).
      index_ = br::has_identity(spec) ? index_ + 1 : 0;
      const double init = index_ == 0 ? 1.0 : std::sqrt(2.0 / static_cast<double>(index_));
      return std::make_shared<RepoptConv>(spec, o_, init, /*train_scales=*/o_.mode == "search");
    }
    // The model's BatchNorm follows the sum, as LinearAddBlock's own.
    bool norm_after(const sgs::ConvSpec&) const override { return true; }

   private:
    RepoptOptions o_;
    int64_t index_ = 0;
  };

  struct Layer {
    std::shared_ptr<sgs::ConvBlock> block;
    torch::Tensor mult, before;
  };

  // p of M: 2 for SGD, 1 for AdamW; other optimizers have no RepOptimizer.
  int optimizer_power(const sgs::StrategyContext& ctx) {
    if (dynamic_cast<torch::optim::SGD*>(ctx.optimizer)) return 2;
    if (dynamic_cast<torch::optim::AdamW*>(ctx.optimizer)) {
      adamw_ = true;
      return 1;
    }
    throw sgs::ConfigError("optimizer.name: repopt's mode target trains with sgd or adamw (the authors' "
                           "RepOptimizerSGD and RepOptimizerAdamW); use one of them");
  }

  static const torch::optim::OptimizerParamGroup& group_of(const torch::optim::Optimizer& optimizer,
                                                           const torch::Tensor& w) {
    for (const auto& group : optimizer.param_groups())
      for (const auto& p : group.params())
        if (p.is_same(w)) return group;
    throw std::logic_error("repopt: a conv weight is in none of the optimizer's groups");
  }

  // The last scales of every layer of the search run in scales_from.
  std::map<std::string, Scales> read_scales(const sgs::StrategyContext& ctx) const {
    std::string dir = o_.scales_from;
    for (size_t at; (at = dir.find("{seed}")) != std::string::npos;) dir.replace(at, 6, std::to_string(ctx.seed));
    const std::string file = (std::filesystem::path(dir) / "run.h5").string();
    if (!std::filesystem::exists(file)) throw sgs::ConfigError(where_ + ": no run.h5 in '" + dir + "'");
    sgs::RunFile run;
    try {
      run = sgs::read_run_file(file, sgs::kRunLayers);
    } catch (const std::exception& e) {
      throw sgs::ConfigError(where_ + ": " + e.what());
    }
    const auto strategy = run.config.value("strategy", sgs::Json::object());
    if (strategy.value("name", "") != "repopt" || strategy.value("mode", "search") != "search")
      throw sgs::ConfigError(where_ + ": " + file + " is not a repopt search run (its strategy: " +
                             sgs::excerpt(strategy) + ")");
    if (!run.completed())
      throw sgs::ConfigError(where_ + ": the search run " + file + " has not completed (status '" +
                             run.status_recorded + "')");
    std::map<std::string, Scales> out;
    for (const auto& layer : run.layers) {
      auto conv = layer.columns.find("scale_conv");
      if (conv == layer.columns.end()) continue;
      auto last = [&](const char* name) {
        auto found = layer.columns.find(name);
        if (found == layer.columns.end() || found->second.rows() == 0 || found->second.shape.size() != 2)
          throw sgs::ConfigError(where_ + ": " + file + ": layer '" + layer.name + "' has no row of " + name);
        const auto& c = found->second;
        const int64_t n = c.shape.at(1);
        std::vector<double> row(c.values.end() - n, c.values.end());
        return torch::tensor(row, torch::kFloat64);
      };
      Scales s{last("scale_conv"), last("scale_1x1"), last("scale_identity")};
      if (torch::isnan(s.identity).any().item<bool>()) s.identity = torch::Tensor();
      out[layer.name] = s;
    }
    // The same model: every block the search converted, with its channels and identity.
    for (const auto& block : convs_) {
      if (!RepoptOptions::converts(block->spec())) continue;
      auto it = out.find(block->path());
      const auto& spec = block->spec();
      if (it == out.end())
        throw sgs::ConfigError(where_ + ": " + file + " has no scales for layer '" + block->path() +
                               "' (another model?)");
      if (it->second.conv.size(0) != spec.out_channels || it->second.identity.defined() != br::has_identity(spec))
        throw sgs::ConfigError(where_ + ": " + file + ": layer '" + block->path() + "' has " +
                               std::to_string(it->second.conv.size(0)) + " scales" +
                               (it->second.identity.defined() ? " with an identity" : "") + ", this model's " +
                               std::to_string(spec.out_channels) + " channels" +
                               (br::has_identity(spec) ? " with an identity" : "") + " (another model?)");
    }
    return out;
  }

  // W = W3 ⊙ s_conv + pad(K1 ⊙ s_1x1) + I ⊙ s_id, W3 and K1 fresh draws.
  void reinitialize(sgs::ConvBlock& block, Scales s) const {
    torch::NoGradGuard no_grad;
    auto w = block.scalable_weight();
    const auto& spec = block.spec();
    const sgs::ConvSpec drawn = o_.drawn(spec);
    auto w3 = o_.init == "model" ? w.detach().clone() : sgs::init_conv(drawn).first.to(w.options());
    auto k1 = sgs::init_conv(br::branch_spec(drawn, spec.in_channels, spec.out_channels, {1, 1})).first.to(w.options());
    if (s.identity.defined() && !o_.identity_scales_for_reinit) s.identity = torch::ones_like(s.identity);
    w.copy_(equivalent_kernel(w3, k1, s, spec));
  }

  void log_scales(sgs::StrategyContext& ctx) const {
    if (ctx.log == nullptr) return;
    for (const auto& block : convs_) {
      if (o_.mode == "target") {
        auto it = scales_.find(block->path());
        if (it != scales_.end()) ctx.log->append("repopt", block->path(), scale_row(it->second, ctx.epochs_done));
      } else if (auto* b = dynamic_cast<RepoptConv*>(block.get())) {
        ctx.log->append("repopt", block->path(), scale_row(b->scales(), ctx.epochs_done));
      }
    }
  }

  RepoptOptions o_;
  std::string where_;
  std::vector<std::shared_ptr<sgs::ConvBlock>> convs_;
  std::map<std::string, Scales> scales_;  // target: layer -> the searched scales
  std::vector<Layer> layers_;
  bool reinitialized_ = false, adamw_ = false;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, repopt,
             "RepOpt (Ding et al. 2023): search trains LinearAddBlocks' per-channel scales (3x3, 1x1, identity), "
             "target trains plain convs with those scales as gradient multipliers (sgd or adamw); 3x3 convs only, "
             "others (1x1, a 7x7 stem) stay plain",
             RepoptOptions, [](const RepoptOptions& o) { return std::make_unique<Repopt>(o); });
