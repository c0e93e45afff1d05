// VGG-11/13/16/19 with BatchNorm (Simonyan & Zisserman 2014), CIFAR style:
// 3x3 convs with padding 1, each followed by BN (as the strategy builds the
// unit) and ReLU, 2x2 max-pools,
// then global average pooling and one linear classifier. Pools use ceil
// mode, so 28x28 inputs reach 1x1 (28-14-7-4-2-1) while 32x32 and 224x224
// are pooled exactly as with floor mode.
#include <sgs/export_graph.h>
#include <sgs/model.h>

#include <torch/torch.h>

namespace {

const std::map<std::string, std::vector<int64_t>>& configs() {
  static const std::map<std::string, std::vector<int64_t>> c = {  // 0 = max-pool
      {"vgg11", {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}},
      {"vgg13", {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}},
      {"vgg16", {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}},
      {"vgg19", {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0}},
  };
  return c;
}

class Vgg : public sgs::Model {
 public:
  Vgg(const std::vector<int64_t>& cfg, double width, const sgs::ModelSpec& spec, sgs::ConvFactory& factory) {
    torch::nn::Sequential features;
    int64_t channels = spec.in_channels;
    for (int64_t v : cfg) {
      if (v == 0) {
        features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2).ceil_mode(true)));
        continue;
      }
      int64_t out = sgs::scaled_width(v, width);
      sgs::ConvSpec conv;
      conv.in_channels = channels;
      conv.out_channels = out;
      conv.kernel = {3, 3};
      conv.padding = {1, 1};
      auto unit = factory.conv_bn(conv);
      features->push_back(unit.conv);
      if (unit.norm) features->push_back(unit.norm);
      features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
      channels = out;
    }
    features_ = register_module("features", features);
    classifier_ = register_module("classifier", torch::nn::Linear(channels, spec.num_classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = features_->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return classifier_->forward(x);
  }

  std::string export_graph(sgs::ExportGraph& g, const std::string& x) override {
    return g.linear(*classifier_, g.flatten(g.global_average_pool(g.sequential(features_, x))), "classifier");
  }

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};

struct VggOptions : sgs::PluginOptions {
  double width = 1.0;
  static void declare(sgs::Declare<VggOptions>& d) {
    d.key(&VggOptions::width, "width", "channel width multiplier").gt(0).le(16);
  }
};

auto vgg(const char* name) {
  return [name](const VggOptions& o, const sgs::ModelSpec& spec, sgs::ConvFactory& factory) {
    return std::shared_ptr<sgs::Model>(std::make_shared<Vgg>(configs().at(name), o.width, spec, factory));
  };
}

}  // namespace

SGS_REGISTER(sgs::ModelKind, vgg11, "VGG-11 with BatchNorm, CIFAR style (8 convs)", VggOptions, vgg("vgg11"));
SGS_REGISTER(sgs::ModelKind, vgg13, "VGG-13 with BatchNorm, CIFAR style (10 convs)", VggOptions, vgg("vgg13"));
SGS_REGISTER(sgs::ModelKind, vgg16, "VGG-16 with BatchNorm, CIFAR style (13 convs)", VggOptions, vgg("vgg16"));
SGS_REGISTER(sgs::ModelKind, vgg19, "VGG-19 with BatchNorm, CIFAR style (16 convs)", VggOptions, vgg("vgg19"));
