// adamw: Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW.
#include <sgs/optimizer.h>

#include <torch/optim/adamw.h>

SGS_REGISTER(sgs::OptimizerKind, adamw, "AdamW, decoupled weight decay (torch.optim.AdamW)",
             (sgs::Schema{
                 sgs::Key::real("lr", 1e-3, "learning rate (the schedule's base)").gt(0),
                 sgs::Key::real("beta1", 0.9, "decay of the first moment").ge(0).lt(1),
                 sgs::Key::real("beta2", 0.999, "decay of the second moment").ge(0).lt(1),
                 sgs::Key::real("eps", 1e-8, "term added to the denominator").gt(0),
                 sgs::Key::real("weight_decay", 1e-2, "decoupled weight decay").ge(0),
                 sgs::Key::boolean("amsgrad", false, "AMSGrad variant"),
             }),
             [](const sgs::Options& o, std::vector<torch::Tensor> params) {
               return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::AdamW(
                   params, torch::optim::AdamWOptions(o.real("lr"))
                               .betas({o.real("beta1"), o.real("beta2")})
                               .eps(o.real("eps"))
                               .weight_decay(o.real("weight_decay"))
                               .amsgrad(o.boolean("amsgrad"))));
             });
