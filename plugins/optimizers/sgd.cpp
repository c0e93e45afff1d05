// sgd: stochastic gradient descent with momentum, dampening, Nesterov and L2
// weight decay, as torch.optim.SGD:
//   g <- g + wd * w;  b <- mu * b + (1 - dampening) * g;  w <- w - lr * (nesterov ? g + mu * b : b)
#include <sgs/errors.h>
#include <sgs/optimizer.h>

#include <torch/optim/sgd.h>

SGS_REGISTER(sgs::OptimizerKind, sgd, "SGD with momentum, Nesterov and weight decay (torch.optim.SGD)",
             (sgs::Schema{
                 sgs::Key::real("lr", 0.1, "learning rate (the schedule's base)").gt(0),
                 sgs::Key::real("momentum", 0.9, "momentum factor").ge(0).lt(1),
                 sgs::Key::real("dampening", 0.0, "dampening of the momentum").ge(0).le(1),
                 sgs::Key::real("weight_decay", 5e-4, "L2 penalty").ge(0),
                 sgs::Key::boolean("nesterov", false, "Nesterov momentum"),
             }),
             [](const sgs::Options& o, std::vector<torch::Tensor> params) {
               if (o.boolean("nesterov") && (o.real("momentum") <= 0 || o.real("dampening") != 0))
                 throw sgs::ConfigError(o.where("nesterov") + ": needs momentum > 0 and dampening = 0");
               return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::SGD(
                   params, torch::optim::SGDOptions(o.real("lr"))
                               .momentum(o.real("momentum"))
                               .dampening(o.real("dampening"))
                               .weight_decay(o.real("weight_decay"))
                               .nesterov(o.boolean("nesterov"))));
             });
