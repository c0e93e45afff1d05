// adam: Kingma & Ba 2015, with L2 weight decay added to the gradient, as torch.optim.Adam.
#include <sgs/optimizer.h>

#include <torch/optim/adam.h>

namespace {

struct AdamOptions : sgs::DecayOptions {
  double lr = 1e-3, eps = 1e-8, weight_decay = 0.0;
  std::vector<double> betas{0.9, 0.999};
  bool amsgrad = false;
  static void declare(sgs::Declare<AdamOptions>& d) {
    d.key(&AdamOptions::lr, "lr", "learning rate (the schedule's base)").gt(0);
    d.key(&AdamOptions::betas, "betas", "decay of the first and second moments").ge(0).lt(1).exactly(2).renamed_from(
        {"beta1", "beta2"});
    d.key(&AdamOptions::eps, "eps", "term added to the denominator").gt(0);
    d.key(&AdamOptions::weight_decay, "weight_decay", "L2 penalty").ge(0);
    declare_decay(d);
    d.key(&AdamOptions::amsgrad, "amsgrad", "AMSGrad variant");
  }
};

}  // namespace

SGS_REGISTER(sgs::OptimizerKind, adam, "Adam with L2 weight decay (torch.optim.Adam)", AdamOptions,
             [](const AdamOptions& o, std::vector<torch::Tensor> params) {
               const auto options = torch::optim::AdamOptions(o.lr)
                               .betas({o.betas[0], o.betas[1]})
                               .eps(o.eps)
                               .weight_decay(o.weight_decay)
                               .amsgrad(o.amsgrad);
               return std::unique_ptr<torch::optim::Optimizer>(
                   new torch::optim::Adam(sgs::decay_groups(params, options, o.decay_bias_and_norm), options));
             });
