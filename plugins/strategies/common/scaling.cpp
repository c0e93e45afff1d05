#include "scaling.h"

#include <sgs/run_log.h>

#include <torch/torch.h>

namespace sgs {

ScalingStrategy::ScalingStrategy(const ScalingOptions& options, bool logs_dependence)
    : apply_(options.apply == "update" ? Apply::Update : Apply::Gradient), logs_dependence_(logs_dependence) {}

LogTable ScalingStrategy::table(bool logs_dependence) {
  using Type = LogColumn::Type;
  constexpr int64_t any = LogColumn::kAnySize;
  LogTable t{"scaling", LogTable::Scope::kLayer, "scaling_epoch", {}};
  if (logs_dependence) t.columns.push_back({"dependence", Type::kFloat64, {any, any}});
  t.columns.push_back({"scaling", Type::kFloat64, {any, any}});
  t.columns.push_back({"scaling_epoch", Type::kInt32, {}});
  return t;
}

void ScalingStrategy::attach(StrategyContext& ctx) { convs_ = ctx.convs; }

torch::Tensor ScalingStrategy::scaling(const std::string& layer) const {
  auto it = scalings_.find(layer);
  return it == scalings_.end() ? torch::Tensor() : it->second;
}

void ScalingStrategy::set_scaling(ConvBlock& block, const torch::Tensor& g) {
  auto w = block.scalable_weight();
  TORCH_CHECK(w.defined(), "scaling: layer ", block.path(), " has no single weight to scale");
  scalings_[block.path()] = g.detach().to(w.device(), w.scalar_type());
}

void ScalingStrategy::log_scaling(StrategyContext& ctx, const ConvBlock& block, const torch::Tensor& g,
                                  const torch::Tensor& dependence) const {
  if (ctx.log == nullptr) return;
  std::vector<torch::Tensor> row;
  if (logs_dependence_) row.push_back(dependence);
  row.push_back(g);
  row.push_back(torch::scalar_tensor(ctx.epochs_done, torch::kInt64));
  ctx.log->append("scaling", block.path(), row);
}

void ScalingStrategy::after_backward(StrategyContext& ctx) {
  torch::NoGradGuard no_grad;
  for (auto& block : convs_) {
    auto it = scalings_.find(block->path());
    if (it == scalings_.end()) continue;
    auto w = block->scalable_weight();
    if (apply_ == Apply::Gradient) {
      if (w.grad().defined()) w.mutable_grad().mul_(it->second);
    } else {
      before_step_[block->path()] = w.detach().clone();
    }
  }
}

void ScalingStrategy::after_step(StrategyContext& ctx) {
  if (apply_ != Apply::Update) return;
  torch::NoGradGuard no_grad;
  for (auto& block : convs_) {
    auto it = before_step_.find(block->path());
    if (it == before_step_.end()) continue;
    auto w = block->scalable_weight();
    w.copy_(torch::lerp(it->second, w, scalings_.at(block->path())));
  }
  before_step_.clear();
}

namespace {
// Archive keys may not contain '.', module paths do: "features.3" <-> "scaling|features|3".
const std::string kPrefix = "scaling|";
std::string swap_chars(std::string s, char from, char to) {
  std::replace(s.begin(), s.end(), from, to);
  return s;
}
}  // namespace

void ScalingStrategy::save(torch::serialize::OutputArchive& archive) const {
  for (const auto& [layer, g] : scalings_) archive.write(kPrefix + swap_chars(layer, '.', '|'), g);
}

void ScalingStrategy::load(torch::serialize::InputArchive& archive) {
  scalings_.clear();
  for (const auto& key : archive.keys()) {
    if (key.rfind(kPrefix, 0) != 0) continue;
    torch::Tensor g;
    archive.read(key, g);
    scalings_[swap_chars(key.substr(kPrefix.size()), '|', '.')] = g;
  }
}

}  // namespace sgs
