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

class Model : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

struct ModelKind {
  static constexpr const char* kName = "model";
  using Factory = std::function<std::shared_ptr<Model>(const Options&, const ModelSpec&, ConvFactory&)>;
};

// Channels scaled by a width multiplier (at least 1).
int64_t scaled_width(int64_t channels, double width);

}  // namespace sgs
