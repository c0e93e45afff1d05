// The deployed model as an ONNX file (libonnx-dev): an ExportGraph
// (sgs/export_graph.h) serialised as a ModelProto (IR 8) and checked by
// ONNX's own checker. Used by `sgs export`, `sgs quantize --opencv` and
// bench_deploy. Optional: without libonnx-dev, onnx_available() is false and
// onnx_model_bytes throws the one-line message of missing_onnx().
#pragma once

#include <sgs/export_graph.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sgs::deploy {

bool onnx_available();
// "WHO: this build has no ONNX library: install libonnx-dev (...) and rebuild"
std::string missing_onnx(const std::string& who);

struct OnnxModelInfo {
  int64_t opset = 13;                 // 11 to 17
  std::string batch = "dynamic";      // the input's batch: "dynamic" or a number
  std::vector<int64_t> input_shape;   // C, H, W
  int64_t classes = 0;
  std::string graph_name = "model";
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props, in order
};

// The serialised model. Throws std::runtime_error when ONNX's checker refuses
// it (a bug in a model's export_graph) or when the build has no ONNX library.
std::string onnx_model_bytes(const ExportGraph& graph, const OnnxModelInfo& info);

}  // namespace sgs::deploy
