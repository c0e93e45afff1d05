// An out-of-tree schedule: lr(t) = lr_0 / (1 + decay * t).
#include <sgs/schedule.h>

namespace {

class InverseTime : public sgs::Schedule {
 public:
  InverseTime(double base, double decay) : base_(base), decay_(decay) {}
  double lr(int64_t step) const override { return base_ / (1.0 + decay_ * static_cast<double>(step)); }

 private:
  double base_, decay_;
};

}  // namespace

extern "C" void sgs_register_plugins(sgs::Registry* registry) {
  sgs::ScheduleKind::Factory factory = [](const sgs::Options& o, const sgs::ScheduleContext& ctx) {
    return std::unique_ptr<sgs::Schedule>(new InverseTime(ctx.base_lr, o.real("decay")));
  };
  registry->add(sgs::PluginInfo{"schedule", "inverse_time", "lr_0 / (1 + decay * step), from an external library",
                                {sgs::Key::real("decay", 0.01, "decay per step").ge(0)}, factory,
                                "libexternal_schedule.so"});
}
