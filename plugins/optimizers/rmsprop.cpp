// rmsprop: Hinton's RMSprop with optional momentum and centring, as torch.optim.RMSprop.
#include <sgs/optimizer.h>

#include <torch/optim/rmsprop.h>

namespace {

struct RmspropOptions : sgs::DecayOptions {
  double lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0.0, momentum = 0.0;
  bool centered = false;
  static void declare(sgs::Declare<RmspropOptions>& d) {
    d.key(&RmspropOptions::lr, "lr", "learning rate (the schedule's base)").gt(0);
    d.key(&RmspropOptions::alpha, "alpha", "smoothing constant").ge(0).lt(1);
    d.key(&RmspropOptions::eps, "eps", "term added to the denominator").gt(0);
    d.key(&RmspropOptions::weight_decay, "weight_decay", "L2 penalty").ge(0);
    declare_decay(d);
    d.key(&RmspropOptions::momentum, "momentum", "momentum factor").ge(0).lt(1);
    d.key(&RmspropOptions::centered, "centered", "normalise by the estimated variance");
  }
};

}  // namespace

SGS_REGISTER(sgs::OptimizerKind, rmsprop, "RMSprop (torch.optim.RMSprop)", RmspropOptions,
             [](const RmspropOptions& o, std::vector<torch::Tensor> params) {
               const auto options = torch::optim::RMSpropOptions(o.lr)
                               .alpha(o.alpha)
                               .eps(o.eps)
                               .weight_decay(o.weight_decay)
                               .momentum(o.momentum)
                               .centered(o.centered);
               return std::unique_ptr<torch::optim::Optimizer>(
                   new torch::optim::RMSprop(sgs::decay_groups(params, options, o.decay_bias_and_norm), options));
             });
