// fixed: any G given in the config, for all layers or per layer:
//   "matrix": [[1, 2, 1], [2, 3, 2], [1, 2, 1]]
//   "matrix": {"features.0": [[...]], "*": [[...]]}      ("*": every other layer)
// With normalize (default) G = M / mean(M) and M must be positive; with
// "normalize": false G = M as given, which Lemma 1 (paper section 3.2) needs:
// masks M_n of N branches give G = sum_n M_n.
#include "common/json_matrix.h"
#include "common/static_scaling.h"

#include <sgs/errors.h>

#include <torch/torch.h>

#include <algorithm>

namespace {

// A scaling matrix: finite, non-negative numbers.
torch::Tensor parse_matrix(const sgs::Json& m, const std::string& path) {
  return sgs::read_json_matrix(m, path, "numbers", [](const sgs::Json& v, const std::string& at) {
    if (!v.is_number()) throw sgs::ConfigError(at + ": expected a number");
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < 0) throw sgs::ConfigError(at + ": must be finite and >= 0, got " + sgs::excerpt(v));
  });
}

struct FixedOptions : sgs::ScalingOptions {
  sgs::Json matrix;
  bool normalize = true;
  static void declare(sgs::Declare<FixedOptions>& d) {
    d.required(&FixedOptions::matrix, "matrix", "a kh x kw matrix for every layer, or {\"layer\": matrix, \"*\": matrix}");
    d.key(&FixedOptions::normalize, "normalize", "divide by the mean (false: use the matrix as given, e.g. Lemma 1)");
    declare_common(d);
  }
};

class Fixed : public sgs::StaticScaling {
 public:
  explicit Fixed(const FixedOptions& o) : StaticScaling(o), normalize_(o.normalize), where_(o.where("matrix")) {
    const auto& m = o.matrix;
    if (m.is_object()) {
      if (m.empty()) throw sgs::ConfigError(where_ + ": expected at least one layer (or \"*\")");
      for (auto it = m.begin(); it != m.end(); ++it)
        matrices_[it.key()] = check(parse_matrix(it.value(), where_ + "." + it.key()), where_ + "." + it.key());
    } else {
      matrices_["*"] = check(parse_matrix(m, where_), where_);
    }
  }

 void attach(sgs::StrategyContext& ctx) override {
    // A matrix for a layer the model does not have is a typo, not a no-op.
    std::vector<std::string> layers;
    for (const auto& block : ctx.convs) layers.push_back(block->path());
    for (const auto& [name, m] : matrices_)
      if (name != "*" && std::find(layers.begin(), layers.end(), name) == layers.end())
        throw sgs::ConfigError(where_ + "." + name + ": the model has no spatial conv '" + name + "'" +
                               sgs::did_you_mean(name, layers) + " (its layers: " + sgs::join(layers, ", ") + ")");
    StaticScaling::attach(ctx);
  }

 protected:
  torch::Tensor matrix_for(const sgs::ConvBlock& block) const override {
    auto it = matrices_.find(block.path());
    std::string path = where_ + "." + block.path();
    if (it == matrices_.end()) {
      it = matrices_.find("*");
      path = where_ + (matrices_.size() == 1 ? "" : ".*");
    }
    if (it == matrices_.end())
      throw sgs::ConfigError(where_ + ": no matrix for layer '" + block.path() + "' (name it, or give \"*\")");
    const auto& k = block.spec().kernel;
    if (it->second.size(0) != k[0] || it->second.size(1) != k[1])
      throw sgs::ConfigError(path + ": a " + std::to_string(it->second.size(0)) + "x" +
                             std::to_string(it->second.size(1)) + " matrix for layer '" + block.path() +
                             "' whose kernel is " + std::to_string(k[0]) + "x" + std::to_string(k[1]));
    return normalize_ ? it->second / it->second.mean() : it->second;
  }

 private:
  torch::Tensor check(torch::Tensor m, const std::string& path) const {
    if (normalize_ && !(m > 0).all().item<bool>())
      throw sgs::ConfigError(path + ": with normalize, every entry must be > 0 (G is positive with mean 1)");
    return m;
  }

  bool normalize_;
  std::string where_;
  std::map<std::string, torch::Tensor> matrices_;
};

}  // namespace

SGS_REGISTER(sgs::StrategyKind, fixed, "fixed scaling matrices from the config, per layer or for all",
             FixedOptions, [](const FixedOptions& o) { return std::make_unique<Fixed>(o); });
