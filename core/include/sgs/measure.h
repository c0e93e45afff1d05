// A dependence measure: how strongly each pixel of a conv's input depends on
// its neighbour at every kernel displacement, and the scaling G that follows
// (paper section 3.3; docs/method.md section 3). Scaling strategies compute
// it while training; `sgs dependence` computes it for a saved feature map.
// Plugins register their measures under this kind so that the CLI reaches
// them by name, never by including plugin code.
#pragma once

#include <sgs/conv.h>
#include <sgs/schema.h>

#include <torch/types.h>

#include <functional>

namespace sgs {

struct MeasureResult {
  torch::Tensor per_channel;  // float64 [C, kh, kw]: the raw measure, NaN where undefined
  torch::Tensor dependence;   // float64 [kh, kw]: nan-mean over channels of the raw measure
  torch::Tensor scaling;      // float64 [kh, kw]: G (mean 1); NaN entries when undefined
};

struct MeasureKind {
  static constexpr const char* kName = "measure";
  // `options`: the measure's own keys (its schema); `padded`: float
  // [N, C, H, W] already zero-padded by the conv's padding.
  using Factory = std::function<MeasureResult(const Options& options, const torch::Tensor& padded, const ConvSpec& spec)>;
};

}  // namespace sgs
