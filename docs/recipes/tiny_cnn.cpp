// tiny_cnn: two 3x3 conv units (conv, the strategy's BatchNorm, ReLU) of
// 16 and 32 channels times `width`, with a 2x2 max-pool between them, global
// average pooling and a linear classifier. Its convs are built by the run's ConvFactory, so every
// strategy applies to it.
#include <sgs/model.h>

#include <torch/torch.h>

namespace {

struct TinyCnnOptions : sgs::PluginOptions {
  double width = 1.0;  // every model has this key: the tests build them small
  static void declare(sgs::Declare<TinyCnnOptions>& d) {
    d.key(&TinyCnnOptions::width, "width", "channel width multiplier").gt(0).le(16);
  }
};

class TinyCnn : public sgs::Model {
 public:
  TinyCnn(const TinyCnnOptions& o, const sgs::ModelSpec& spec, sgs::ConvFactory& factory) {
    const int64_t c1 = sgs::scaled_width(16, o.width), c2 = sgs::scaled_width(32, o.width);
    first_ = register_unit("conv1", "bn1", factory.conv_bn(conv(spec.in_channels, c1)));
    second_ = register_unit("conv2", "bn2", factory.conv_bn(conv(c1, c2)));
    classifier_ = register_module("classifier", torch::nn::Linear(c2, spec.num_classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(torch::relu(first_.forward(x)), 2, 2, 0, 1, /*ceil_mode=*/true);
    x = torch::relu(second_.forward(x));
    return classifier_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }

 private:
  static sgs::ConvSpec conv(int64_t in, int64_t out) {
    sgs::ConvSpec s;
    s.in_channels = in;
    s.out_channels = out;
    s.kernel = {3, 3};
    s.padding = {1, 1};
    return s;
  }

  sgs::ConvNorm first_, second_;
  torch::nn::Linear classifier_{nullptr};
};

}  // namespace

SGS_REGISTER(sgs::ModelKind, tiny_cnn, "example: two 3x3 conv units and a linear classifier", TinyCnnOptions,
             [](const TinyCnnOptions& o, const sgs::ModelSpec& spec, sgs::ConvFactory& factory) {
               return std::shared_ptr<sgs::Model>(std::make_shared<TinyCnn>(o, spec, factory));
             });
