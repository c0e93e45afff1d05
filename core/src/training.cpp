#include "training.h"

#include <sgs/errors.h>
#include <sgs/norm.h>

#include <cmath>
#include <type_traits>

namespace sgs {

void Position::save(torch::serialize::OutputArchive& archive) {
  fields([&](const char* key, auto& value) {
    using T = std::decay_t<decltype(value)>;
    archive.write(key, torch::tensor(value, std::is_integral_v<T> ? torch::kInt64 : torch::kFloat64));
  });
}

void Position::load(torch::serialize::InputArchive& archive) {
  fields([&](const char* key, auto& value) {
    torch::Tensor t;
    archive.read(key, t);
    value = t.item<std::decay_t<decltype(value)>>();
  });
}

// Over this rank's shard of the split; with `comm`, the sums are reduced so
// every rank returns the whole split's figures.
Evaluation evaluate(Model& model, Loader& loader, const torch::Device& device, Precision precision,
                    Communicator* comm) {
  torch::NoGradGuard no_grad;
  model.eval();
  auto loss_sum = torch::zeros({}, torch::TensorOptions(device).dtype(torch::kFloat64));
  auto correct = torch::zeros({}, torch::TensorOptions(device).dtype(torch::kInt64));
  int64_t seen = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    auto x = batch->images.to(device, /*non_blocking=*/true);
    auto y = batch->labels.to(device, /*non_blocking=*/true);
    if (y.size(0) == 0) continue;  // this rank's share of a last, small batch
    torch::Tensor logits;
    {
      AutocastGuard autocast(device, precision);
      logits = model.forward(x).to(torch::kFloat32);
    }
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kFloat64);
    correct += logits.argmax(1).eq(y).sum();
    seen += y.size(0);
  }
  model.train();
  auto sums = torch::stack({loss_sum, correct.to(torch::kFloat64),
                            torch::full({}, static_cast<double>(seen), loss_sum.options())});
  if (comm != nullptr) comm->all_reduce(sums, ReduceOp::Sum);
  sums = sums.cpu();
  const double n = sums[2].item<double>();
  if (n == 0) return {NAN, NAN};
  return {sums[0].item<double>() / n, sums[1].item<double>() / n};
}

torch::Device resolve_device(const std::string& name) {
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available())
      throw ConfigError("device: 'cuda' requested but this LibTorch build has no usable CUDA device");
    return torch::Device(torch::kCUDA);
  }
  return torch::Device(torch::kCPU);
}

// Mean |W| over output and input channels, divided by its own mean (docs/method.md 6).
torch::Tensor kernel_magnitude(ConvBlock& block) {
  torch::NoGradGuard no_grad;
  auto m = block.fused().first.abs().mean(std::vector<int64_t>{0, 1}).to(torch::kFloat64);
  return m / m.mean();
}

std::pair<int64_t, int64_t> parameter_counts(Model& model, const std::vector<std::shared_ptr<ConvBlock>>& blocks) {
  int64_t params = 0, fused = 0, block_params = 0;
  for (const auto& p : model.parameters()) params += p.numel();
  for (const auto& b : blocks) {
    for (const auto& p : b->parameters()) block_params += p.numel();
    auto [w, bias] = b->fused();
    fused += w.numel() + (b->fused_has_bias() ? bias.numel() : 0);
  }
  return {params, params - block_params + fused};
}

void sync_batchnorms_over(torch::nn::Module& module, Communicator* comm) {
  for (const auto& item : module.named_modules()) {
    auto* m = item.value().get();
    if (auto* bn = dynamic_cast<BatchNorm2dImpl*>(m)) {
      bn->set_communicator(comm);
    } else if (dynamic_cast<torch::nn::BatchNorm1dImpl*>(m) || dynamic_cast<torch::nn::BatchNorm2dImpl*>(m) ||
               dynamic_cast<torch::nn::BatchNorm3dImpl*>(m)) {
      throw ConfigError("sync_batchnorm: module '" + item.key() +
                        "' is a torch::nn BatchNorm, which cannot synchronise; build it as sgs::BatchNorm2d "
                        "(sgs/norm.h)");
    }
  }
}

}  // namespace sgs
