// Our mutual-information dependence against the authors' public code:
// tests/reference/mi_reference.json holds seeded feature maps and what their
// feature_map_nmik and dependence_to_spatial_gradient_scaling gave for them
// (written once by tests/reference/make_mi_reference.py from a checkout of
// their repository; checked in, so a missing file is a failure).
#include <doctest/doctest.h>

#include "plugins/strategies/common/dependence.h"

#include <sgs/config.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

using namespace sgs;
namespace dep = sgs::dependence;

namespace {

const std::string kMiReference = std::string(SGS_SOURCE_DIR) + "/tests/reference/mi_reference.json";

// [C, kh, kw] or [kh, kw] of the file's nested lists; null -> NaN.
torch::Tensor nested(const Json& j) {
  std::vector<int64_t> shape;
  for (const Json* p = &j; p->is_array(); p = &(*p)[0]) shape.push_back(static_cast<int64_t>(p->size()));
  std::vector<double> flat;
  std::function<void(const Json&)> walk = [&](const Json& v) {
    if (v.is_array()) {
      for (const auto& e : v) walk(e);
    } else {
      flat.push_back(v.is_null() ? NAN : v.get<double>());
    }
  };
  walk(j);
  return torch::tensor(flat, torch::kFloat64).view(shape);
}

// Largest |ours - theirs| and the largest relative one (over |theirs| >= 1e-3);
// NaN must sit at the same entries in both.
struct Error {
  double abs = 0, rel = 0;
  void add(const torch::Tensor& ours, const torch::Tensor& theirs, const std::string& what) {
    INFO(what << "\nours\n" << ours << "\ntheirs\n" << theirs);
    REQUIRE(ours.sizes() == theirs.sizes());
    CHECK(torch::equal(torch::isnan(ours), torch::isnan(theirs)));
    auto both = torch::isfinite(ours) & torch::isfinite(theirs);
    auto diff = (ours - theirs).abs().masked_select(both);
    auto scale = theirs.abs().masked_select(both);
    if (diff.numel() == 0) return;
    abs = std::max(abs, diff.max().item<double>());
    auto big = scale >= 1e-3;
    if (big.any().item<bool>()) rel = std::max(rel, (diff.masked_select(big) / scale.masked_select(big)).max().item<double>());
  }
};

}  // namespace

TEST_CASE("mutual information: per-channel NMI, dependence and G agree with the authors' dependence.py") {
  INFO(kMiReference);
  REQUIRE_MESSAGE(std::filesystem::exists(kMiReference),
                  "the checked-in reference is missing (regenerate it with tests/reference/make_mi_reference.py)");
  const Json ref = read_json_file(kMiReference);
  REQUIRE(ref.at("cases").size() >= 6);
  Error per_channel, dependence, scaling;
  int64_t nan_channels = 0, zero_entries = 0, dead_generic = 0;
  for (const auto& c : ref.at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    const auto shape = c.at("shape").get<std::vector<int64_t>>();
    const auto values = c.at("map").get<std::vector<float>>();
    REQUIRE(static_cast<int64_t>(values.size()) == shape[0] * shape[1] * shape[2] * shape[3]);
    auto x = torch::tensor(values, torch::kFloat32).view(shape);
    ConvSpec spec;
    spec.in_channels = spec.out_channels = shape[1];
    spec.kernel = c.at("kernel").get<std::array<int64_t, 2>>();
    spec.padding = c.at("padding").get<std::array<int64_t, 2>>();
    const auto padded = pad_input(x, spec);  // zeros, as their forward hook pads
    dep::Options o;
    o.k = c.at("k").get<double>();
    o.diagonal_removal = c.at("diagonal_removal").get<bool>();
    const auto their_pc = nested(c.at("per_channel")), their_dep = nested(c.at("dependence")),
               their_g = nested(c.at("scaling"));
    REQUIRE(their_pc.sizes() == torch::IntArrayRef{shape[1], spec.kernel[0], spec.kernel[1]});
    nan_channels += torch::isnan(their_pc).any(2).any(1).sum().item<int64_t>();
    zero_entries += (their_pc == 0).sum().item<int64_t>();
    const bool dead_channel = (x.abs().amax({0, 2, 3}) == 0).any().item<bool>();
    for (bool generic : {false, true}) {
      const std::string what = name + (generic ? " (generic tensor path)" : " (CPU kernel)");
      o.generic_kernel = generic;
      INFO(what);
      if (generic && o.diagonal_removal && dead_channel) ++dead_generic;  // bincount once threw on it
      auto r = dep::compute(padded, spec, o);
      per_channel.add(r.per_channel, their_pc, what + ": per_channel");
      dependence.add(r.dependence, their_dep, what + ": dependence");
      scaling.add(r.scaling, their_g, what + ": scaling");
    }
  }
  MESSAGE("ours vs the authors' dependence.py, largest |difference| (relative): per-channel NMI " << per_channel.abs
          << " (" << per_channel.rel << "), dependence " << dependence.abs << " (" << dependence.rel << "), G "
          << scaling.abs << " (" << scaling.rel << ")");
  // Theirs are float32 (6e-8 relative rounding), their channel means summed in float32.
  CHECK(per_channel.rel < 1e-6);
  CHECK(dependence.rel < 1e-6);
  CHECK(scaling.rel < 1e-6);
  // The data exercise what they claim: a dead channel (NaN without diagonal
  // removal; a constant one is not constant once zero-padded) and entries
  // that diagonal removal sets to 0.
  CHECK(nan_channels >= 1);
  CHECK(zero_entries > 0);
  CHECK(dead_generic == 1);
}
