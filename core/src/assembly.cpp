#include <sgs/assembly.h>
#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/registry.h>

#include <torch/torch.h>

#include <map>

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

namespace {

std::string shape_text(const std::vector<int64_t>& sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i > 0 ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

}  // namespace

void load_model_weights(Model& model, torch::serialize::InputArchive& archive, const std::string& file) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> built;
  for (const auto& p : model.named_parameters())
    if (p.value().defined()) built.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : model.named_buffers())
    if (b.value().defined()) built.emplace_back(b.key(), b.value().sizes().vec());
  model.load(archive);
  std::map<std::string, torch::Tensor> loaded;
  for (const auto& p : model.named_parameters()) loaded[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) loaded[b.key()] = b.value();
  for (const auto& [name, sizes] : built) {
    const auto& t = loaded.at(name);
    if (!t.defined() || t.sizes().vec() == sizes) continue;
    throw ConfigError(file + ": model." + name + " holds a " + shape_text(t.sizes().vec()) +
                      " tensor where the run's config builds " + shape_text(sizes) +
                      " (a checkpoint of another model or width than config.json says)");
  }
}

}  // namespace sgs
