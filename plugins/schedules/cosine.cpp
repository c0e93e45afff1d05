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

}  // namespace

SGS_REGISTER(sgs::ScheduleKind, cosine, "cosine annealing to min_lr with linear warm-up, per iteration",
             (sgs::Schema{
                 sgs::Key::real("min_lr", 0.0, "learning rate at the last step").ge(0),
                 sgs::Key::real("warmup_epochs", 0.0, "epochs of linear warm-up from 0").ge(0),
             }),
             [](const sgs::Options& o, const sgs::ScheduleContext& ctx) {
               auto warm = static_cast<int64_t>(std::llround(o.real("warmup_epochs") * ctx.steps_per_epoch));
               return std::unique_ptr<sgs::Schedule>(
                   new Cosine(ctx.base_lr, o.real("min_lr"), warm, ctx.epochs * ctx.steps_per_epoch));
             });
