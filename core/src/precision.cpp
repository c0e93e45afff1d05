#include <sgs/errors.h>
#include <sgs/precision.h>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace sgs {

// LibTorch 2.4 keyed autocast's switches by device type; 1.x has one set of
// functions per device.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SGS_AUTOCAST_BY_DEVICE 1
#else
#define SGS_AUTOCAST_BY_DEVICE 0
#endif

namespace {

bool autocast_enabled(bool cuda) {
#if SGS_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

c10::ScalarType autocast_dtype(bool cuda) {
#if SGS_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast(bool cuda, bool enabled, c10::ScalarType dtype) {
#if SGS_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
#else
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  if (name == "fp16") return Precision::Fp16;
  throw ConfigError("precision: '" + name + "' is not one of fp32, bf16, fp16");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::Fp32: return "fp32";
    case Precision::Bf16: return "bf16";
    case Precision::Fp16: return "fp16";
  }
  return "?";
}

void check_precision(Precision precision, const torch::Device& device) {
  if (precision == Precision::Fp16 && !device.is_cuda())
    throw ConfigError("precision: fp16 needs a CUDA device (this run trains on " + device.str() +
                      "); on CPU use bf16");
}

c10::MemoryFormat parse_memory_format(const std::string& name) {
  if (name == "contiguous") return c10::MemoryFormat::Contiguous;
  if (name == "channels_last") return c10::MemoryFormat::ChannelsLast;
  throw ConfigError("memory_format: '" + name + "' is not one of contiguous, channels_last");
}

AutocastGuard::AutocastGuard(const torch::Device& device, Precision precision) {
  if (precision == Precision::Fp32) return;
  check_precision(precision, device);
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  was_dtype_ = autocast_dtype(cuda_);
  set_autocast(cuda_, true, precision == Precision::Bf16 ? torch::kBFloat16 : torch::kFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, was_enabled_, was_dtype_);
}

void set_memory_format(torch::nn::Module& module, c10::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  auto conform = [&](torch::Tensor& t) {
    if (!t.defined() || t.dim() != 4 || t.is_contiguous(format)) return;
    t.set_data(t.contiguous(format));
  };
  for (auto& p : module.parameters()) conform(p);
  for (auto& b : module.buffers()) conform(b);
}

LossScaler::LossScaler() : LossScaler(Options{}) {}

LossScaler::LossScaler(Options options) : options_(options), scale_(options.init_scale) {
  if (!(options_.init_scale > 0) || !(options_.growth > 1) || !(options_.backoff > 0 && options_.backoff < 1) ||
      options_.growth_interval < 1)
    throw std::invalid_argument("LossScaler: needs init_scale > 0, growth > 1, 0 < backoff < 1, growth_interval >= 1");
}

bool LossScaler::unscale(const std::vector<torch::Tensor>& params) const {
  std::vector<torch::Tensor> grads;
  grads.reserve(params.size());
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return true;
  torch::NoGradGuard no_grad;
  const double inv = 1.0 / scale_;
  if (grads.front().is_cuda()) {
    // One fused kernel per device: unscale and flag non-finite values.
    auto found = torch::zeros({1}, grads.front().options().dtype(torch::kFloat32));
    auto inv_scale = torch::full({1}, inv, found.options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv_scale);
    return found.item<float>() == 0.0f;
  }
  at::_foreach_mul_(grads, inv);
  std::vector<torch::Tensor> finite;
  finite.reserve(grads.size());
  for (const auto& g : grads) finite.push_back(g.isfinite().all());
  return torch::stack(finite).all().item<bool>();
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= options_.backoff;
    good_steps_ = 0;
    return;
  }
  if (++good_steps_ >= options_.growth_interval) {
    scale_ *= options_.growth;
    good_steps_ = 0;
  }
}

void LossScaler::save(torch::serialize::OutputArchive& archive) const {
  archive.write("loss_scale", torch::tensor(scale_, torch::kFloat64));
  archive.write("loss_scale_good_steps", torch::tensor(good_steps_, torch::kInt64));
}

void LossScaler::load(torch::serialize::InputArchive& archive) {
  torch::Tensor scale, good;
  if (!archive.try_read("loss_scale", scale) || !archive.try_read("loss_scale_good_steps", good)) return;
  scale_ = scale.item<double>();
  good_steps_ = good.item<int64_t>();
}

}  // namespace sgs
