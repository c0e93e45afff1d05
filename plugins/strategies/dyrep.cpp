// dyrep: DyRep, dynamic re-parameterization (Huang et al. 2022; docs/method.md
// 5), as its public code does it (hunto/image_classification_sota,
// lib/models/utils/dyrep.py). Training starts from the plain model; every
// square KxK conv (K > 1) is growable (common/dyrep_block.h).
//  - Each step, between backward and the optimizer step, a saliency per
//    growable conv of depth < 2 (a model's conv, or a conv inside its grown
//    block once): synflow = sum(grad * w) (signed), snip = sum |grad * w|,
//    grad_norm = ||grad||, or random; averaged over the steps since the last
//    adjustment and over the ranks.
//  - After every grow_interval-th epoch E (E <= max_grow_epochs), before the
//    next epoch: the conv with the largest average grows into DyRep's block
//    (function kept in eval mode; BN recalibration on recal_bn_batches
//    training batches); then every block's branch weights (mean |gamma| of a
//    branch's last BN over the KxK branch's) are checked: where they spread
//    (unbiased std > cut_min_std) the branches below both their mean and
//    cut_threshold are cut, a block left with its KxK conv alone becoming a
//    plain conv with bias. The optimizer then holds the model's parameters:
//    state of removed ones dropped, that of the others kept.
//  - Growths and cuts go to run.h5, its table "structure" per layer
//    (structure_epoch, structure_event, structure_node, branches;
//    docs/run_file.md); the checkpoint holds the graph and the averages, so
//    --resume rebuilds both.
// The model's BatchNorm after each conv stays (DyRep's placement).
#include "common/branches.h"
#include "common/dyrep_block.h"

#include <sgs/communicator.h>
#include <sgs/model.h>
#include <sgs/optimizer.h>
#include <sgs/run_log.h>
#include <sgs/seed.h>
#include <sgs/strategy.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

namespace {

namespace br = sgs::branches;
namespace dy = sgs::dyrep;

struct DyrepOptions : sgs::PluginOptions {
  std::string grow_metric = "synflow";
  int64_t grow_interval = 15, max_grow_epochs = 500, recal_bn_batches = 20;
  double grow_gamma = 0.01, cut_threshold = 0.1, cut_min_std = 0.02;
  static void declare(sgs::Declare<DyrepOptions>& d) {
    d.choice(&DyrepOptions::grow_metric, "grow_metric", {"synflow", "snip", "grad_norm", "random"},
             "saliency that picks the conv to grow: synflow = sum(grad * w), snip = sum |grad * w|, grad_norm = "
             "||grad||, random");
    d.key(&DyrepOptions::grow_interval, "grow_interval",
          "epochs between adjustments (DyRep's dyrep_adjust_interval; its CIFAR configs: 15)")
        .ge(1);
    d.key(&DyrepOptions::max_grow_epochs, "max_grow_epochs",
          "no adjustment after this epoch (dyrep_max_adjust_epochs; CIFAR configs: 500)")
        .ge(0);
    d.key(&DyrepOptions::recal_bn_batches, "recal_bn_batches",
          "training batches that re-estimate a grown block's BatchNorm statistics (dyrep_recal_bn_iters: 20); 0: none")
        .ge(0);
    d.key(&DyrepOptions::grow_gamma, "grow_gamma", "scale of a new branch's last BatchNorm (DyRep: 0.01)").ge(0);
    d.key(&DyrepOptions::cut_threshold, "cut_threshold",
          "branches whose weight is below this and below the block's mean are cut (DyRep: 0.1)")
        .ge(0);
    d.key(&DyrepOptions::cut_min_std, "cut_min_std",
          "a block is checked for cuts only when its branch weights spread more than this (DyRep: 0.02)")
        .ge(0);
  }
};

using Roots = std::vector<std::shared_ptr<dy::GrowableConv>>;

class Factory : public sgs::ConvFactory {
 public:
  explicit Factory(std::shared_ptr<Roots> roots) : roots_(std::move(roots)) {}
  std::shared_ptr<sgs::ConvBlock> make(const sgs::ConvSpec& spec) override {
    if (!spec.spatial() || spec.kernel[0] != spec.kernel[1]) return ConvFactory::make(spec);
    br::require_supported(spec, "dyrep", /*single_group=*/true);
    auto conv = std::make_shared<dy::GrowableConv>(spec, 0);  // drawn as the plain conv is
    roots_->push_back(conv);
    return conv;
  }

