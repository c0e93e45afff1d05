// cosine: linear warm-up over the first `warmup_epochs`, then
//   lr(t) = min_lr + (lr_0 - min_lr) * (1 + cos(pi * p)) / 2,  p = (t - T_w) / (T - T_w),
// stepped per iteration (Loshchilov & Hutter 2017; the paper's recipes, docs/method.md section 4).
#include <sgs/schedule.h>

#include <algorithm>
#include <cmath>

namespace {

class Cosine : public sgs::Schedule {
 public:
  Cosine(double base, double min_lr, int64_t warmup_steps, int64_t total_steps)
      : base_(base), min_(min_lr), warmup_(warmup_steps), total_(std::max(total_steps, warmup_steps + 1)) {}

  double lr(int64_t step) const override {
    if (step < warmup_) return base_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
    double p = std::min(1.0, static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_));
    return min_ + (base_ - min_) * 0.5 * (1.0 + std::cos(M_PI * p));
  }

 private:
  double base_, min_;
  int64_t warmup_, total_;
};

struct CosineOptions : sgs::PluginOptions {
  double min_lr = 0.0, warmup_epochs = 0.0;
  static void declare(sgs::Declare<CosineOptions>& d) {
    d.key(&CosineOptions::min_lr, "min_lr", "learning rate at the last step").ge(0);
    d.key(&CosineOptions::warmup_epochs, "warmup_epochs", "epochs of linear warm-up from 0").ge(0);
  }
};

}  // namespace

SGS_REGISTER(sgs::ScheduleKind, cosine, "cosine annealing to min_lr with linear warm-up, per iteration", CosineOptions,
             [](const CosineOptions& o, const sgs::ScheduleContext& ctx) {
               auto warm = static_cast<int64_t>(std::llround(o.warmup_epochs * ctx.steps_per_epoch));
               return std::unique_ptr<sgs::Schedule>(
                   new Cosine(ctx.base_lr, o.min_lr, warm, ctx.epochs * ctx.steps_per_epoch));
             });
