#include "opencv_net.h"

#include <torch/torch.h>

#include <stdexcept>

#if SGS_HAVE_OPENCV_DNN
#include <opencv2/core/version.hpp>
#include <opencv2/dnn.hpp>
#endif

namespace sgs::deploy {

bool opencv_dnn_available() { return SGS_HAVE_OPENCV_DNN != 0; }

std::string missing_opencv_dnn(const std::string& who) {
  return who + ": this build has no OpenCV DNN module: install libopencv-dnn-dev (scripts/bootstrap.sh does) and rebuild";
}

#if SGS_HAVE_OPENCV_DNN

std::string opencv_runtime_name() { return std::string("opencv_dnn ") + CV_VERSION; }

struct OpenCvNet::Impl {
  cv::dnn::Net net;
};

namespace {

// A float32 NCHW tensor as a Mat over the tensor's memory (the tensor must outlive it).
cv::Mat blob_of(const torch::Tensor& images) {
  std::vector<int> dims(images.sizes().begin(), images.sizes().end());
  return cv::Mat(static_cast<int>(dims.size()), dims.data(), CV_32F, images.data_ptr<float>());
}

torch::Tensor cpu_float(const torch::Tensor& images) {
  return images.to(torch::kCPU, torch::kFloat32).contiguous();
}

}  // namespace

OpenCvNet::OpenCvNet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OpenCvNet::OpenCvNet(OpenCvNet&&) noexcept = default;
OpenCvNet& OpenCvNet::operator=(OpenCvNet&&) noexcept = default;
OpenCvNet::~OpenCvNet() = default;

OpenCvNet OpenCvNet::from_onnx(const std::string& bytes) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
  } catch (const cv::Exception& e) {
    throw std::runtime_error("OpenCV's DNN cannot read the ONNX model: " + std::string(e.what()));
  }
  impl->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  impl->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  return OpenCvNet(std::move(impl));
}

torch::Tensor OpenCvNet::forward(const torch::Tensor& images) {
  auto x = cpu_float(images);
  try {
    impl_->net.setInput(blob_of(x));
    cv::Mat out = impl_->net.forward();
    if (out.dims != 2 || out.size[0] != x.size(0))
      throw std::runtime_error("OpenCV's DNN returned an output of another shape than [batch, classes]");
    return torch::from_blob(out.ptr<float>(), {out.size[0], out.size[1]}, torch::kFloat32).clone();
  } catch (const cv::Exception& e) {
    throw std::runtime_error("OpenCV's DNN failed to run the model: " + std::string(e.what()));
  }
}

OpenCvNet OpenCvNet::quantized(const std::vector<torch::Tensor>& calibration) {
  if (calibration.empty()) throw std::runtime_error("OpenCV's Net::quantize: no calibration images");
  // One blob per network input: every calibration batch in one.
  std::vector<torch::Tensor> cpu;
  for (const auto& c : calibration) cpu.push_back(cpu_float(c));
  const auto all = torch::cat(cpu).contiguous();
  std::vector<cv::Mat> blobs{blob_of(all)};
  auto impl = std::make_unique<Impl>();
  try {
    impl->net = impl_->net.quantize(blobs, CV_32F, CV_32F);
  } catch (const cv::Exception& e) {
    throw std::runtime_error("OpenCV's Net::quantize failed: " + std::string(e.what()));
  }
  impl->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  impl->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  return OpenCvNet(std::move(impl));
}

#else

std::string opencv_runtime_name() { return "none"; }
struct OpenCvNet::Impl {};
OpenCvNet::OpenCvNet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OpenCvNet::OpenCvNet(OpenCvNet&&) noexcept = default;
OpenCvNet& OpenCvNet::operator=(OpenCvNet&&) noexcept = default;
OpenCvNet::~OpenCvNet() = default;
OpenCvNet OpenCvNet::from_onnx(const std::string&) { throw std::runtime_error(missing_opencv_dnn("sgs")); }
torch::Tensor OpenCvNet::forward(const torch::Tensor&) { throw std::runtime_error(missing_opencv_dnn("sgs")); }
OpenCvNet OpenCvNet::quantized(const std::vector<torch::Tensor>&) {
  throw std::runtime_error(missing_opencv_dnn("sgs"));
}

#endif

}  // namespace sgs::deploy
