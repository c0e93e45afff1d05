// rmsprop: Hinton's RMSprop with optional momentum and centring, as torch.optim.RMSprop.
#include <sgs/optimizer.h>

#include <torch/optim/rmsprop.h>

SGS_REGISTER(sgs::OptimizerKind, rmsprop, "RMSprop (torch.optim.RMSprop)",
             (sgs::Schema{
                 sgs::Key::real("lr", 1e-2, "learning rate (the schedule's base)").gt(0),
                 sgs::Key::real("alpha", 0.99, "smoothing constant").ge(0).lt(1),
                 sgs::Key::real("eps", 1e-8, "term added to the denominator").gt(0),
                 sgs::Key::real("weight_decay", 0.0, "L2 penalty").ge(0),
                 sgs::Key::real("momentum", 0.0, "momentum factor").ge(0).lt(1),
                 sgs::Key::boolean("centered", false, "normalise by the estimated variance"),
             }),
             [](const sgs::Options& o, std::vector<torch::Tensor> params) {
               return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::RMSprop(
                   params, torch::optim::RMSpropOptions(o.real("lr"))
                               .alpha(o.real("alpha"))
                               .eps(o.real("eps"))
                               .weight_decay(o.real("weight_decay"))
                               .momentum(o.real("momentum"))
                               .centered(o.boolean("centered"))));
             });
