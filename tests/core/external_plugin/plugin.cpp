// An out-of-tree schedule: lr(t) = lr_0 / (1 + decay * t), with its options
// declared like every in-tree plugin's (sgs/options.h).
#include <sgs/registry.h>
#include <sgs/schedule.h>

namespace {

struct InverseTimeOptions : sgs::PluginOptions {
  double decay = 0.01;
  static void declare(sgs::Declare<InverseTimeOptions>& d) {
    d.key(&InverseTimeOptions::decay, "decay", "decay per step").ge(0);
  }
};

class InverseTime : public sgs::Schedule {
 public:
  InverseTime(double base, double decay) : base_(base), decay_(decay) {}
  double lr(int64_t step) const override { return base_ / (1.0 + decay_ * static_cast<double>(step)); }

 private:
  double base_, decay_;
};

}  // namespace

extern "C" void sgs_register_plugins(sgs::Registry* registry) {
  registry->add(sgs::plugin_info<sgs::ScheduleKind, InverseTimeOptions>(
      "inverse_time", "lr_0 / (1 + decay * step), from an external library", "libexternal_schedule.so",
      [](const InverseTimeOptions& o, const sgs::ScheduleContext& ctx) {
        return std::unique_ptr<sgs::Schedule>(new InverseTime(ctx.base_lr, o.decay));
      }));
}
