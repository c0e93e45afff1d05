// A matrix given in a strategy's config (fixed's scalings, masked_branches'
// masks): a list of equal-length lists of numbers, read as float64
// [rows, cols]. Shared by those plugins so that both refuse bad input alike.
#pragma once

#include <sgs/schema.h>

#include <torch/types.h>

#include <functional>
#include <string>

namespace sgs {

// `what` names the elements in the message ("numbers", "0/1"); `check` sees
// every element with its path ("strategy.matrix[0][1]") and throws
// ConfigError to refuse it. Throws ConfigError naming `path` on a bad shape.
torch::Tensor read_json_matrix(const Json& m, const std::string& path, const std::string& what,
                               const std::function<void(const Json& value, const std::string& at)>& check);

}  // namespace sgs
