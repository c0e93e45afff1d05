// Mixed precision, channels-last memory and the loss scaler (sgs/precision.h,
// sgs/train_step.h, the run keys precision and memory_format).
#include <doctest/doctest.h>

#include "support/plugins.h"
#include "support/support.h"

#include <sgs/conv.h>
#include <sgs/dataset.h>
#include <sgs/loader.h>
#include <sgs/measure.h>
#include <sgs/model.h>
#include <sgs/precision.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>
#include <sgs/train_step.h>

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

using namespace sgs;
using namespace sgs::test;

namespace {

// One 3x3 conv whose per-channel spatial means are the logits.
struct ConvMean : Model {
  std::shared_ptr<PlainConv> conv;
  explicit ConvMean(int64_t in, int64_t classes) {
    ConvSpec spec{in, classes};
    spec.padding = {1, 1};
    conv = register_module("conv", std::make_shared<PlainConv>(spec));
    conv->set_path("conv");
  }
  torch::Tensor forward(torch::Tensor x) override { return conv->forward(x).mean({2, 3}); }
};

Json precision_config(const std::string& precision, const std::string& memory_format) {
  Json c = tiny_config(3);
  c["dataset"]["channels"] = 3;  // channels-last differs from NCHW only with more than one channel
  c["precision"] = precision;
  c["memory_format"] = memory_format;
  return c;
}

}  // namespace

TEST_CASE("precision: bf16 and channels-last runs train and resume exactly") {
  struct Case {
    const char* precision;
    const char* memory_format;
  };
  for (auto [precision, memory_format] :
       {Case{"bf16", "contiguous"}, Case{"fp32", "channels_last"}, Case{"bf16", "channels_last"}}) {
    const std::string name = std::string(precision) + "_" + memory_format;
    INFO(name);
    TempDir dir("precision_" + name);
    Json config = precision_config(precision, memory_format);
    // Mutual information: its feature capture runs under the same settings.
    config["strategy"] = Json{{"name", "mutual_information"}, {"every", 1}, {"warmup_epochs", 1}, {"batches", 1}};
    train(config, dir / "whole");
    auto loss = metric(dir / "whole", "train_loss");
    REQUIRE(loss.size() == 3);
    CHECK(loss.back() < 0.8 * loss.front());
    // 8 steps per epoch: stop inside epoch 2, after its scaling update.
    CHECK(train(config, dir / "split", false, 11).status == RunStatus::Interrupted);
    CHECK(train(config, dir / "split", true).status == RunStatus::Completed);
    for (const char* m : {"train_loss", "train_acc", "test_loss", "test_acc"}) {
      INFO(m);
      CHECK(metric(dir / "whole", m) == metric(dir / "split", m));
    }
    const std::string layer = "/layers/features.4/";
    CHECK(read_doubles((dir / "whole" / "run.h5").string(), layer + "scaling") ==
          read_doubles((dir / "split" / "run.h5").string(), layer + "scaling"));
  }
}

TEST_CASE("precision: bf16 computes in bf16 and trains like fp32") {
  TempDir dir("precision_differs");
  train(precision_config("fp32", "contiguous"), dir / "fp32");
  train(precision_config("bf16", "contiguous"), dir / "bf16");
  const auto a = metric(dir / "fp32", "train_loss"), b = metric(dir / "bf16", "train_loss");
  REQUIRE(a.size() == b.size());
  CHECK(a != b);  // bf16 really computed in bf16
  for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) < 0.1);  // the same training, to bf16's precision
  CHECK(metric(dir / "bf16", "test_acc").back() > 0.5);  // 4 classes: chance is 0.25
}

