#include "json_matrix.h"

#include <sgs/errors.h>

#include <torch/torch.h>

namespace sgs {

torch::Tensor read_json_matrix(const Json& m, const std::string& path, const std::string& what,
                               const std::function<void(const Json& value, const std::string& at)>& check) {
  if (!m.is_array() || m.empty() || !m[0].is_array() || m[0].empty())
    throw ConfigError(path + ": expected a matrix (a list of equal-length lists of " + what + ")");
  const size_t rows = m.size(), cols = m[0].size();
  std::vector<double> values;
  for (size_t i = 0; i < rows; ++i) {
    if (!m[i].is_array() || m[i].size() != cols)
      throw ConfigError(path + ": row " + std::to_string(i) + " has " +
                        std::to_string(m[i].is_array() ? m[i].size() : 0) + " values, expected " +
                        std::to_string(cols));
    for (size_t j = 0; j < cols; ++j) {
      check(m[i][j], path + "[" + std::to_string(i) + "][" + std::to_string(j) + "]");
      values.push_back(m[i][j].get<double>());
    }
  }
  return torch::tensor(values, torch::kFloat64).view({static_cast<int64_t>(rows), static_cast<int64_t>(cols)});
}

}  // namespace sgs
