// OpenCV's DNN module (libopencv-dnn-dev) as a second runtime for an ONNX
// model: fp32, and int8 through OpenCV's own post-training quantization
// (Net::quantize: int8 weights per output channel, int8 activations per
// tensor with a zero point from min/max calibration; OpenCV 4.6 has no other
// mode). Optional: without the module, opencv_dnn_available() is false and
// every call throws the one-line message of missing_opencv_dnn().
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace sgs::deploy {

bool opencv_dnn_available();
// "WHO: this build has no OpenCV DNN module: install libopencv-dnn-dev (...) and rebuild"
std::string missing_opencv_dnn(const std::string& who);
// "opencv_dnn 4.6.0"
std::string opencv_runtime_name();

class OpenCvNet {
 public:
  // Reads a serialised ONNX model (onnx_model_bytes). Throws std::runtime_error.
  static OpenCvNet from_onnx(const std::string& bytes);
  OpenCvNet(OpenCvNet&&) noexcept;
  OpenCvNet& operator=(OpenCvNet&&) noexcept;
  ~OpenCvNet();

  // float32 NCHW images (any device: copied to the CPU) -> float32 [N, classes] on the CPU.
  torch::Tensor forward(const torch::Tensor& images);
  // OpenCV's int8 model, its activation ranges taken from `calibration`
  // (batches of float32 NCHW images, passed to OpenCV as one blob); inputs
  // and outputs stay float32.
  OpenCvNet quantized(const std::vector<torch::Tensor>& calibration);

 private:
  struct Impl;
  explicit OpenCvNet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgs::deploy