TEST_CASE("precision: a captured map reaches the dependence code as float32 NCHW, equal under bf16 and fp32") {
  torch::manual_seed(0);
  ConvSpec spec{3, 4};
  spec.padding = {1, 1};
  auto first = std::make_shared<PlainConv>(spec);
  auto second = std::make_shared<PlainConv>(ConvSpec{4, 4, {3, 3}, {1, 1}, {1, 1}});
  first->set_path("first");
  second->set_path("second");
  // Values bf16 holds exactly, so that the input of the first conv is the same map either way.
  auto x = torch::randn({8, 3, 12, 12}).to(torch::kBFloat16).to(torch::kFloat32);
  std::map<std::string, torch::Tensor> seen;
  auto sink = [&](const std::string& path, const torch::Tensor& padded) { seen[path] = padded; };
  auto capture = [&](Precision precision, c10::MemoryFormat format) {
    seen.clear();
    first->set_capture(sink);
    second->set_capture(sink);
    torch::NoGradGuard no_grad;
    AutocastGuard autocast(torch::kCPU, precision);
    second->forward(torch::relu(first->forward(x.contiguous(format))));
    first->set_capture(nullptr);
    second->set_capture(nullptr);
    return seen;
  };
  auto fp32 = capture(Precision::Fp32, c10::MemoryFormat::Contiguous);
  auto bf16 = capture(Precision::Bf16, c10::MemoryFormat::ChannelsLast);
  for (const auto& [path, map] : bf16) {
    INFO(path);
    CHECK((map.scalar_type() == torch::kFloat32));
    CHECK(map.is_contiguous());
  }
  // The second conv's input was computed in bf16: it is bf16's values, handed over as float32.
  CHECK(torch::equal(bf16.at("second"), bf16.at("second").to(torch::kBFloat16).to(torch::kFloat32)));
  CHECK_FALSE(torch::equal(bf16.at("second"), fp32.at("second")));
  // The first conv's input is the same map: the measures agree exactly.
  REQUIRE(torch::equal(bf16.at("first"), fp32.at("first")));
  const auto& reg = Registry::global();
  for (const auto& name : reg.names(MeasureKind::kName)) {
    INFO(name);
    Options options(resolve_object(Json{{"name", name}}, "measure", reg.get(MeasureKind::kName, name).schema, {"name"}),
                    "measure");
    auto measure = reg.factory<MeasureKind>(name);
    auto a = measure(options, fp32.at("first"), spec), b = measure(options, bf16.at("first"), spec);
    CHECK(torch::allclose(a.dependence, b.dependence, 0, 0, /*equal_nan=*/true));
    CHECK(torch::allclose(a.scaling, b.scaling, 0, 0, /*equal_nan=*/true));
  }
}

TEST_CASE("precision: fp16 on CPU is refused naming precision, exit 2, nothing written") {
  TempDir dir("precision_fp16_cpu");
  Json config = tiny_config(1);
  config["precision"] = "fp16";
  write_json(dir / "exp.json", config);
  auto r = run_sgs("run " + (dir / "exp.json").string() + " --out " + (dir / "run").string(), dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("precision: fp16 needs a CUDA device") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "run"));
  // An unknown value is refused by the schema, naming the key and the choices.
  config["precision"] = "fp8";
  write_json(dir / "exp.json", config);
  r = run_sgs("config " + (dir / "exp.json").string(), dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("precision") != std::string::npos);
  CHECK(r.err.find("bf16") != std::string::npos);
}

TEST_CASE("loss scaler: skips, shrinks and grows on fabricated gradients") {
  LossScaler::Options o;
  o.init_scale = 1024;
  o.growth_interval = 3;
  LossScaler scaler(o);
  auto p = torch::zeros({4}, torch::requires_grad());
  auto q = torch::zeros({2, 2}, torch::requires_grad());
  auto set_grads = [&](float bad) {
    p.mutable_grad() = torch::tensor({1024.f, -2048.f, 512.f, bad});
    q.mutable_grad() = torch::full({2, 2}, 3072.f);
  };
  // Finite gradients are divided by the scale exactly.
  set_grads(4096.f);
  CHECK(scaler.unscale({p, q}));
  CHECK(torch::equal(p.grad(), torch::tensor({1.f, -2.f, 0.5f, 4.f})));
  CHECK(torch::equal(q.grad(), torch::full({2, 2}, 3.f)));
  scaler.update(true);
  CHECK(scaler.scale() == 1024);
  CHECK(scaler.good_steps() == 1);
  // inf and NaN: the step is reported bad; the scale halves and the count restarts.
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    set_grads(bad);
    CHECK_FALSE(scaler.unscale({p, q}));
    scaler.update(false);
    CHECK(scaler.good_steps() == 0);
  }
  CHECK(scaler.scale() == 128);
  // Parameters without gradients are ignored.
  auto none = torch::zeros({3}, torch::requires_grad());
  // growth_interval good steps in a row double it.
  for (int i = 0; i < 3; ++i) {
    set_grads(1.f);
    CHECK(scaler.unscale({p, none, q}));
    scaler.update(true);
  }
  CHECK(scaler.scale() == 256);
  CHECK(scaler.good_steps() == 0);
  scaler.update(true);
  // Its state survives a checkpoint.
  torch::serialize::OutputArchive out;
  scaler.save(out);
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  LossScaler restored(o);
  restored.load(in);
  CHECK(restored.scale() == 256);
  CHECK(restored.good_steps() == 1);
  CHECK_THROWS_AS(LossScaler(LossScaler::Options{1024, 1.0, 0.5, 10}), std::invalid_argument);
}

