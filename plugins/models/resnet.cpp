// ResNet-18/34 (basic blocks) and ResNet-50 (bottlenecks), He et al. 2016.
// stem "cifar": 3x3 stride-1 conv, no max-pool; stem "imagenet": 7x7 stride-2
// conv + 3x3 stride-2 max-pool; "auto" picks imagenet for inputs of 128
// pixels or more. Module paths follow torchvision (layer1.0.conv1, ...); every
// conv comes with its BN (bn1, ...) unless the strategy's unit replaces both.
#include <sgs/export_graph.h>
#include <sgs/model.h>

#include <torch/torch.h>

namespace {

using sgs::ConvFactory;
using sgs::ConvSpec;

ConvSpec conv_spec(int64_t in, int64_t out, int64_t k, int64_t stride) {
  ConvSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel = {k, k};
  s.stride = {stride, stride};
  s.padding = {k / 2, k / 2};
  return s;
}

torch::nn::Sequential downsample(int64_t in, int64_t out, int64_t stride, ConvSpec::Role role, ConvFactory& f) {
  torch::nn::Sequential d;
  ConvSpec spec = conv_spec(in, out, 1, stride);
  spec.role = role;
  auto unit = f.conv_bn(spec);
  d->push_back(unit.conv);
  if (unit.norm) d->push_back(unit.norm);
  return d;
}

class BasicBlock : public sgs::UnitModule {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t in, int64_t planes, int64_t stride, ConvFactory& f) {
    unit1 = register_unit("conv1", "bn1", f.conv_bn(conv_spec(in, planes, 3, stride)));
    unit2 = register_unit("conv2", "bn2", f.conv_bn(conv_spec(planes, planes, 3, 1)));
    if (stride != 1 || in != planes)
      down = register_module("downsample", downsample(in, planes, stride, ConvSpec::Role::BasicShortcut, f));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(unit1.forward(x));
    out = unit2.forward(out);
    return torch::relu(out + (down ? down->forward(x) : x));
  }
  std::string export_graph(sgs::ExportGraph& g, const std::string& x) {
    auto out = g.unit(unit2, g.relu(g.unit(unit1, x)));
    return g.relu(g.add(out, down ? g.sequential(down, x) : x));
  }

 private:
  sgs::ConvNorm unit1, unit2;
  torch::nn::Sequential down{nullptr};
};

class Bottleneck : public sgs::UnitModule {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in, int64_t planes, int64_t stride, ConvFactory& f) {
    unit1 = register_unit("conv1", "bn1", f.conv_bn(conv_spec(in, planes, 1, 1)));
    unit2 = register_unit("conv2", "bn2", f.conv_bn(conv_spec(planes, planes, 3, stride)));
    unit3 = register_unit("conv3", "bn3", f.conv_bn(conv_spec(planes, planes * kExpansion, 1, 1)));
    if (stride != 1 || in != planes * kExpansion)
      down = register_module("downsample",
                             downsample(in, planes * kExpansion, stride, ConvSpec::Role::BottleneckShortcut, f));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(unit1.forward(x));
    out = torch::relu(unit2.forward(out));
    out = unit3.forward(out);
    return torch::relu(out + (down ? down->forward(x) : x));
  }
  std::string export_graph(sgs::ExportGraph& g, const std::string& x) {
    auto out = g.unit(unit3, g.relu(g.unit(unit2, g.relu(g.unit(unit1, x)))));
    return g.relu(g.add(out, down ? g.sequential(down, x) : x));
  }

 private:
  sgs::ConvNorm unit1, unit2, unit3;
  torch::nn::Sequential down{nullptr};
};

template <class Block>
class ResNet : public sgs::Model {
 public:
  ResNet(const std::vector<int64_t>& depths, double width, bool imagenet_stem, const sgs::ModelSpec& spec,
         ConvFactory& f) {
    int64_t in = sgs::scaled_width(64, width);
    stem_ = register_unit("conv1", "bn1",
                          f.conv_bn(imagenet_stem ? conv_spec(spec.in_channels, in, 7, 2)
                                                  : conv_spec(spec.in_channels, in, 3, 1)));
    imagenet_stem_ = imagenet_stem;
    const int64_t planes[4] = {64, 128, 256, 512};
    for (int i = 0; i < 4; ++i) {
      torch::nn::Sequential layer;
      int64_t p = sgs::scaled_width(planes[i], width);
      for (int64_t b = 0; b < depths[i]; ++b) {
        layer->push_back(std::make_shared<Block>(in, p, b == 0 && i > 0 ? 2 : 1, f));
        in = p * Block::kExpansion;
      }
      layers_.push_back(register_module("layer" + std::to_string(i + 1), layer));
    }
    fc_ = register_module("fc", torch::nn::Linear(in, spec.num_classes));
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(stem_.forward(x));
    if (imagenet_stem_) x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& l : layers_) x = l->forward(x);
    return fc_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }

  std::string export_graph(sgs::ExportGraph& g, const std::string& input) override {
    auto x = g.relu(g.unit(stem_, input));
    if (imagenet_stem_) x = g.max_pool(x, 3, 2, 1, /*ceil_mode=*/false);
    for (auto& l : layers_)
      for (const auto& block : l->children()) x = std::dynamic_pointer_cast<Block>(block)->export_graph(g, x);
    return g.linear(*fc_, g.flatten(g.global_average_pool(x)), "fc");
  }

 private:
  sgs::ConvNorm stem_;
  std::vector<torch::nn::Sequential> layers_;
  torch::nn::Linear fc_{nullptr};
  bool imagenet_stem_ = false;
};

struct ResNetOptions : sgs::PluginOptions {
  double width = 1.0;
  std::string stem = "auto";
  static void declare(sgs::Declare<ResNetOptions>& d) {
    d.key(&ResNetOptions::width, "width", "channel width multiplier").gt(0).le(16);
    d.choice(&ResNetOptions::stem, "stem", {"auto", "cifar", "imagenet"},
             "cifar: 3x3 conv; imagenet: 7x7/2 conv + max-pool; auto: imagenet from 128 px");
  }
};

template <class Block>
auto resnet(std::vector<int64_t> depths) {
  return [depths](const ResNetOptions& o, const sgs::ModelSpec& spec, ConvFactory& f) {
    bool imagenet = o.stem == "imagenet" || (o.stem == "auto" && std::min(spec.height, spec.width) >= 128);
    return std::shared_ptr<sgs::Model>(std::make_shared<ResNet<Block>>(depths, o.width, imagenet, spec, f));
  };
}

}  // namespace

SGS_REGISTER(sgs::ModelKind, resnet18, "ResNet-18 (basic blocks 2-2-2-2), CIFAR or ImageNet stem", ResNetOptions,
             resnet<BasicBlock>({2, 2, 2, 2}));
SGS_REGISTER(sgs::ModelKind, resnet34, "ResNet-34 (basic blocks 3-4-6-3), CIFAR or ImageNet stem", ResNetOptions,
             resnet<BasicBlock>({3, 4, 6, 3}));
SGS_REGISTER(sgs::ModelKind, resnet50, "ResNet-50 (bottlenecks 3-4-6-3), CIFAR or ImageNet stem", ResNetOptions,
             resnet<Bottleneck>({3, 4, 6, 3}));
