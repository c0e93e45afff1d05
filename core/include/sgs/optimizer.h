// Optimizers: a plugin kind wrapping LibTorch's optimizers. The learning rate
// is set every step by the schedule.
#pragma once

#include <sgs/registry.h>

#include <torch/optim/optimizer.h>

namespace sgs {

struct OptimizerKind {
  static constexpr const char* kName = "optimizer";
  using Factory =
      std::function<std::unique_ptr<torch::optim::Optimizer>(const Options&, std::vector<torch::Tensor> params)>;
};

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace sgs
