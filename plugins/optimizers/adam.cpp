// adam: Kingma & Ba 2015, with L2 weight decay added to the gradient, as torch.optim.Adam.
#include <sgs/optimizer.h>

#include <torch/optim/adam.h>

SGS_REGISTER(sgs::OptimizerKind, adam, "Adam with L2 weight decay (torch.optim.Adam)",
             (sgs::Schema{
                 sgs::Key::real("lr", 1e-3, "learning rate (the schedule's base)").gt(0),
                 sgs::Key::real("beta1", 0.9, "decay of the first moment").ge(0).lt(1),
                 sgs::Key::real("beta2", 0.999, "decay of the second moment").ge(0).lt(1),
                 sgs::Key::real("eps", 1e-8, "term added to the denominator").gt(0),
                 sgs::Key::real("weight_decay", 0.0, "L2 penalty").ge(0),
                 sgs::Key::boolean("amsgrad", false, "AMSGrad variant"),
             }),
             [](const sgs::Options& o, std::vector<torch::Tensor> params) {
               return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::Adam(
                   params, torch::optim::AdamOptions(o.real("lr"))
                               .betas({o.real("beta1"), o.real("beta2")})
                               .eps(o.real("eps"))
                               .weight_decay(o.real("weight_decay"))
                               .amsgrad(o.boolean("amsgrad"))));
             });
