// constant: lr(t) = lr_0.
#include <sgs/schedule.h>

namespace {

class Constant : public sgs::Schedule {
 public:
  explicit Constant(double lr) : lr_(lr) {}
  double lr(int64_t) const override { return lr_; }

 private:
  double lr_;
};

}  // namespace

SGS_REGISTER(sgs::ScheduleKind, constant, "the optimizer's learning rate, unchanged", sgs::NoOptions,
             [](const sgs::NoOptions&, const sgs::ScheduleContext& ctx) {
               return std::unique_ptr<sgs::Schedule>(new Constant(ctx.base_lr));
             });
