// Models: a plugin kind. Built through a ConvFactory; input channels, classes
// and image size come from the dataset.
#pragma once

#include <sgs/conv.h>
#include <sgs/registry.h>

namespace sgs {

struct ModelSpec {
  int64_t in_channels = 3;
  int64_t num_classes = 10;
  int64_t height = 32, width = 32;
};

// A module built of conv + norm units (models and their blocks): registers
// a unit's conv and, when the strategy keeps one, its BatchNorm.
class UnitModule : public torch::nn::Module {
 protected:
  ConvNorm register_unit(const std::string& conv_name, const std::string& norm_name, ConvNorm unit) {
    register_module(conv_name, unit.conv);
    if (unit.norm) register_module(norm_name, unit.norm);
    return unit;
  }
};

class ExportGraph;

class Model : public UnitModule {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // Writes the eval-mode forward into `g` from `x` (sgs/export_graph.h) and
  // returns the logits, for `sgs export`. A model that does not throws
  // NotExportable.
  virtual std::string export_graph(ExportGraph& g, const std::string& x);
};

struct ModelKind {
  static constexpr const char* kName = "model";
  using Factory = std::function<std::shared_ptr<Model>(const Options&, const ModelSpec&, ConvFactory&)>;
};

// Channels scaled by a width multiplier (at least 1).
int64_t scaled_width(int64_t channels, double width);

}  // namespace sgs
