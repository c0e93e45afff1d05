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

// After the model's parameters changed (a structural strategy grew or cut
// blocks): the optimizer's one parameter group becomes `params`, in that
// order, and the state (momentum, moments) of parameters no longer in it is
// dropped. Parameters kept keep their state; new ones start without.
// Nothing happens when `params` are the ones it holds, in that order;
// otherwise an optimizer with several parameter groups throws
// std::logic_error.
void replace_parameters(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params);

}  // namespace sgs
