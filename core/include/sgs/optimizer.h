// Optimizers: a plugin kind wrapping LibTorch's optimizers. The learning rate
// is set every step by the schedule.
#pragma once

#include <sgs/registry.h>

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

namespace sgs {

// The key every optimizer plugin declares (declare_decay): whether its
// weight decay also applies to the 1-D parameters, biases and normalisation
// weights. Modern recipes (and RepOpt's) leave them out; the default keeps
// the behaviour the recorded results were trained with.
struct DecayOptions : PluginOptions {
  bool decay_bias_and_norm = true;
  template <class T>
  static void declare_decay(Declare<T>& d) {
    d.key(&DecayOptions::decay_bias_and_norm, "decay_bias_and_norm",
          "weight decay on biases and normalisation weights too (false: only on parameters of 2 and more "
          "dimensions, conv and linear weights)");
  }
};

// The parameter groups of an optimizer whose options are `defaults`: all
// parameters in one group with `decay_1d`; otherwise the parameters of 2 and
// more dimensions with `defaults`, then the 1-D ones with weight decay 0
// (an empty group left out).
template <class OptionsT>
std::vector<torch::optim::OptimizerParamGroup> decay_groups(const std::vector<torch::Tensor>& params,
                                                            const OptionsT& defaults, bool decay_1d) {
  std::vector<torch::optim::OptimizerParamGroup> out;
  if (decay_1d) {
    out.emplace_back(params, std::make_unique<OptionsT>(defaults));
    return out;
  }
  std::vector<torch::Tensor> decayed, plain;
  for (const auto& p : params) (p.dim() >= 2 ? decayed : plain).push_back(p);
  if (!decayed.empty()) out.emplace_back(decayed, std::make_unique<OptionsT>(defaults));
  if (!plain.empty()) {
    auto o = std::make_unique<OptionsT>(defaults);
    o->weight_decay(0);
    out.emplace_back(plain, std::move(o));
  }
  return out;
}

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
// Nothing happens when `params` are the ones it holds, in that order. With
// several groups (decay_groups), a parameter stays in its group and a new one
// joins the group of the parameters of its kind (1-D or not); a kind no group
// holds throws std::logic_error.
void replace_parameters(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params);

}  // namespace sgs
