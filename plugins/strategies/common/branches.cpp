#include "branches.h"

#include <sgs/errors.h>

#include <torch/torch.h>

namespace sgs::branches {

bool BlockOptions::converts(const ConvSpec& spec) const {
  return spec.spatial() && (convert_large_kernels || std::max(spec.kernel[0], spec.kernel[1]) < 7);
}

ConvSpec BlockOptions::drawn(ConvSpec spec) const {
  if (init == "pytorch") spec.init = ConvSpec::Init::PytorchDefault;
  return spec;
}

bool has_identity(const ConvSpec& s) {
  return s.in_channels == s.out_channels && s.stride[0] == 1 && s.stride[1] == 1 &&
         s.padding[0] == s.kernel[0] / 2 && s.padding[1] == s.kernel[1] / 2;
}

torch::Tensor identity_kernel(const ConvSpec& s, const torch::TensorOptions& options, bool average) {
  const int64_t c = s.out_channels, per_group = s.in_channels / s.groups;
  auto id = torch::zeros({c, per_group, s.kernel[0], s.kernel[1]}, options);
  auto rows = torch::arange(c, torch::kLong);
  if (average) {
    id.index_put_({rows, rows.remainder(per_group)},
                  torch::full({s.kernel[0], s.kernel[1]}, 1.0 / static_cast<double>(s.kernel[0] * s.kernel[1]), options));
  } else {
    id.index_put_({rows, rows.remainder(per_group), s.kernel[0] / 2, s.kernel[1] / 2}, 1.0);
  }
  return id;
}

torch::Tensor pad_to_centre(const torch::Tensor& weight, const std::array<int64_t, 2>& kernel) {
  const int64_t dh = kernel[0] - weight.size(2), dw = kernel[1] - weight.size(3);
  TORCH_CHECK(dh >= 0 && dw >= 0 && dh % 2 == 0 && dw % 2 == 0, "pad_to_centre: a ", weight.size(2), "x",
              weight.size(3), " kernel does not centre in ", kernel[0], "x", kernel[1]);
  if (dh == 0 && dw == 0) return weight;
  return torch::constant_pad_nd(weight, {dw / 2, dw / 2, dh / 2, dh / 2}, 0.0);
}

torch::Tensor centred_conv(const torch::Tensor& x, const torch::Tensor& weight, const ConvSpec& block) {
  using torch::indexing::Slice;
  std::array<int64_t, 2> pad{};
  torch::Tensor input = x;
  for (int d = 0; d < 2; ++d) {
    pad[d] = block.padding[d] - (block.kernel[d] - weight.size(2 + d)) / 2;
    if (pad[d] < 0) {  // the block's window starts inside the map: crop instead of padding
      const int64_t axis = 2 + d, n = input.size(axis);
      input = input.slice(axis, -pad[d], n + pad[d]);
      pad[d] = 0;
    }
  }
  return torch::conv2d(input, weight, {}, {block.stride[0], block.stride[1]}, {pad[0], pad[1]}, {1, 1},
                       block.groups);
}

torch::Tensor pad_with_values(const torch::Tensor& x, const torch::Tensor& values,
                              const std::array<int64_t, 2>& padding) {
  if (padding[0] == 0 && padding[1] == 0) return x;
  auto v = values.view({1, -1, 1, 1});
  return torch::constant_pad_nd(x - v, {padding[1], padding[1], padding[0], padding[0]}, 0.0) + v;
}

ConvSpec branch_spec(const ConvSpec& spec, int64_t in_channels, int64_t out_channels,
                     std::array<int64_t, 2> kernel) {
  ConvSpec s = spec;
  s.in_channels = in_channels;
  s.out_channels = out_channels;
  s.kernel = kernel;
  s.bias = false;
  return s;
}

std::string kernel_text(const std::array<int64_t, 2>& kernel) {
  return std::to_string(kernel[0]) + "x" + std::to_string(kernel[1]);
}

void require_supported(const ConvSpec& spec, const std::string& strategy, bool single_group) {
  const std::string where = "strategy.name: " + strategy;
  if (spec.kernel[0] % 2 == 0 || spec.kernel[1] % 2 == 0)
    throw ConfigError(where + " needs odd kernel sizes (branches align on the centre), got a " +
                      kernel_text(spec.kernel) + " conv");
  if (spec.dilation[0] != 1 || spec.dilation[1] != 1)
    throw ConfigError(where + " needs dilation 1, got a conv with dilation " + std::to_string(spec.dilation[0]) +
                      "x" + std::to_string(spec.dilation[1]));
  if (single_group && spec.groups != 1)
    throw ConfigError(where + " needs groups = 1, got a conv with " + std::to_string(spec.groups) + " groups");
}

}  // namespace sgs::branches
