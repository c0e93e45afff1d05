// adamw: Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW.
#include <sgs/optimizer.h>

#include <torch/optim/adamw.h>

namespace {

struct AdamWOptions : sgs::DecayOptions {
  double lr = 1e-3, eps = 1e-8, weight_decay = 1e-2;
  std::vector<double> betas{0.9, 0.999};
  bool amsgrad = false;
  static void declare(sgs::Declare<AdamWOptions>& d) {
    d.key(&AdamWOptions::lr, "lr", "learning rate (the schedule's base)").gt(0);
    d.key(&AdamWOptions::betas, "betas", "decay of the first and second moments").ge(0).lt(1).exactly(2).renamed_from(
        {"beta1", "beta2"});
    d.key(&AdamWOptions::eps, "eps", "term added to the denominator").gt(0);
    d.key(&AdamWOptions::weight_decay, "weight_decay", "decoupled weight decay").ge(0);
    declare_decay(d);
    d.key(&AdamWOptions::amsgrad, "amsgrad", "AMSGrad variant");
  }
};

}  // namespace

SGS_REGISTER(sgs::OptimizerKind, adamw, "AdamW, decoupled weight decay (torch.optim.AdamW)", AdamWOptions,
             [](const AdamWOptions& o, std::vector<torch::Tensor> params) {
               const auto options = torch::optim::AdamWOptions(o.lr)
                               .betas({o.betas[0], o.betas[1]})
                               .eps(o.eps)
                               .weight_decay(o.weight_decay)
                               .amsgrad(o.amsgrad);
               return std::unique_ptr<torch::optim::Optimizer>(
                   new torch::optim::AdamW(sgs::decay_groups(params, options, o.decay_bias_and_norm), options));
             });
