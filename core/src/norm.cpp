#include <sgs/norm.h>

#include <torch/torch.h>

namespace sgs {

namespace {

const std::vector<int64_t> kDims{0, 2, 3};

torch::Tensor per_channel(const torch::Tensor& v) { return v.view({1, -1, 1, 1}); }

Communicator* comm_of(const torch::autograd::AutogradContext* ctx) {
  return reinterpret_cast<Communicator*>(ctx->saved_data.at("comm").toInt());
}

// Statistics are reduced in float64 (as ATen's CPU batch norm accumulates
// float input), the output is formed in the input's type.
struct SyncBatchNorm : torch::autograd::Function<SyncBatchNorm> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               torch::Tensor bias, torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps, Communicator* comm) {
    const int64_t c = x.size(1);
    auto first = torch::cat({x.sum(kDims, false, torch::kFloat64),
                             torch::full({1}, static_cast<double>(x.numel() / std::max<int64_t>(1, c)),
                                         x.options().dtype(torch::kFloat64))});
    comm->all_reduce(first, ReduceOp::Sum);
    auto n = first.narrow(0, c, 1);  // pixels per channel over all ranks (no host sync)
    auto mean = first.narrow(0, 0, c) / n;
    auto centred = x - per_channel(mean).to(x.scalar_type());
    auto var_sum = centred.pow(2).sum(kDims, false, torch::kFloat64);
    comm->all_reduce(var_sum, ReduceOp::Sum);
    auto var = var_sum / n;
    auto invstd = (var + eps).rsqrt();
    if (running_mean.defined()) {
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((var * (n / (n - 1))).to(running_var.scalar_type()), momentum);
    }
    auto alpha = weight.defined() ? invstd * weight.to(torch::kFloat64) : invstd;
    auto beta = bias.defined() ? bias.to(torch::kFloat64) - mean * alpha : -mean * alpha;
    auto y = x * per_channel(alpha).to(x.scalar_type()) + per_channel(beta).to(x.scalar_type());
    ctx->save_for_backward({x, mean, invstd, weight, n});
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    ctx->saved_data["has_bias"] = bias.defined();
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_output) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], mean = saved[1], invstd = saved[2], weight = saved[3], n = saved[4];
    auto dy = grad_output[0];
    const int64_t c = x.size(1);
    auto xhat = (x - per_channel(mean).to(x.scalar_type())) * per_channel(invstd).to(x.scalar_type());
    auto sums = torch::cat({dy.sum(kDims, false, torch::kFloat64), (dy * xhat).sum(kDims, false, torch::kFloat64)});
    // This rank's parameter gradients (the trainer averages them like any other).
    torch::Tensor grad_weight, grad_bias;
    if (weight.defined()) grad_weight = sums.narrow(0, c, c).to(weight.scalar_type());
    if (ctx->saved_data["has_bias"].toBool()) grad_bias = sums.narrow(0, 0, c).to(x.scalar_type());
    auto global = sums.clone();
    comm_of(ctx)->all_reduce(global, ReduceOp::Sum);
    auto mean_dy = global.narrow(0, 0, c) / n, mean_dy_xhat = global.narrow(0, c, c) / n;
    auto scale = weight.defined() ? invstd * weight.to(torch::kFloat64) : invstd;
    auto dx = (dy - per_channel(mean_dy).to(x.scalar_type()) - xhat * per_channel(mean_dy_xhat).to(x.scalar_type())) *
              per_channel(scale).to(x.scalar_type());
    return {dx, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

BatchNorm2dImpl::BatchNorm2dImpl(const torch::nn::BatchNormOptions& options_) : options(options_) { reset(); }

void BatchNorm2dImpl::reset() {
  const int64_t c = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::empty({c}));
    bias = register_parameter("bias", torch::empty({c}));
  } else {
    weight = register_parameter("weight", torch::Tensor(), /*requires_grad=*/false);
    bias = register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::kLong));
  } else {
    running_mean = register_buffer("running_mean", torch::Tensor());
    running_var = register_buffer("running_var", torch::Tensor());
    num_batches_tracked = register_buffer("num_batches_tracked", torch::Tensor());
  }
  reset_parameters();
}

void BatchNorm2dImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  if (options.track_running_stats()) {
    running_mean.zero_();
    running_var.fill_(1);
    num_batches_tracked.zero_();
  }
  if (options.affine()) {
    weight.fill_(1);
    bias.zero_();
  }
}

void BatchNorm2dImpl::reset_running_stats() {
  torch::NoGradGuard no_grad;
  if (!options.track_running_stats()) return;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

void BatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << std::boolalpha << "sgs::BatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=";
  if (options.momentum())
    stream << *options.momentum();
  else
    stream << "None";
  stream << ", affine=" << options.affine() << ", track_running_stats=" << options.track_running_stats()
         << (comm_ != nullptr ? ", synchronised" : "") << ")";
}

torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "sgs::BatchNorm2d: expected a 4-D input, got ", input.dim(), "-D");
  // Momentum as torch::nn::BatchNorm2d counts it (none: cumulative average).
  double momentum = options.momentum().value_or(0.0);
  if (is_training() && options.track_running_stats() && num_batches_tracked.defined()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked += 1;
    if (!options.momentum()) momentum = 1.0 / num_batches_tracked.item<double>();
  }
  const bool batch_stats = is_training() || !options.track_running_stats();
  if (batch_stats && comm_ != nullptr && comm_->world_size() > 1) {
    torch::Tensor rm, rv;
    if (is_training() && options.track_running_stats()) {
      rm = running_mean;
      rv = running_var;
    }
    return SyncBatchNorm::apply(input, weight, bias, rm, rv, momentum, options.eps(), comm_);
  }
  return torch::batch_norm(input, weight, bias, running_mean, running_var, batch_stats, momentum, options.eps(),
                           at::globalContext().userEnabledCuDNN());
}

std::pair<torch::Tensor, torch::Tensor> bn_scale_shift(const BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  const auto& o = bn->options;
  auto t = (bn->running_var + o.eps()).rsqrt();
  auto shift = -bn->running_mean * t;
  if (o.affine()) {
    t = t * bn->weight;
    shift = bn->bias - bn->running_mean * t;
  }
  return {t.detach(), shift.detach()};
}

std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& weight, const torch::Tensor& bias,
                                                const BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  auto [t, shift] = bn_scale_shift(bn);
  std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
  shape[0] = -1;
  auto w = weight.detach() * t.view(shape);
  auto b = bias.defined() ? shift + t * bias.detach() : shift;
  return {w, b};
}

}  // namespace sgs
