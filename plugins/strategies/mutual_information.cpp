// mutual_information: G_l from the normalised mutual information between each
// pixel of conv l's padded input and its neighbour at every kernel
// displacement (paper section 3.3, eq. 6-8; docs/method.md section 3 for the
// public implementation's conventions this follows).
#include "common/dependence_strategy.h"

SGS_REGISTER(sgs::StrategyKind, mutual_information,
             "SGS: scalings from the normalised mutual information of neighbouring pixels (paper 3.3)",
             sgs::DependenceOptions, [](const sgs::DependenceOptions& o) {
               return std::make_unique<sgs::DependenceStrategy>(o, sgs::dependence::Measure::MutualInformation);
             });

// The same measure for `sgs dependence` on a saved feature map.
SGS_REGISTER(sgs::MeasureKind, mutual_information, "normalised mutual information of each pixel and its neighbour at every kernel displacement", sgs::MeasureOptions,
             sgs::DependenceStrategy::measure(sgs::dependence::Measure::MutualInformation));
