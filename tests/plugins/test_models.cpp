#include <doctest/doctest.h>

#include <sgs/config.h>
#include <sgs/model.h>
#include <sgs/registry.h>

#include <torch/torch.h>

using namespace sgs;

namespace {

std::shared_ptr<Model> make(const std::string& name, const ModelSpec& spec, Json keys = Json::object()) {
  const auto& info = Registry::global().get("model", name);
  keys["name"] = name;
  Options o(resolve_object(keys, "model", info.schema, {"name"}), "model");
  ConvFactory plain;
  torch::manual_seed(0);
  return Registry::global().factory<ModelKind>(name)(o, spec, plain);
}

}  // namespace

TEST_CASE("models: every registered model gives [N, classes] on CIFAR, Fashion-MNIST and ImageNet shapes") {
  torch::NoGradGuard no_grad;
  for (const auto& name : Registry::global().names("model")) {
    struct Case {
      ModelSpec spec;
      double width;
    };
    for (const Case& c : {Case{{3, 100, 32, 32}, 0.25}, Case{{1, 10, 28, 28}, 0.25}, Case{{3, 1000, 224, 224}, 0.125}}) {
      INFO(name << " " << c.spec.in_channels << "x" << c.spec.height);
      auto model = make(name, c.spec, {{"width", c.width}});
      model->eval();
      auto y = model->forward(torch::randn({2, c.spec.in_channels, c.spec.height, c.spec.width}));
      CHECK(y.sizes() == torch::IntArrayRef{2, c.spec.num_classes});
      CHECK(torch::isfinite(y).all().item<bool>());
    }
  }
}

TEST_CASE("models: convs are reachable by module path with their geometry") {
  auto vgg = make("vgg11", {3, 10, 32, 32});
  auto blocks = conv_blocks(*vgg);
  REQUIRE(blocks.size() == 8);
  CHECK(blocks[0]->path() == "features.0");
  CHECK(blocks[1]->path() == "features.4");
  CHECK(blocks[1]->spec().in_channels == 64);
  CHECK(blocks[1]->spec().out_channels == 128);
  CHECK(blocks[1]->spec().kernel == std::array<int64_t, 2>{3, 3});
  CHECK(blocks[1]->spec().padding == std::array<int64_t, 2>{1, 1});

  auto r18 = make("resnet18", {3, 1000, 224, 224}, {{"width", 0.25}});
  auto rb = conv_blocks(*r18);
  CHECK(rb[0]->path() == "conv1");
  CHECK(rb[0]->spec().kernel == std::array<int64_t, 2>{7, 7});
  CHECK(rb[0]->spec().stride == std::array<int64_t, 2>{2, 2});
  int spatial = 0, pointwise = 0;
  for (auto& b : rb) (b->spec().spatial() ? spatial : pointwise)++;
  CHECK(spatial == 17);   // stem + 16 3x3 convs
  CHECK(pointwise == 3);  // downsample 1x1 convs
  bool found = false;
  for (auto& b : rb) found = found || b->path() == "layer2.0.downsample.0";
  CHECK(found);
  auto cifar = make("resnet18", {3, 10, 32, 32}, {{"width", 0.25}});
  CHECK(conv_blocks(*cifar)[0]->spec().kernel == std::array<int64_t, 2>{3, 3});
}

TEST_CASE("models: capture hands the sink each conv's zero-padded input") {
  auto vgg = make("vgg11", {1, 10, 28, 28}, {{"width", 0.25}});
  vgg->eval();
  auto blocks = conv_blocks(*vgg);
  std::map<std::string, torch::Tensor> seen;
  for (auto& b : blocks) b->set_capture([&](const std::string& p, const torch::Tensor& x) { seen[p] = x; });
  auto input = torch::rand({3, 1, 28, 28}) + 0.5;
  vgg->forward(input);
  for (auto& b : blocks) b->set_capture(nullptr);
  REQUIRE(seen.size() == 8);
  auto first = seen.at("features.0");
  CHECK(first.sizes() == torch::IntArrayRef{3, 1, 30, 30});
  using torch::indexing::Slice;
  CHECK(torch::equal(first.index({Slice(), Slice(), Slice(1, 29), Slice(1, 29)}), input));
  CHECK(first.index({Slice(), Slice(), 0, Slice()}).abs().sum().item<double>() == 0);
  CHECK(seen.at("features.4").sizes() == torch::IntArrayRef{3, 16, 16, 16});  // 14x14 padded
  seen.clear();
  vgg->forward(input);
  CHECK(seen.empty());
}
