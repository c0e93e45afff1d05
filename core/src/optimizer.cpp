// The optimizer helpers the trainer and structural strategies share.
#include <sgs/optimizer.h>

#include <torch/optim/optimizer.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace sgs {

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

namespace {
template <class Key>
Key state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // what LibTorch 1.x keys by: c10::guts::to_string (gone in 2.x) of the address
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}
}  // namespace

void replace_parameters(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params) {
  auto& groups = optimizer.param_groups();
  std::vector<torch::Tensor> held;
  for (const auto& g : groups) held.insert(held.end(), g.params().begin(), g.params().end());
  const bool same = held.size() == params.size() &&
                    std::equal(held.begin(), held.end(), params.begin(), [](const torch::Tensor& a, const torch::Tensor& b) {
                      return a.unsafeGetTensorImpl() == b.unsafeGetTensorImpl();
                    });
  if (same) return;  // nothing changed (any optimizer, any number of groups)
  // LibTorch keys the state by the parameter's TensorImpl (a string of its
  // address in 1.x, the address itself in 2.x).
  auto& state = optimizer.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  auto key_of = [](const torch::Tensor& p) { return state_key<Key>(p); };
  // Which group each parameter goes to: its own, else the first holding its kind.
  std::vector<std::vector<torch::Tensor>> next(groups.size());
  for (const auto& p : params) {
    size_t to = groups.size();
    for (size_t g = 0; g < groups.size() && to == groups.size(); ++g)
      for (const auto& q : groups[g].params())
        if (q.unsafeGetTensorImpl() == p.unsafeGetTensorImpl()) {
          to = g;
          break;
        }
    for (size_t g = 0; g < groups.size() && to == groups.size(); ++g)
      if (groups.size() == 1 || (!groups[g].params().empty() && (groups[g].params()[0].dim() >= 2) == (p.dim() >= 2)))
        to = g;
    if (to == groups.size())
      throw std::logic_error("replace_parameters: no parameter group of the optimizer's " +
                             std::to_string(groups.size()) + " holds " + std::to_string(p.dim()) + "-D parameters");
    next[to].push_back(p);
  }
  std::set<Key> kept;
  for (const auto& p : params) kept.insert(key_of(p));
  for (auto& g : groups)
    for (const auto& p : g.params())
      if (!kept.count(key_of(p))) state.erase(key_of(p));
  for (size_t g = 0; g < groups.size(); ++g) groups[g].params() = next[g];
}

}  // namespace sgs
