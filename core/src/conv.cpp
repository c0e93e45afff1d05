#include <sgs/conv.h>

#include <torch/nn/init.h>
#include <torch/torch.h>

#include <cmath>

namespace sgs {

// The sink gets float32 in NCHW order whatever the run's precision and memory
// format: the dependence code computes on exactly these values.
void ConvBlock::capture(const torch::Tensor& x) {
  if (!sink_) return;
  sink_(path_, pad_input(x.to(torch::kFloat32).contiguous(), spec_).contiguous());
}

std::pair<torch::Tensor, torch::Tensor> init_conv(const ConvSpec& spec) {
  torch::NoGradGuard no_grad;
  auto weight = torch::empty({spec.out_channels, spec.in_channels / spec.groups, spec.kernel[0], spec.kernel[1]});
  const double fan_in = static_cast<double>(weight.size(1) * spec.kernel[0] * spec.kernel[1]);
  if (spec.init == ConvSpec::Init::PytorchDefault) {
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  } else {
    torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  torch::Tensor bias;
  if (spec.bias) {
    if (spec.init == ConvSpec::Init::PytorchDefault) {
      const double bound = 1.0 / std::sqrt(fan_in);
      bias = torch::empty({spec.out_channels}).uniform_(-bound, bound);
    } else {
      bias = torch::zeros({spec.out_channels});
    }
  }
  return {weight, bias};
}

PlainConv::PlainConv(ConvSpec spec) : ConvBlock(spec) {
  auto [w, b] = init_conv(spec_);
  weight = register_parameter("weight", w);
  if (b.defined()) bias = register_parameter("bias", b);
}

torch::Tensor PlainConv::forward(torch::Tensor x) {
  capture(x);
  return torch::conv2d(x, weight, bias, {spec_.stride[0], spec_.stride[1]}, {spec_.padding[0], spec_.padding[1]},
                       {spec_.dilation[0], spec_.dilation[1]}, spec_.groups);
}

std::pair<torch::Tensor, torch::Tensor> PlainConv::fused() {
  auto w = weight.detach().clone();
  auto b = bias.defined() ? bias.detach().clone() : torch::zeros({spec_.out_channels}, w.options());
  return {w, b};
}

std::shared_ptr<ConvBlock> ConvFactory::make(const ConvSpec& spec) { return std::make_shared<PlainConv>(spec); }

ConvNorm ConvFactory::conv_bn(const ConvSpec& spec) {
  ConvNorm unit;
  unit.conv = make(spec);
  if (norm_after(spec)) unit.norm = BatchNorm2d(spec.out_channels);
  return unit;
}

std::vector<std::shared_ptr<ConvBlock>> conv_blocks(torch::nn::Module& root) {
  std::vector<std::shared_ptr<ConvBlock>> out;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    auto block = std::dynamic_pointer_cast<ConvBlock>(item.value());
    if (!block) continue;
    bool nested = false;  // a block inside a block is an implementation detail of the outer one
    for (const auto& outer : out) nested = nested || item.key().rfind(outer->path() + ".", 0) == 0;
    if (nested) continue;
    block->set_path(item.key());
    out.push_back(block);
  }
  return out;
}

torch::Tensor pad_input(const torch::Tensor& x, const ConvSpec& spec) {
  if (spec.padding[0] == 0 && spec.padding[1] == 0) return x;
  return torch::constant_pad_nd(x, {spec.padding[1], spec.padding[1], spec.padding[0], spec.padding[0]}, 0.0);
}

}  // namespace sgs

#include <sgs/model.h>

namespace sgs {

int64_t scaled_width(int64_t channels, double width) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(channels) * width));
}

}  // namespace sgs
