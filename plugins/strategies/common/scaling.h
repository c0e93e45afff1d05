// The machinery shared by the gradient-scaling strategies (docs/method.md section 1):
// a matrix G_l [kh, kw] per spatial conv, applied after backward() (and
// clipping), before the optimizer:
//   apply "gradient": grad(W_l)[o, i, y, x] *= G_l[y, x]
//   apply "update":   W_l <- W_old + G_l ⊙ (W_opt - W_old)   (the paper's Adagrad*)
// Subclasses decide when and how G_l is (re)computed; this class applies,
// logs (its table "scaling" in run.h5: dependence, scaling, scaling_epoch
// per layer; docs/run_file.md) and checkpoints it.
#pragma once

#include <sgs/options.h>
#include <sgs/strategy.h>

#include <map>

namespace sgs {

// The key every scaling strategy has; a strategy's options derive from this.
struct ScalingOptions : PluginOptions {
  std::string apply = "gradient";
  template <class T>
  static void declare_common(Declare<T>& d) {
    d.choice(&ScalingOptions::apply, "apply", {"gradient", "update"},
             "scale the gradient (before the optimizer) or the optimizer's update (Adagrad*)");
  }
};

class ScalingStrategy : public Strategy {
 public:
  enum class Apply { Gradient, Update };
  // `logs_dependence`: its rows in run.h5 carry the dependence G came from.
  ScalingStrategy(const ScalingOptions& options, bool logs_dependence);

  // Its table: per layer, `dependence` ([kh, kw], with logs_dependence),
  // `scaling` ([kh, kw]) and `scaling_epoch` (the completed epochs when G
  // took effect), a row per update.
  static LogTable table(bool logs_dependence);
  std::vector<LogTable> log_tables() const override { return {table(logs_dependence_)}; }
  void attach(StrategyContext& ctx) override;
  void after_backward(StrategyContext& ctx) override;
  void after_step(StrategyContext& ctx) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // The G currently applied to a layer (undefined: not scaled).
  torch::Tensor scaling(const std::string& layer) const;

 protected:
  // Applies G to a layer from now on.
  void set_scaling(ConvBlock& block, const torch::Tensor& g);
  // Appends G (and `dependence`, with logs_dependence) to its table with
  // scaling_epoch = ctx.epochs_done; a no-op without a log (other ranks,
  // unit tests).
  void log_scaling(StrategyContext& ctx, const ConvBlock& block, const torch::Tensor& g,
                   const torch::Tensor& dependence = {}) const;

 private:
  Apply apply_;
  bool logs_dependence_;
  std::map<std::string, torch::Tensor> scalings_;      // layer -> G [kh, kw] (float32, on device)
  std::map<std::string, torch::Tensor> before_step_;   // apply = update: W before the step
  std::vector<std::shared_ptr<ConvBlock>> convs_;
};

}  // namespace sgs
