// Runs on a GPU: the same work on the CPU and on CUDA, compared. The cases are
// marked skip for the per-case CTest entries and run together by the CTest
// `cuda` (label cuda, tests/CMakeLists.txt); without a usable CUDA device each
// reports itself skipped. The tolerances are first estimates, not yet
// measured on a GPU.
#include <doctest/doctest.h>

#include "plugins/strategies/common/dependence.h"
#include "support/support.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

using namespace sgs;
using namespace sgs::test;
namespace fs = std::filesystem;

namespace {

// The largest |a - b| / max(|b|, floor) over two equally long series.
double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-3) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), floor));
  return worst;
}

Json on(Json config, const std::string& device) {
  config["device"] = device;
  return config;
}

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("cuda: a tiny run trains on the GPU to the CPU's loss curve (fp32, within 2 %)" * doctest::skip()) {
  if (!torch::cuda::is_available()) SGS_SKIP("no usable CUDA device");
  TempDir dir("cuda_train");
  const Json config = tiny_config(2);
  REQUIRE(train(on(config, "cpu"), dir / "cpu").status == RunStatus::Completed);
  REQUIRE(train(on(config, "cuda"), dir / "cuda").status == RunStatus::Completed);
  // cuDNN's convolutions sum in another order: close, not bitwise equal.
  CHECK(max_relative_difference(metric(dir / "cuda", "train_loss"), metric(dir / "cpu", "train_loss")) < 0.02);
  CHECK(max_relative_difference(metric(dir / "cuda", "test_loss"), metric(dir / "cpu", "test_loss")) < 0.02);
}

TEST_CASE("cuda: dependence (MI, autocorrelation) of maps on the GPU equals the CPU kernel's on the same maps" *
          doctest::skip()) {
  if (!torch::cuda::is_available()) SGS_SKIP("no usable CUDA device");
  torch::manual_seed(5);
  // ReLU-like maps with many zeros (diagonal removal matters), padded by 1.
  const auto x = torch::constant_pad_nd(torch::relu(torch::randn({8, 6, 9, 9})), {1, 1, 1, 1});
  ConvSpec spec;
  spec.kernel = {3, 3};
  spec.padding = {1, 1};
  for (auto measure : {dependence::Measure::MutualInformation, dependence::Measure::Autocorrelation})
    for (bool diagonal_removal : {false, true}) {
      CAPTURE(static_cast<int>(measure));
      CAPTURE(diagonal_removal);
      dependence::Options o;
      o.measure = measure;
      o.diagonal_removal = diagonal_removal;
      const auto cpu = dependence::compute(x, spec, o);
      const auto cuda = dependence::compute(x.to(torch::kCUDA), spec, o);
      // Bin edges are computed in float on each device: a value on an edge
      // may fall in the neighbouring bin, which moves an NMI by ~1e-4.
      CHECK(torch::allclose(cuda.dependence.cpu(), cpu.dependence, 0, 1e-3));
      CHECK(torch::allclose(cuda.scaling.cpu(), cpu.scaling, 0, 1e-3));
    }
}

}  // TEST_SUITE("cuda")
