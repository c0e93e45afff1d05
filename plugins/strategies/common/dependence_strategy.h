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

// The measure's keys, shared by the strategies and the measures.
struct MeasureKeys {
  double k = 5.0;
  bool diagonal_removal = false;
  template <class T>
  static void declare_measure(Declare<T>& d) {
    d.key(&MeasureKeys::k, "k", "k of the transform s_k = k s / ((k - 1) s + 1); 1 = identity").gt(0);
    d.key(&MeasureKeys::diagonal_removal, "diagonal_removal",
          "drop pairs with a zero and the joint histogram's diagonal (ImageNet)");
  }
};

// The measure alone, as `sgs dependence` computes it (kind "measure").
struct MeasureOptions : PluginOptions, MeasureKeys {
  static void declare(Declare<MeasureOptions>& d) { declare_measure(d); }
};

struct DependenceOptions : ScalingOptions, MeasureKeys {
  int64_t batches = 2, every = 10, warmup_epochs = 1;
  std::string save_features;
  int64_t save_features_update = 0;
  static void declare(Declare<DependenceOptions>& d);
};

class DependenceStrategy : public ScalingStrategy {
 public:
  DependenceStrategy(const DependenceOptions& options, dependence::Measure measure);
  void on_epoch_begin(StrategyContext& ctx) override;

  // The measure's factory for kind "measure".
  static std::function<MeasureResult(const MeasureOptions&, const torch::Tensor&, const ConvSpec&)> measure(
      dependence::Measure measure);

 private:
  bool update_due(int64_t epochs_done) const;
  void save_features(const std::map<std::string, torch::Tensor>& maps, const StrategyContext& ctx) const;

  dependence::Options options_;
  int64_t batches_, every_, warmup_;
  std::string save_features_path_;
  int64_t save_features_update_;
};

}  // namespace sgs
