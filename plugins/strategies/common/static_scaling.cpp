#include "static_scaling.h"

namespace sgs {

void StaticScaling::attach(StrategyContext& ctx) {
  ScalingStrategy::attach(ctx);
  for (auto& block : ctx.convs) set_scaling(*block, matrix_for(*block));
}

void StaticScaling::on_epoch_begin(StrategyContext& ctx) {
  if (ctx.epochs_done != 0) return;
  for (auto& block : ctx.convs) log_scaling(ctx, *block, scaling(block->path()));
}

}  // namespace sgs