TEST_CASE("train step: the strategy scales the unscaled gradient under a loss scale of 1000 (fixed G, SGD by hand)") {
  const double lr = 0.1;
  torch::manual_seed(0);
  ConvMean model(2, 3);
  auto x = torch::randn({5, 2, 6, 6});
  auto y = torch::tensor({0, 1, 2, 1, 0});
  auto w0 = model.conv->weight.detach().clone();
  // The gradient by hand: the same loss, without any scale.
  auto w = w0.clone().requires_grad_();
  auto logits = torch::conv2d(x, w, {}, 1, 1).mean({2, 3});
  auto g = torch::autograd::grad({torch::nn::functional::cross_entropy(logits, y)}, {w})[0];
  const auto G = torch::tensor({1., 2., 1., 2., 4., 2., 1., 2., 1.}, torch::kFloat32).view({3, 3});
  auto expected = w0 - lr * G * g;

  auto strategy = make_strategy("fixed", {{"matrix", {{1, 2, 1}, {2, 4, 2}, {1, 2, 1}}}, {"normalize", false}});
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(lr));
  StrategyContext ctx;
  ctx.convs = {model.conv};
  ctx.optimizer = &sgd;
  strategy->attach(ctx);
  LossScaler::Options o;
  o.init_scale = 1000;
  LossScaler scaler(o);
  TrainStep step(model, sgd, torch::kCPU, StepOptions{}, &scaler);
  StepHooks hooks;
  bool hook_saw_unscaled = false;
  hooks.after_backward = [&] {
    hook_saw_unscaled = torch::allclose(model.conv->weight.grad(), g, 1e-5, 1e-7);
    strategy->after_backward(ctx);
  };
  hooks.after_step = [&] { strategy->after_step(ctx); };
  auto r = step.run(model.parameters(), x, y, hooks);
  CHECK(r.stepped);
  CHECK(hook_saw_unscaled);
  CHECK((model.conv->weight.detach() - expected).abs().max().item<double>() < 1e-6);
  CHECK(r.loss.item<double>() == doctest::Approx(torch::nn::functional::cross_entropy(logits, y).item<double>()));
  CHECK(scaler.scale() == 1000);
  CHECK(scaler.good_steps() == 1);

  // A batch that overflows: no hook, no step, the scale halves.
  bool called = false;
  hooks.after_backward = [&] { called = true; };
  auto before = model.conv->weight.detach().clone();
  auto bad = x.clone();
  bad[0][0][0][0] = std::numeric_limits<float>::infinity();
  r = step.run(model.parameters(), bad, y, hooks);
  CHECK_FALSE(r.stepped);
  CHECK_FALSE(called);
  CHECK(torch::equal(model.conv->weight.detach(), before));
  CHECK(scaler.scale() == 500);
}

TEST_CASE("memory format: channels-last weights keep their identity, and loader batches come NHWC") {
  torch::manual_seed(0);
  ConvMean model(3, 4);
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(0.1));
  auto* impl = model.conv->weight.unsafeGetTensorImpl();
  set_memory_format(model, c10::MemoryFormat::ChannelsLast);
  CHECK(model.conv->weight.is_contiguous(c10::MemoryFormat::ChannelsLast));
  CHECK(model.conv->weight.unsafeGetTensorImpl() == impl);
  CHECK(sgd.param_groups()[0].params()[0].unsafeGetTensorImpl() == impl);

  auto dataset = Registry::global().factory<DatasetKind>("synthetic")(
      test_options("dataset", "synthetic", {{"channels", 3}}), 0);
  LoaderOptions lo;
  lo.batch_size = 16;
  lo.workers = 0;
  Loader plain(dataset->train(), lo);
  lo.channels_last = true;
  Loader nhwc(dataset->train(), lo);
  plain.start_epoch(3);
  nhwc.start_epoch(3);
  auto a = plain.next(), b = nhwc.next();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(b->images.is_contiguous(c10::MemoryFormat::ChannelsLast));
  CHECK_FALSE(b->images.is_contiguous());
  CHECK(torch::equal(a->images, b->images));  // the same values, in the other order
  CHECK(torch::equal(a->labels, b->labels));
}
