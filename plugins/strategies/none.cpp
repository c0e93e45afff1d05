// none: the baseline; plain convolutions and unscaled gradients.
#include <sgs/strategy.h>

SGS_REGISTER(sgs::StrategyKind, none, "baseline: plain convolutions, gradients unscaled", sgs::NoOptions,
             [](const sgs::NoOptions&) { return std::make_unique<sgs::Strategy>(); });