 private:
  std::shared_ptr<Roots> roots_;
};

// A growable conv of the model: its layer (the root's path), where it sits
// (0: the root; 1: the root's dbb_kxk.conv; 2: its dbb_1x1_kxk.conv2) and its path.
struct Node {
  std::string layer, path;
  int code = 0;
  std::shared_ptr<dy::GrowableConv> conv;
};

void collect(const std::string& layer, const std::string& path, int code, const std::shared_ptr<dy::GrowableConv>& c,
             std::vector<Node>& out) {
  out.push_back({layer, path, code, c});
  for (const auto& [name, child] : c->children())
    collect(layer, path + "." + name, c->depth() == 0 ? (name == "dbb_kxk.conv" ? 1 : 2) : code, child, out);
}

// Its branches as 0/1 flags, in DyRep's order.
torch::Tensor flags(const dy::GrowableConv& c) {
  auto out = torch::zeros({dy::kBranches}, torch::kInt32);
  if (!c.grown()) {
    out[dy::kKxk] = 1;
    return out;
  }
  for (int b = 0; b < dy::kBranches; ++b) out[b] = c.branches()[b] ? 1 : 0;
  return out;
}

// The values of structure_event (docs/run_file.md).
constexpr int kGrow = 1, kCut = 2;

class Dyrep : public sgs::Strategy {
 public:
  // One model per strategy: its factory records the growable convs it makes.
  explicit Dyrep(DyrepOptions o)
      : o_(std::move(o)), roots_(std::make_shared<Roots>()), factory_(std::make_shared<Factory>(roots_)) {}

  // A row per growth or cut of a node: the completed epochs when it took
  // effect, the event (kGrow, kCut), the node (0: the layer's conv; 1: its
  // dbb_kxk.conv; 2: its dbb_1x1_kxk.conv2) and its 7 branches afterwards
  // (DyRep's order 1x1, 1x1-KxK, 1x1-avg, KxK, 1xK, Kx1, identity; a plain
  // conv is the KxK alone).
  std::vector<sgs::LogTable> log_tables() const override {
    using Type = sgs::LogColumn::Type;
    return {{"structure",
             sgs::LogTable::Scope::kLayer,
             "structure_epoch",
             {{"structure_epoch", Type::kInt32, {}},
              {"structure_event", Type::kInt32, {}},
              {"structure_node", Type::kInt32, {}},
              {"branches", Type::kInt32, {dy::kBranches}}}}};
  }

  std::shared_ptr<sgs::ConvFactory> conv_factory() override { return factory_; }

  void attach(sgs::StrategyContext& ctx) override {
    start_records(ctx.device);
    update_recording(ctx);
    if (loaded_) {  // the averages of a resumed run, if they belong to these convs
      if (loaded_paths_ == paths()) {
        sums_ = loaded_sums_.to(ctx.device, torch::kFloat64);
        count_ = loaded_count_;
      }
      loaded_ = false;
    }
  }

  void on_epoch_begin(sgs::StrategyContext& ctx) override {
    const int64_t e = ctx.epochs_done;
    if (e > 0 && e % o_.grow_interval == 0 && e <= o_.max_grow_epochs) adjust(ctx, e);
    update_recording(ctx);
  }

  void after_backward(sgs::StrategyContext& ctx) override {
    if (!recording_ || eligible_.empty()) return;
    torch::NoGradGuard no_grad;
    if (o_.grow_metric == "random") {
      auto gen = at::detail::createCPUGenerator(
          sgs::mix_seed(ctx.seed, {sgs::seed_tag("dyrep_random"), static_cast<uint64_t>(ctx.step)}));
      sums_ += torch::rand({static_cast<int64_t>(eligible_.size())}, gen, torch::kFloat64).to(sums_.device());
    } else {
      std::vector<torch::Tensor> values;
      values.reserve(eligible_.size());
      for (const auto& n : eligible_) {
        const auto& w = n.conv->weight();
        const auto& g = w.grad();
        if (!g.defined()) {
          values.push_back(torch::zeros({}, w.options()));
        } else if (o_.grow_metric == "synflow") {
          values.push_back((g * w).sum());
        } else if (o_.grow_metric == "snip") {
          values.push_back((g * w).abs().sum());
        } else {
          values.push_back(g.norm());
        }
      }
      sums_ += torch::stack(values).to(torch::kFloat64);
    }
    ++count_;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    std::string graph;
    for (const auto& r : *roots_) graph += r->structure() + ";";
    archive.write("graph", c10::IValue(graph));
    archive.write("metric_paths", c10::IValue(join(paths())));
    archive.write("metric_sums", sums_.defined() ? sums_.cpu() : torch::zeros({0}, torch::kFloat64));
    archive.write("metric_count", torch::tensor(count_, torch::kInt64));
  }

