// sgd: stochastic gradient descent with momentum, dampening, Nesterov and L2
// weight decay, as torch.optim.SGD:
//   g <- g + wd * w;  b <- mu * b + (1 - dampening) * g;  w <- w - lr * (nesterov ? g + mu * b : b)
#include <sgs/errors.h>
#include <sgs/optimizer.h>

#include <torch/optim/sgd.h>

namespace {

struct SgdOptions : sgs::DecayOptions {
  double lr = 0.1, momentum = 0.9, dampening = 0.0, weight_decay = 5e-4;
  bool nesterov = false;
  static void declare(sgs::Declare<SgdOptions>& d) {
    d.key(&SgdOptions::lr, "lr", "learning rate (the schedule's base)").gt(0);
    d.key(&SgdOptions::momentum, "momentum", "momentum factor").ge(0).lt(1);
    d.key(&SgdOptions::dampening, "dampening", "dampening of the momentum").ge(0).le(1);
    d.key(&SgdOptions::weight_decay, "weight_decay", "L2 penalty").ge(0);
    declare_decay(d);
    d.key(&SgdOptions::nesterov, "nesterov", "Nesterov momentum");
  }
};

}  // namespace

SGS_REGISTER(sgs::OptimizerKind, sgd, "SGD with momentum, Nesterov and weight decay (torch.optim.SGD)", SgdOptions,
             [](const SgdOptions& o, std::vector<torch::Tensor> params) {
               if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
                 throw sgs::ConfigError(o.where("nesterov") + ": needs momentum > 0 and dampening = 0");
               const auto options = torch::optim::SGDOptions(o.lr)
                               .momentum(o.momentum)
                               .dampening(o.dampening)
                               .weight_decay(o.weight_decay)
                               .nesterov(o.nesterov);
               return std::unique_ptr<torch::optim::Optimizer>(
                   new torch::optim::SGD(sgs::decay_groups(params, options, o.decay_bias_and_norm), options));
             });
