// Scalings fixed for the whole run (alpha_beta, fixed): set when the model is
// attached, logged once as the update of epoch 0.
#pragma once

#include "scaling.h"

namespace sgs {

class StaticScaling : public ScalingStrategy {
 public:
  explicit StaticScaling(const ScalingOptions& options) : ScalingStrategy(options, /*logs_dependence=*/false) {}
  void attach(StrategyContext& ctx) override;
  void on_epoch_begin(StrategyContext& ctx) override;

 protected:
  // G for one spatial conv; throws ConfigError naming the key when none fits.
  virtual torch::Tensor matrix_for(const ConvBlock& block) const = 0;
};

}  // namespace sgs
