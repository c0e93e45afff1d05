// adagrad: Duchi et al. 2011, as torch.optim.Adagrad. The paper's "Adagrad*"
// is this optimizer with a scaling strategy's `apply: update`.
#include <sgs/optimizer.h>

#include <torch/optim/adagrad.h>

SGS_REGISTER(sgs::OptimizerKind, adagrad, "Adagrad (torch.optim.Adagrad)",
             (sgs::Schema{
                 sgs::Key::real("lr", 1e-2, "learning rate (the schedule's base)").gt(0),
                 sgs::Key::real("lr_decay", 0.0, "learning-rate decay per step").ge(0),
                 sgs::Key::real("weight_decay", 0.0, "L2 penalty").ge(0),
                 sgs::Key::real("initial_accumulator_value", 0.0, "initial sum of squares").ge(0),
                 sgs::Key::real("eps", 1e-10, "term added to the denominator").gt(0),
             }),
             [](const sgs::Options& o, std::vector<torch::Tensor> params) {
               return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::Adagrad(
                   params, torch::optim::AdagradOptions(o.real("lr"))
                               .lr_decay(o.real("lr_decay"))
                               .weight_decay(o.real("weight_decay"))
                               .initial_accumulator_value(o.real("initial_accumulator_value"))
                               .eps(o.real("eps"))));
             });
