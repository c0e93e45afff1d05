// step: lr(t) = lr_0 * gamma^n, n = number of milestones (epochs) passed, or
// floor(epoch / step_size) when no milestones are given; stepped per iteration.
#include <sgs/schedule.h>

#include <cmath>
#include <vector>

namespace {

class Step : public sgs::Schedule {
 public:
  Step(double base, double gamma, int64_t step_size, std::vector<int64_t> milestones, int64_t spe)
      : base_(base), gamma_(gamma), step_size_(step_size), milestones_(std::move(milestones)), spe_(spe) {}

  double lr(int64_t step) const override {
    int64_t epoch = step / spe_;
    int64_t n = 0;
    if (milestones_.empty()) {
      n = epoch / step_size_;
    } else {
      for (auto m : milestones_) n += epoch >= m ? 1 : 0;
    }
    return base_ * std::pow(gamma_, static_cast<double>(n));
  }

 private:
  double base_, gamma_;
  int64_t step_size_;
  std::vector<int64_t> milestones_;
  int64_t spe_;
};

struct StepOptions : sgs::PluginOptions {
  double gamma = 0.1;
  int64_t step_size = 30;
  std::vector<int64_t> milestones;
  static void declare(sgs::Declare<StepOptions>& d) {
    d.key(&StepOptions::gamma, "gamma", "factor applied at each decay").gt(0);
    d.key(&StepOptions::step_size, "step_size", "epochs between decays (when no milestones)").ge(1);
    d.key(&StepOptions::milestones, "milestones", "epochs at which to decay; overrides step_size").ge(0);
  }
};

}  // namespace

SGS_REGISTER(sgs::ScheduleKind, step, "multiply the learning rate by gamma every step_size epochs or at milestones",
             StepOptions, [](const StepOptions& o, const sgs::ScheduleContext& ctx) {
               return std::unique_ptr<sgs::Schedule>(
                   new Step(ctx.base_lr, o.gamma, o.step_size, o.milestones, ctx.steps_per_epoch));
             });
