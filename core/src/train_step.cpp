#include <sgs/model.h>
#include <sgs/train_step.h>

#include <torch/torch.h>

namespace sgs {

TrainStep::TrainStep(Model& model, torch::optim::Optimizer& optimizer, const torch::Device& device,
                     StepOptions options, LossScaler* scaler)
    : model_(model), optimizer_(optimizer), device_(device), options_(options), scaler_(scaler) {
  loss_options_.label_smoothing(options_.label_smoothing);
}

TrainStep::Result TrainStep::run(const std::vector<torch::Tensor>& params, const torch::Tensor& images,
                                 const torch::Tensor& labels, const StepHooks& hooks) {
  for (const auto& p : params) p.mutable_grad().reset();
  Result r;
  torch::Tensor loss;
  {
    AutocastGuard autocast(device_, options_.precision);
    r.logits = model_.forward(images);
    // The loss in float32 whatever the precision of the logits.
    loss = torch::nn::functional::cross_entropy(r.logits.to(torch::kFloat32), labels, loss_options_);
  }
  auto objective = hooks.loss_weight == 1.0 ? loss : loss * hooks.loss_weight;
  if (scaler_) objective = scaler_->scale_loss(objective);
  objective.backward();
  if (hooks.reduce_gradients) hooks.reduce_gradients();
  r.loss = loss.detach();
  r.logits = r.logits.detach();
  if (scaler_ && !scaler_->unscale(params)) {
    scaler_->update(false);
    r.stepped = false;  // the gradients are dropped with the next step's reset
    return r;
  }
  if (options_.grad_clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, options_.grad_clip_norm);
  if (hooks.after_backward) hooks.after_backward();
  optimizer_.step();
  if (scaler_) scaler_->update(true);
  if (hooks.after_step) hooks.after_step();
  return r;
}

}  // namespace sgs
