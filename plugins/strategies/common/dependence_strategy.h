// Scalings recomputed from the dependence of each spatial conv's input
// (paper section 3.3): after `warmup_epochs` epochs with G = 1, and then every
// `every` epochs, B = `batches` random training batches are run through the
// model (eval mode, no grad), each conv's padded input is gathered, and
// G_l = normalised nan-mean over channels of k-transformed dependence.
// Shared by the mutual_information and autocorrelation plugins.
#pragma once

#include "dependence.h"
#include "scaling.h"

#include <sgs/measure.h>

namespace sgs {

class DependenceStrategy : public ScalingStrategy {
 public:
  DependenceStrategy(const Options& options, dependence::Measure measure);
  void on_epoch_begin(StrategyContext& ctx) override;

  static Schema schema();
  // The measure alone, as `sgs dependence` computes it (kind "measure").
  static Schema measure_schema();
  static MeasureKind::Factory measure(dependence::Measure measure);

 private:
  bool update_due(int64_t epochs_done) const;
  void save_features(const std::map<std::string, torch::Tensor>& maps, const StrategyContext& ctx) const;

  dependence::Options options_;
  int64_t batches_, every_, warmup_;
  std::string save_features_path_;
  int64_t save_features_update_;
  int64_t updates_ = 0;
};

}  // namespace sgs
