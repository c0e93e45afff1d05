// fixed: any G given in the config, for all layers or per layer:
//   "matrix": [[1, 2, 1], [2, 3, 2], [1, 2, 1]]
//   "matrix": {"features.0": [[...]], "*": [[...]]}      ("*": every other layer)
// With normalize (default) G = M / mean(M) and M must be positive; with
// "normalize": false G = M as given, which Lemma 1 (paper section 3.2) needs:
// masks M_n of N branches give G = sum_n M_n.
#include "plugins/strategies/static_scaling.h"

#include <sgs/errors.h>

#include <torch/torch.h>

namespace {

// A JSON matrix as a float64 tensor; throws ConfigError naming `path`.
torch::Tensor parse_matrix(const sgs::Json& m, const std::string& path) {
  if (!m.is_array() || m.empty() || !m[0].is_array() || m[0].empty())
    throw sgs::ConfigError(path + ": expected a matrix (a list of equal-length lists of numbers)");
  const size_t rows = m.size(), cols = m[0].size();
  std::vector<double> values;
  for (size_t i = 0; i < rows; ++i) {
    if (!m[i].is_array() || m[i].size() != cols)
      throw sgs::ConfigError(path + ": row " + std::to_string(i) + " has " +
                             std::to_string(m[i].is_array() ? m[i].size() : 0) + " values, expected " +
                             std::to_string(cols));
    for (size_t j = 0; j < cols; ++j) {
      if (!m[i][j].is_number())
        throw sgs::ConfigError(path + "[" + std::to_string(i) + "][" + std::to_string(j) + "]: expected a number");
      double v = m[i][j].get<double>();
      if (!std::isfinite(v) || v < 0)
        throw sgs::ConfigError(path + "[" + std::to_string(i) + "][" + std::to_string(j) +
                               "]: must be finite and >= 0, got " + m[i][j].dump());
      values.push_back(v);
    }
  }
  return torch::tensor(values, torch::kFloat64).view({static_cast<int64_t>(rows), static_cast<int64_t>(cols)});
}

class Fixed : public sgs::StaticScaling {
 public:
  explicit Fixed(const sgs::Options& o) : StaticScaling(o), normalize_(o.boolean("normalize")), where_(o.where("matrix")) {
    const auto& m = o.raw("matrix");
    if (m.is_object()) {
      if (m.empty()) throw sgs::ConfigError(where_ + ": expected at least one layer (or \"*\")");
      for (auto it = m.begin(); it != m.end(); ++it)
        matrices_[it.key()] = check(parse_matrix(it.value(), where_ + "." + it.key()), where_ + "." + it.key());
    } else {
      matrices_["*"] = check(parse_matrix(m, where_), where_);
    }
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

sgs::Schema schema() {
  sgs::Schema s = {
      sgs::Key::json("matrix", nullptr, "a kh x kw matrix for every layer, or {\"layer\": matrix, \"*\": matrix}")
          .require(),
      sgs::Key::boolean("normalize", true, "divide by the mean (false: use the matrix as given, e.g. Lemma 1)"),
  };
  for (auto& k : sgs::ScalingStrategy::common_keys()) s.push_back(k);
  return s;
}

}  // namespace

SGS_REGISTER(sgs::StrategyKind, fixed, "fixed scaling matrices from the config, per layer or for all",
             schema(), [](const sgs::Options& o) { return std::make_unique<Fixed>(o); });