  void load(torch::serialize::InputArchive& archive) override {
    c10::IValue graph, names;
    if (!archive.try_read("graph", graph)) return;  // a checkpoint of another strategy: nothing grown
    std::vector<std::string> texts;
    std::stringstream in(graph.toStringRef());
    for (std::string t; std::getline(in, t, ';');) texts.push_back(t);
    if (texts.size() != roots_->size())
      throw std::runtime_error("dyrep: the checkpoint's graph has " + std::to_string(texts.size()) +
                               " growable convs, the model " + std::to_string(roots_->size()));
    for (size_t i = 0; i < texts.size(); ++i) (*roots_)[i]->restore(texts[i]);
    archive.read("metric_paths", names);
    loaded_paths_.clear();
    std::stringstream p(names.toStringRef());
    for (std::string t; std::getline(p, t);) loaded_paths_.push_back(t);
    torch::Tensor count;
    archive.read("metric_sums", loaded_sums_);
    archive.read("metric_count", count);
    loaded_count_ = count.item<int64_t>();
    loaded_ = true;
  }

 private:
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + "\n";
    return s;
  }

  // Saliencies are recorded only while an adjustment lies ahead in this run.
  void update_recording(const sgs::StrategyContext& ctx) {
    recording_ = false;
    for (int64_t next = ctx.epochs_done + 1; next < ctx.epochs && next <= o_.max_grow_epochs && !recording_; ++next)
      recording_ = next % o_.grow_interval == 0;
  }

  std::vector<Node> nodes() const {
    std::vector<Node> out;
    for (const auto& r : *roots_) collect(r->path(), r->path(), 0, r, out);
    return out;
  }

  std::vector<std::string> paths() const {
    std::vector<std::string> out;
    for (const auto& n : eligible_) out.push_back(n.path);
    return out;
  }

  // The growable convs DyRep records: plain, depth < 2 (at most two growths deep).
  void start_records(const torch::Device& device) {
    eligible_.clear();
    for (auto& n : nodes())
      if (!n.conv->grown() && n.conv->depth() < 2) eligible_.push_back(n);
    sums_ = torch::zeros({static_cast<int64_t>(eligible_.size())}, torch::TensorOptions(device).dtype(torch::kFloat64));
    count_ = 0;
  }

