#include <sgs/assembly.h>
#include <sgs/config.h>
#include <sgs/registry.h>

#include <torch/torch.h>

namespace sgs {

namespace {

std::string plugin_name(const Json& config, const char* slot) { return config.at(slot).at("name").get<std::string>(); }

}  // namespace

std::shared_ptr<Dataset> make_dataset(const Json& config) {
  return Registry::global().factory<DatasetKind>(plugin_name(config, "dataset"))(
      slot_options(config, "dataset"), static_cast<uint64_t>(RunSettings::of(config).seed));
}

std::unique_ptr<Strategy> make_strategy(const Json& config) {
  return Registry::global().factory<StrategyKind>(plugin_name(config, "strategy"))(slot_options(config, "strategy"));
}

std::shared_ptr<Model> build_model(const Json& config, const ModelSpec& spec, ConvFactory& factory) {
  torch::manual_seed(static_cast<uint64_t>(RunSettings::of(config).seed));
  return Registry::global().factory<ModelKind>(plugin_name(config, "model"))(slot_options(config, "model"), spec,
                                                                              factory);
}

ModelSpec model_spec(const Dataset& dataset) {
  const auto& info = dataset.info();
  return ModelSpec{info.channels, info.num_classes, info.height, info.width};
}

}  // namespace sgs
