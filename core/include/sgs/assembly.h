// A run's parts built from its resolved config, the same way wherever a run is
// built again (the trainer, sgs fuse, the tests): the same plugins, the same
// options, the same seeds.
#pragma once

#include <sgs/dataset.h>
#include <sgs/model.h>
#include <sgs/schema.h>
#include <sgs/strategy.h>

#include <memory>
#include <string>

namespace sgs {

// The dataset slot's plugin, seeded with the run's seed.
std::shared_ptr<Dataset> make_dataset(const Json& config);

// The strategy slot's plugin.
std::unique_ptr<Strategy> make_strategy(const Json& config);

// The model slot's plugin for a dataset of `spec`, its convs made by
// `factory`, its weights drawn after torch::manual_seed(the run's seed), so
// that an unloaded model is the run's initial one.
std::shared_ptr<Model> build_model(const Json& config, const ModelSpec& spec, ConvFactory& factory);

// Loads the model's parameters and buffers from a checkpoint's "model"
// archive. A tensor whose shape differs from the one the config built (a
// checkpoint of another width or model) is refused with a ConfigError naming
// `file`, the tensor and both shapes; LibTorch's own load would take it.
void load_model_weights(Model& model, torch::serialize::InputArchive& archive, const std::string& file);

// The model's input and output as the dataset gives them.
ModelSpec model_spec(const Dataset& dataset);

}  // namespace sgs
