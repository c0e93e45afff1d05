// autocorrelation: G_l from the Pearson correlation of conv l's padded input
// with itself shifted by each kernel displacement, negatives clamped to 0
// (the paper's ablation, Table 3); otherwise as mutual_information.
#include "common/dependence_strategy.h"

SGS_REGISTER(sgs::StrategyKind, autocorrelation,
             "SGS ablation: scalings from the spatial autocorrelation of each conv's input (paper Table 3)",
             sgs::DependenceOptions, [](const sgs::DependenceOptions& o) {
               return std::make_unique<sgs::DependenceStrategy>(o, sgs::dependence::Measure::Autocorrelation);
             });

// The same measure for `sgs dependence` on a saved feature map.
SGS_REGISTER(sgs::MeasureKind, autocorrelation, "Pearson correlation of the input with itself shifted by each kernel displacement, negatives clamped", sgs::MeasureOptions,
             sgs::DependenceStrategy::measure(sgs::dependence::Measure::Autocorrelation));
