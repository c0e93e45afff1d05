// alpha_beta: one fixed 3x3 G for every layer and epoch (the paper's grid
// ablation, Table 3): centre/edge = alpha, centre/corner = beta, i.e.
//   G ∝ [[1/b, 1/a, 1/b], [1/a, 1, 1/a], [1/b, 1/a, 1/b]],  mean(G) = 1.
// The paper's grid: alpha, beta in {0.8, 1.0, 1.25, 1.7, 5.0, 10, 100}.
#include "common/static_scaling.h"

#include <sgs/errors.h>

#include <torch/torch.h>

namespace {

struct AlphaBetaOptions : sgs::ScalingOptions {
  double alpha = 1.0, beta = 1.0;
  static void declare(sgs::Declare<AlphaBetaOptions>& d) {
    d.required(&AlphaBetaOptions::alpha, "alpha", "ratio of the centre to the edge elements").gt(0);
    d.required(&AlphaBetaOptions::beta, "beta", "ratio of the centre to the corner elements").gt(0);
    declare_common(d);
  }
};

class AlphaBeta : public sgs::StaticScaling {
 public:
  explicit AlphaBeta(const AlphaBetaOptions& o) : StaticScaling(o), alpha_(o.alpha), beta_(o.beta) {}

  static torch::Tensor grid(double alpha, double beta) {
    const double a = 1 / alpha, b = 1 / beta;
    auto g = torch::tensor({b, a, b, a, 1.0, a, b, a, b}, torch::kFloat64).view({3, 3});
    return g / g.mean();
  }

 protected:
  torch::Tensor matrix_for(const sgs::ConvBlock& block) const override {
    const auto& k = block.spec().kernel;
    if (k[0] != 3 || k[1] != 3)
      throw sgs::ConfigError("strategy.name: alpha_beta is defined for 3x3 kernels; layer " + block.path() + " is " +
                             std::to_string(k[0]) + "x" + std::to_string(k[1]) + " (use 'fixed' with a matrix)");
    return grid(alpha_, beta_);
  }

 private:
  double alpha_, beta_;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, alpha_beta, "SGS ablation: one fixed 3x3 scaling from alpha (edge) and beta (corner)",
             AlphaBetaOptions, [](const AlphaBetaOptions& o) { return std::make_unique<AlphaBeta>(o); });
