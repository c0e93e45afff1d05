// centre_decay: SGS with G = 1 + c * rate^e at the kernel's centre and 1
// elsewhere (then mean 1), set at the start of every epoch (e: the epochs
// completed). Besides the "scaling" table of every scaling strategy, it logs
// a table of its own: per layer, the centre's weight at each epoch.
#include "common/scaling.h"

#include <sgs/run_log.h>

#include <torch/torch.h>

#include <cmath>

namespace {

struct CentreDecayOptions : sgs::ScalingOptions {
  double c = 1.0, rate = 0.5;
  static void declare(sgs::Declare<CentreDecayOptions>& d) {
    d.key(&CentreDecayOptions::c, "c", "extra weight of the centre at the first epoch").ge(0);
    d.key(&CentreDecayOptions::rate, "rate", "factor of the extra weight per epoch").gt(0).le(1);
    declare_common(d);  // apply: gradient | update
  }
};

class CentreDecay : public sgs::ScalingStrategy {
 public:
  explicit CentreDecay(const CentreDecayOptions& o)
      : ScalingStrategy(o, /*logs_dependence=*/false), c_(o.c), rate_(o.rate) {}

  // Its own table, declared once: /layers/<conv>/centre_epoch and
  // /layers/<conv>/centre_weight, a row per epoch, truncated on resume by
  // centre_epoch.
  std::vector<sgs::LogTable> log_tables() const override {
    auto tables = ScalingStrategy::log_tables();
    using Type = sgs::LogColumn::Type;
    tables.push_back({"centre",
                      sgs::LogTable::Scope::kLayer,
                      "centre_epoch",
                      {{"centre_epoch", Type::kInt32, {}}, {"centre_weight", Type::kFloat64, {}}}});
    return tables;
  }

  void on_epoch_begin(sgs::StrategyContext& ctx) override {
    auto timed = ctx.scaling_time.measure();  // counted in the metric scaling_seconds
    const double extra = c_ * std::pow(rate_, static_cast<double>(ctx.epochs_done));
    for (auto& block : ctx.convs) {
      const auto& k = block->spec().kernel;
      auto g = torch::ones({k[0], k[1]}, torch::kFloat64);
      g[k[0] / 2][k[1] / 2] += extra;
      g = g / g.mean();
      set_scaling(*block, g);
      log_scaling(ctx, *block, g);
      if (ctx.log != nullptr)
        ctx.log->append("centre", block->path(),
                        {torch::scalar_tensor(ctx.epochs_done, torch::kInt64), g[k[0] / 2][k[1] / 2]});
    }
  }

 private:
  double c_, rate_;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, centre_decay, "SGS example: a heavier kernel centre, lighter every epoch",
             CentreDecayOptions, [](const CentreDecayOptions& o) { return std::make_unique<CentreDecay>(o); });
