// The twin block's equivalence test: in eval mode, with BatchNorms that are
// not the identity, the fused conv gives the branched block's output.
#include <doctest/doctest.h>

#include "support/plugins.h"

#include <sgs/norm.h>

#include <torch/torch.h>

TEST_CASE("twin: the fused conv equals the branched block in eval mode") {
  torch::manual_seed(0);
  sgs::ConvSpec spec;
  spec.in_channels = 4;
  spec.out_channels = 6;
  spec.kernel = {3, 3};
  spec.stride = {2, 2};
  spec.padding = {1, 1};
  auto block = sgs::test::make_strategy("twin")->conv_factory()->make(spec);
  torch::NoGradGuard no_grad;
  for (const auto& m : block->modules())
    if (auto* bn = dynamic_cast<sgs::BatchNorm2dImpl*>(m.get())) {
      bn->running_mean.uniform_(-1, 1);
      bn->running_var.uniform_(0.5, 2);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-1, 1);
    }
  block->eval();
  const auto x = torch::randn({2, 4, 9, 9});
  const auto [weight, bias] = block->fused();
  const auto plain = torch::conv2d(x, weight, bias, {2, 2}, {1, 1});
  CHECK(sgs::test::rel_diff(block->forward(x), plain) < 1e-5);
}
