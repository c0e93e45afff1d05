// adagrad: Duchi et al. 2011, as torch.optim.Adagrad. The paper's "Adagrad*"
// is this optimizer with a scaling strategy's `apply: update`.
#include <sgs/optimizer.h>

#include <torch/optim/adagrad.h>

namespace {

struct AdagradOptions : sgs::DecayOptions {
  double lr = 1e-2, lr_decay = 0.0, weight_decay = 0.0, initial_accumulator_value = 0.0, eps = 1e-10;
  static void declare(sgs::Declare<AdagradOptions>& d) {
    d.key(&AdagradOptions::lr, "lr", "learning rate (the schedule's base)").gt(0);
    d.key(&AdagradOptions::lr_decay, "lr_decay", "learning-rate decay per step").ge(0);
    d.key(&AdagradOptions::weight_decay, "weight_decay", "L2 penalty").ge(0);
    declare_decay(d);
    d.key(&AdagradOptions::initial_accumulator_value, "initial_accumulator_value", "initial sum of squares").ge(0);
    d.key(&AdagradOptions::eps, "eps", "term added to the denominator").gt(0);
  }
};

}  // namespace

SGS_REGISTER(sgs::OptimizerKind, adagrad, "Adagrad (torch.optim.Adagrad)", AdagradOptions,
             [](const AdagradOptions& o, std::vector<torch::Tensor> params) {
               const auto options = torch::optim::AdagradOptions(o.lr)
                               .lr_decay(o.lr_decay)
                               .weight_decay(o.weight_decay)
                               .initial_accumulator_value(o.initial_accumulator_value)
                               .eps(o.eps);
               return std::unique_ptr<torch::optim::Optimizer>(
                   new torch::optim::Adagrad(sgs::decay_groups(params, options, o.decay_bias_and_norm), options));
             });