  // DyRep's recal_bn for one block: its BatchNorms re-estimated (cumulative
  // average) on training batches, the rest of the model in eval mode, then
  // averaged over the ranks (with sync_batchnorm they are synchronised
  // already: the statistics of the union batch, as the run's other BNs).
  void recalibrate(sgs::StrategyContext& ctx, torch::nn::Module& block, int64_t epoch) const {
    std::vector<sgs::BatchNorm2dImpl*> bns;
    for (const auto& m : block.modules())
      if (auto* bn = dynamic_cast<sgs::BatchNorm2dImpl*>(m.get())) bns.push_back(bn);
    for (auto* bn : bns) {
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);
      if (ctx.sync_batchnorm && ctx.comm) bn->set_communicator(ctx.comm);
    }
    sgs::BatchPass pass;
    pass.batches = o_.recal_bn_batches;
    pass.draw_seed = sgs::mix_seed(ctx.seed, {sgs::seed_tag("dyrep_recal"), static_cast<uint64_t>(epoch)});
    pass.prepare = [&] {
      for (auto* bn : bns) bn->train();
    };
    ctx.run_batches(pass);
    torch::NoGradGuard no_grad;
    for (auto* bn : bns) {
      if (ctx.comm) {
        const double world = static_cast<double>(ctx.comm->world_size());
        ctx.comm->all_reduce(bn->running_mean, sgs::ReduceOp::Sum);
        ctx.comm->all_reduce(bn->running_var, sgs::ReduceOp::Sum);
        bn->running_mean.div_(world);
        bn->running_var.div_(world);
      }
      bn->options.momentum(0.1);
    }
  }

  void record(sgs::StrategyContext& ctx, const Node& n, int event, int64_t epoch, const std::string& what) {
    if (!ctx.log) return;
    ctx.log->append("structure", n.layer,
                    {torch::scalar_tensor(epoch, torch::kInt64), torch::scalar_tensor(event, torch::kInt64),
                     torch::scalar_tensor(n.code, torch::kInt64), flags(*n.conv)});
    if (ctx.message) ctx.message("dyrep: after epoch " + std::to_string(epoch) + ": " + what + " " + n.path);
  }

  void adjust(sgs::StrategyContext& ctx, int64_t epoch) {
    const size_t n = eligible_.size();
    dy::GrowContext grow;
    grow.generator = at::detail::createCPUGenerator(
        sgs::mix_seed(ctx.seed, {sgs::seed_tag("dyrep_grow"), static_cast<uint64_t>(epoch)}));
    grow.gamma = o_.grow_gamma;
    if (o_.recal_bn_batches > 0 && ctx.run_batches)
      grow.recalibrate = [&](torch::nn::Module& block) { recalibrate(ctx, block, epoch); };

    // Grow the conv of largest average saliency (over steps and ranks).
    if (n > 0 && count_ > 0) {
      auto t = torch::cat({sums_, torch::full({1}, static_cast<double>(count_), sums_.options())});
      if (ctx.comm) ctx.comm->all_reduce(t, sgs::ReduceOp::Sum);
      t = t.cpu();
      const double total = t[static_cast<int64_t>(n)].item<double>();
      std::vector<double> avg(n);
      for (size_t i = 0; i < n; ++i) avg[i] = t[static_cast<int64_t>(i)].item<double>() / total;
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return avg[a] > avg[b]; });
      const Node& top = eligible_[order.front()];
      top.conv->grow(grow);
      char what[64];
      std::snprintf(what, sizeof what, "grew (%s %.4g)", o_.grow_metric.c_str(), avg[order.front()]);
      record(ctx, top, kGrow, epoch, what);
    }

    // Cut the weak branches of every block (a block cut earlier in this pass
    // may have taken nested ones with it).
    for (const auto& node : nodes()) {
      const auto now = nodes();
      const bool attached = std::any_of(now.begin(), now.end(), [&](const Node& m) { return m.conv == node.conv; });
      if (!attached || !node.conv->grown()) continue;
      const auto w = node.conv->branch_weights();
      std::vector<double> valid;
      for (int b = 0; b < dy::kBranches; ++b)
        if (b != dy::kKxk && w[b] != -1.0 && w[b] != 1.0) valid.push_back(w[b]);
      if (valid.size() < 2) continue;  // DyRep: the std of one value is NaN, no cut
      const double mean = std::accumulate(valid.begin(), valid.end(), 0.0) / static_cast<double>(valid.size());
      double var = 0;
      for (double v : valid) var += (v - mean) * (v - mean);
      if (std::sqrt(var / static_cast<double>(valid.size() - 1)) <= o_.cut_min_std) continue;
      dy::Branches keep;
      keep.fill(true);
      bool cut = false;
      for (int b = 0; b < dy::kBranches; ++b) {
        if (b == dy::kKxk || w[b] == -1.0) continue;
        if (w[b] < mean && w[b] < o_.cut_threshold) {
          keep[b] = false;
          cut = true;
        }
      }
      if (!cut) continue;
      node.conv->cut(keep, grow);
      record(ctx, node, kCut, epoch, "cut branches of");
    }

    if (ctx.sync_batchnorm && ctx.comm)
      for (const auto& m : ctx.model->modules())
        if (auto* bn = dynamic_cast<sgs::BatchNorm2dImpl*>(m.get())) bn->set_communicator(ctx.comm);
    if (ctx.optimizer) sgs::replace_parameters(*ctx.optimizer, ctx.model->parameters());
    start_records(ctx.device);
  }

  DyrepOptions o_;
  std::shared_ptr<Roots> roots_;
  std::shared_ptr<Factory> factory_;
  std::vector<Node> eligible_;
  torch::Tensor sums_;  // [eligible] float64: saliency summed over the steps since the last adjustment
  int64_t count_ = 0;
  bool recording_ = false;
  // From a checkpoint, applied in attach().
  bool loaded_ = false;
  std::vector<std::string> loaded_paths_;
  torch::Tensor loaded_sums_;
  int64_t loaded_count_ = 0;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, dyrep,
             "DyRep (Huang et al. 2022): grows the most salient conv into a 7-branch DBB every grow_interval "
             "epochs and cuts weak branches",
             DyrepOptions, [](const DyrepOptions& o) { return std::make_unique<Dyrep>(o); });
