// The benchmarks' command line: `--name value` pairs, each with a fallback,
// and the device they run on.
#pragma once

#include <torch/cuda.h>
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sgs::bench {

inline std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

// --device auto|cpu|cuda (default auto: CUDA when LibTorch sees a device).
// Asking for cuda where there is none is an error, as in a run's config.
inline torch::Device device_arg(int argc, char** argv) {
  const std::string name = arg(argc, argv, "device", "auto");
  if (name != "auto" && name != "cpu" && name != "cuda")
    throw std::invalid_argument("--device: '" + name + "' is not one of auto, cpu, cuda");
  if (name == "cuda" && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: this LibTorch build sees no usable CUDA device");
  return name != "cpu" && torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

// A list argument's items ("none,dbb" -> {"none", "dbb"}; empty items dropped).
inline std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

// --input CxHxW and --classes: the shape of the images and labels a benchmark feeds its models.
struct Shape {
  int64_t channels = 3, height = 32, width = 32, classes = 10;
};

inline Shape parse_shape(const std::string& input, int64_t classes) {
  const auto parts = split(input, 'x');
  if (parts.size() != 3) throw std::invalid_argument("--input: '" + input + "' is not CxHxW (e.g. 3x32x32)");
  Shape s{std::stoll(parts[0]), std::stoll(parts[1]), std::stoll(parts[2]), classes};
  if (s.channels < 1 || s.height < 1 || s.width < 1 || s.classes < 1)
    throw std::invalid_argument("--input/--classes: sizes must be positive");
  return s;
}

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Waits for the device's queued work, so that a clock read after it counts it.
inline void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace sgs::bench
