// Learning-rate schedules: a pure function of the global step, so that a
// resumed run only needs the step count to continue the same curve.
#pragma once

#include <sgs/registry.h>

#include <cstdint>
#include <memory>

namespace sgs {

struct ScheduleContext {
  double base_lr = 0.1;
  int64_t steps_per_epoch = 1;
  int64_t epochs = 1;
};

class Schedule {
 public:
  virtual ~Schedule() = default;
  // Learning rate for global step `step` (0-based, stepped per iteration).
  virtual double lr(int64_t step) const = 0;
};

struct ScheduleKind {
  static constexpr const char* kName = "schedule";
  using Factory = std::function<std::unique_ptr<Schedule>(const Options&, const ScheduleContext&)>;
};

}  // namespace sgs
