// The registry, and properties every registered plugin must have, checked by
// looping over the registry: a new plugin is tested the moment it exists
// (tests/support/plugins.cpp gives it the keys it has no default for).
#include <doctest/doctest.h>

#include "support/plugins.h"
#include "support/support.h"

#include <sgs/config.h>
#include <sgs/dataset.h>
#include <sgs/errors.h>
#include <sgs/fuse.h>
#include <sgs/loader.h>
#include <sgs/measure.h>
#include <sgs/model.h>
#include <sgs/optimizer.h>
#include <sgs/registry.h>
#include <sgs/schedule.h>
#include <sgs/strategy.h>
#include <sgs/version.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include <sstream>

using namespace sgs;
using sgs::test::rel_diff;

namespace {

bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

// A run's pieces built from the registry as the trainer builds them, without
// the trainer: a resolved tiny config (VGG-11 or ResNet-18 at width 1/8 on
// 8x8 synthetic images), the strategy's conv factory, SGD, and a context whose
// gather runs the model over training batches as the trainer's does.
struct TinyRun {
  RunModel run;  // config, dataset, spec, strategy, model, made
  std::vector<std::shared_ptr<ConvBlock>> spatial;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  StrategyContext ctx;
};

std::unique_ptr<TinyRun> tiny_run(const std::string& strategy, const std::string& model) {
  auto t = std::make_unique<TinyRun>();
  Json raw = test::tiny_config(3);
  raw["strategy"] = test::test_slot("strategy", strategy);
  raw["model"] = {{"name", model}, {"width", 0.125}};
  auto& run = t->run;
  run.config = resolve_config(raw, "tiny");
  const auto& reg = Registry::global();
  run.dataset = reg.factory<DatasetKind>("synthetic")(slot_options(run.config, "dataset"), 0);
  const auto& info = run.dataset->info();
  run.spec = ModelSpec{info.channels, info.num_classes, info.height, info.width};
  run.strategy = reg.factory<StrategyKind>(strategy)(slot_options(run.config, "strategy"));
  auto factory = run.strategy->conv_factory();
  RecordingConvFactory recording(factory ? factory : std::make_shared<ConvFactory>());
  run.model = build_model(run.config, run.spec, recording);
  run.made = recording.blocks();
  run.norms_after = recording.norms_after();
  for (auto& b : conv_blocks(*run.model))
    if (b->spec().spatial()) t->spatial.push_back(b);
  t->optimizer = reg.factory<OptimizerKind>("sgd")(slot_options(run.config, "optimizer"), run.model->parameters());
  auto& ctx = t->ctx;
  ctx.model = run.model.get();
  ctx.convs = t->spatial;
  ctx.optimizer = t->optimizer.get();
  ctx.epochs = 3;
  TinyRun* self = t.get();
  ctx.run_batches = [self](const BatchPass& pass) {
    LoaderOptions lo;
    lo.batch_size = 32;
    lo.seed = pass.draw_seed;
    lo.workers = 0;
    Loader loader(self->run.dataset->train(), lo);
    loader.start_epoch(0);
    torch::NoGradGuard no_grad;
    self->run.model->eval();
    if (pass.prepare) pass.prepare();
    if (pass.sink)
      for (auto& b : self->spatial) b->set_capture(pass.sink);
    int64_t images = 0;
    for (int64_t i = 0; i < pass.batches; ++i) {
      auto batch = loader.next();
      if (!batch) break;
      self->run.model->forward(batch->images);
      images += batch->images.size(0);
    }
    for (auto& b : self->spatial) b->set_capture(nullptr);
    self->run.model->train();
    return images;
  };
  return t;
}

// Checks that the factory stored for every plugin has its kind's type.
void check_factory_type(const Registry& reg, const std::string& kind, const std::string& name) {
  if (kind == DatasetKind::kName) {
    CHECK_NOTHROW(reg.factory<DatasetKind>(name));
  } else if (kind == ModelKind::kName) {
    CHECK_NOTHROW(reg.factory<ModelKind>(name));
  } else if (kind == OptimizerKind::kName) {
    CHECK_NOTHROW(reg.factory<OptimizerKind>(name));
  } else if (kind == ScheduleKind::kName) {
    CHECK_NOTHROW(reg.factory<ScheduleKind>(name));
  } else if (kind == StrategyKind::kName) {
    CHECK_NOTHROW(reg.factory<StrategyKind>(name));
  } else if (kind == MeasureKind::kName) {
    CHECK_NOTHROW(reg.factory<MeasureKind>(name));
  } else {
    FAIL("kind '" << kind << "' has no factory check in tests/core/test_registry.cpp");
  }
}

}  // namespace

TEST_CASE("registry: every plugin kind holds the expected names") {
  // The plugins of this repository are all there (a new one needs no edit
  // here: the registry-wide tests below take it up by themselves).
  // image_folder needs OpenCV: a build without it notes it as absent instead.
  std::vector<std::string> datasets = {"cifar10", "cifar100", "fashion_mnist", "mnist", "synthetic"};
  if (SGS_WITH_OPENCV) datasets.insert(datasets.begin() + 3, "image_folder");
  CHECK(Registry::global().absent("dataset").count("image_folder") == (SGS_WITH_OPENCV ? 0u : 1u));
  const std::map<std::string, std::vector<std::string>> expected = {
      {"dataset", datasets},
      {"measure", {"autocorrelation", "mutual_information"}},
      {"model", {"resnet18", "resnet34", "resnet50", "vgg11", "vgg13", "vgg16", "vgg19"}},
      {"optimizer", {"adagrad", "adam", "adamw", "rmsprop", "sgd"}},
      {"schedule", {"constant", "cosine", "step"}},
      {"strategy",
       {"acb", "alpha_beta", "autocorrelation", "dbb", "fixed", "masked_branches", "mutual_information", "none"}},
  };
  const auto& reg = Registry::global();
  for (const auto& [kind, names] : expected) {
    const auto have = reg.names(kind);
    for (const auto& name : names) {
      INFO(kind << " '" << name << "'");
      CHECK(std::find(have.begin(), have.end(), name) != have.end());
    }
  }
  // Every kind has its registry-wide test (a kind without one fails there).
  for (const auto& kind : reg.kinds()) {
    INFO(kind);
    CHECK(expected.count(kind) == 1);
  }
}

TEST_CASE("registry: every plugin can be built for the tests (from its defaults or the table of test keys)") {
  const auto& reg = Registry::global();
  test::TempDir dir("registry_build");
  for (const auto& kind : reg.kinds()) {
    for (const auto& name : reg.names(kind)) {
      try {
        test::test_options(kind, name, Json::object(), dir.path());
      } catch (const ConfigError& e) {
        FAIL_CHECK(kind << " '" << name << "' cannot be built from its defaults (" << std::string(e.what())
                        << "): give it keys in the table of tests/support/plugins.cpp");
      }
    }
  }
  for (const auto& [kind, name] : test::test_key_entries()) {
    INFO("tests/support/plugins.cpp has keys for an unregistered " << kind << " '" << name << "'");
    CHECK(reg.contains(kind, name));
  }
}

TEST_CASE("registry: every plugin describes itself, and every key has help and a default that passes its own checks") {
  const auto& reg = Registry::global();
  const std::regex snake("[a-z][a-z0-9_]*");
  for (const auto& kind : reg.kinds()) {
    for (const auto& name : reg.names(kind)) {
      const auto& info = reg.get(kind, name);
      INFO(kind << " '" << name << "' (" << info.origin << ")");
      CHECK(info.kind == kind);
      CHECK(info.name == name);
      CHECK(std::regex_match(name, snake));
      CHECK(!info.description.empty());
      CHECK(info.description.find('\n') == std::string::npos);
      CHECK(!info.origin.empty());
      check_factory_type(reg, kind, name);
      std::set<std::string> seen;
      for (const auto& key : info.schema) {
        const std::string path = kind + "." + key.name;
        INFO("key " << path);
        CHECK(std::regex_match(key.name, snake));
        CHECK(key.name != "name");  // the slot's own key
        CHECK(seen.insert(key.name).second);
        CHECK(!key.help.empty());
        CHECK(key.help.find('\n') == std::string::npos);
        if (key.min && key.max) CHECK(*key.min <= *key.max);
        if (key.required) {
          CHECK(key.default_value.is_null());
          continue;
        }
        // resolve_object fills an absent key with its default unchecked: the default must pass.
        Json checked;
        REQUIRE_NOTHROW(checked = check_value(key.default_value, path, key));
        CHECK(checked == key.default_value);
        if (!key.choices.empty()) {
          CHECK(std::find(key.choices.begin(), key.choices.end(), key.default_value.get<std::string>()) !=
                key.choices.end());
        }
      }
    }
  }
}

TEST_CASE("registry: every optimizer, with its defaults, changes every weight in a step, none at lr 0 from "
          "the schedule, and continues alike from its saved state") {
  for (const auto& name : Registry::global().names("optimizer")) {
    INFO(name);
    const auto& factory = Registry::global().factory<OptimizerKind>(name);
    const Options options = test::test_options("optimizer", name);
    torch::manual_seed(1);
    std::vector<torch::Tensor> params = {torch::randn({4, 3}).requires_grad_(), torch::randn({4}).requires_grad_()};
    std::vector<torch::Tensor> grads;
    for (int i = 0; i < 6; ++i) grads.push_back(torch::randn_like(params[i % 2]));
    auto step = [&](torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& ps, int i) {
      for (size_t j = 0; j < ps.size(); ++j) ps[j].mutable_grad() = grads[2 * i + j].clone();
      opt.step();
    };
    auto opt = factory(options, params);
    auto before = snapshot(params);
    step(*opt, params, 0);
    for (size_t j = 0; j < params.size(); ++j) {
      CHECK(all_finite(params[j]));
      CHECK((params[j] != before[j]).all().item<bool>());
    }
    // What the schedule does every step: lr 0 must stop it.
    set_learning_rate(*opt, 0.0);
    before = snapshot(params);
    step(*opt, params, 1);
    for (size_t j = 0; j < params.size(); ++j) CHECK(torch::equal(params[j], before[j]));
    set_learning_rate(*opt, options.json().at("lr").get<double>());
    // A resume: the state saved now, loaded into a new optimizer on the same weights.
    std::stringstream archive;
    {
      torch::serialize::OutputArchive out;
      opt->save(out);
      out.save_to(archive);
    }
    std::vector<torch::Tensor> copy;
    for (const auto& p : params) copy.push_back(p.detach().clone().requires_grad_());
    auto resumed = factory(options, copy);
    torch::serialize::InputArchive in;
    in.load_from(archive);
    resumed->load(in);
    step(*opt, params, 2);
    step(*resumed, copy, 2);
    for (size_t j = 0; j < params.size(); ++j) CHECK(torch::equal(params[j], copy[j]));
  }
}

TEST_CASE("registry: every optimizer with decay_bias_and_norm false decays only parameters of 2 and more "
          "dimensions, and replace_parameters keeps each kind in its group") {
  for (const auto& name : Registry::global().names("optimizer")) {
    INFO(name);
    const auto& factory = Registry::global().factory<OptimizerKind>(name);
    // Weight decay only: the gradients are zero, so a decayed parameter moves and the others stay.
    const Json keys{{"weight_decay", 0.1}, {"decay_bias_and_norm", false}};
    torch::manual_seed(2);
    std::vector<torch::Tensor> params = {torch::randn({4, 3, 3, 3}).requires_grad_(), torch::randn({4}).requires_grad_(),
                                         torch::randn({5, 4}).requires_grad_()};
    auto opt = factory(test::test_options("optimizer", name, keys), params);
    REQUIRE(opt->param_groups().size() == 2);
    auto before = snapshot(params);
    for (auto& p : params) p.mutable_grad() = torch::zeros_like(p);
    opt->step();
    CHECK((params[0] != before[0]).all().item<bool>());
    CHECK(torch::equal(params[1], before[1]));
    CHECK((params[2] != before[2]).all().item<bool>());
    // With the default, the 1-D parameter is decayed too.
    auto one = test::test_options("optimizer", name, Json{{"weight_decay", 0.1}});
    std::vector<torch::Tensor> bias = {before[1].clone().requires_grad_()};
    auto all = factory(one, bias);
    CHECK(all->param_groups().size() == 1);
    bias[0].mutable_grad() = torch::zeros_like(bias[0]);
    all->step();
    CHECK((bias[0] != before[1]).all().item<bool>());
    // A structural strategy's new parameters (dyrep growth) join their kind's group.
    std::vector<torch::Tensor> grown = {params[0], torch::randn({4}).requires_grad_(), params[1],
                                        torch::randn({4, 4, 1, 1}).requires_grad_()};
    replace_parameters(*opt, grown);
    REQUIRE(opt->param_groups()[0].params().size() == 2);
    CHECK(opt->param_groups()[0].params()[0].unsafeGetTensorImpl() == params[0].unsafeGetTensorImpl());
    CHECK(opt->param_groups()[0].params()[1].unsafeGetTensorImpl() == grown[3].unsafeGetTensorImpl());
    REQUIRE(opt->param_groups()[1].params().size() == 2);
    CHECK(opt->param_groups()[1].params()[0].unsafeGetTensorImpl() == grown[1].unsafeGetTensorImpl());
    CHECK(opt->param_groups()[1].params()[1].unsafeGetTensorImpl() == params[1].unsafeGetTensorImpl());
    CHECK(opt->param_groups()[1].options().get_lr() == opt->param_groups()[0].options().get_lr());
  }
}

TEST_CASE("registry: every schedule, with its defaults, gives a finite positive lr at every step, a function of the "
          "step alone") {
  const ScheduleContext ctx{0.1, 7, 5};
  for (const auto& name : Registry::global().names("schedule")) {
    INFO(name);
    const auto& factory = Registry::global().factory<ScheduleKind>(name);
    auto forward = factory(test::test_options("schedule", name), ctx);
    auto backward = factory(test::test_options("schedule", name), ctx);
    const int64_t steps = ctx.steps_per_epoch * ctx.epochs;
    std::vector<double> lr(static_cast<size_t>(steps)), again(lr.size());
    for (int64_t s = 0; s < steps; ++s) lr[static_cast<size_t>(s)] = forward->lr(s);
    for (int64_t s = steps - 1; s >= 0; --s) again[static_cast<size_t>(s)] = backward->lr(s);  // as after a resume
    CHECK(lr == again);
    for (int64_t s = 0; s < steps; ++s) {
      INFO("step " << s);
      CHECK(std::isfinite(lr[static_cast<size_t>(s)]));
      CHECK(lr[static_cast<size_t>(s)] > 0);
    }
  }
}

TEST_CASE("registry: every model gives finite [N, classes], a gradient for every parameter, named convs, and the "
          "same weights from the same seed") {
  const ModelSpec spec{3, 10, 16, 16};
  for (const auto& name : Registry::global().names("model")) {
    INFO(name);
    ConvFactory plain;
    auto model = test::make_model(name, spec, plain, {{"width", 0.125}});
    auto twin = test::make_model(name, spec, plain, {{"width", 0.125}});
    auto a = model->named_parameters(), b = twin->named_parameters();
    REQUIRE(a.size() == b.size());
    for (const auto& p : a) CHECK(torch::equal(p.value(), b[p.key()]));
    model->train();
    auto y = model->forward(torch::randn({4, 3, 16, 16}));
    CHECK(y.sizes() == torch::IntArrayRef{4, 10});
    CHECK(all_finite(y));
    y.pow(2).mean().backward();
    for (const auto& p : a) {
      INFO(p.key());
      REQUIRE(p.value().grad().defined());
      CHECK(all_finite(p.value().grad()));
    }
    model->eval();
    torch::NoGradGuard no_grad;
    CHECK(model->forward(torch::randn({2, 3, 16, 16})).sizes() == torch::IntArrayRef{2, 10});
    std::set<std::string> paths;
    int64_t spatial = 0;
    for (const auto& block : conv_blocks(*model)) {
      CHECK(!block->path().empty());
      CHECK(paths.insert(block->path()).second);
      spatial += block->spec().spatial() ? 1 : 0;
    }
    CHECK(spatial > 0);
  }
}

TEST_CASE("registry: every dataset, from a tiny copy of its files, gives splits that match its info") {
  test::TempDir dir("registry_datasets");
  for (const auto& name : Registry::global().names("dataset")) {
    INFO(name);
    const auto& factory = Registry::global().factory<DatasetKind>(name);
    auto d = factory(test::test_options("dataset", name, Json::object(), dir.path()), 0);
    const auto& info = d->info();
    CHECK(info.name == name);
    CHECK(info.num_classes >= 2);
    CHECK(static_cast<int64_t>(info.mean.size()) == info.channels);
    CHECK(static_cast<int64_t>(info.std.size()) == info.channels);
    REQUIRE(d->train() != nullptr);
    REQUIRE(d->train()->size() > 0);
    CHECK(d->val() == nullptr);  // val_fraction defaults to 0
    for (const auto& [split_name, split] :
         {std::pair{std::string("train"), d->train()}, std::pair{std::string("test"), d->test()}}) {
      if (split == nullptr) continue;
      INFO(split_name);
      CHECK(split->shape() == std::array<int64_t, 3>{info.channels, info.height, info.width});
      const auto n = split->shape()[0] * split->shape()[1] * split->shape()[2];
      for (int64_t i = 0; i < std::min<int64_t>(split->size(), 8); ++i) {
        INFO("example " << i);
        const int64_t label = split->label(i);
        CHECK(label >= 0);
        CHECK(label < info.num_classes);
        for (bool augment : {false, true}) {
          std::vector<float> a(static_cast<size_t>(n)), b(a.size());
          CHECK(split->fill(i, augment, 7 + i, a.data()) == label);
          CHECK(split->fill(i, augment, 7 + i, b.data()) == label);
          CHECK(a == b);  // every random draw comes from the sample seed
          CHECK(std::all_of(a.begin(), a.end(), [](float v) { return std::isfinite(v); }));
        }
      }
    }
    // The common keys: a validation split carved out of train.
    auto carved = factory(test::test_options("dataset", name, {{"val_fraction", 0.5}}, dir / "carved"), 0);
    REQUIRE(carved->val() != nullptr);
    CHECK(carved->train()->size() + carved->val()->size() == d->train()->size());
  }
}

TEST_CASE("registry: every strategy trains a tiny VGG-11 and ResNet-18 through its hooks, resumes from its saved "
          "state, and fuses to a plain model with the same function") {
  std::ostringstream fusion;
  for (const auto& name : Registry::global().names("strategy")) {
    for (const std::string model : {"vgg11", "resnet18"}) {
      INFO(name << " on " << model);
      auto t = tiny_run(name, model);
      auto& ctx = t->ctx;
      auto& net = *t->run.model;
      auto* strategy = t->run.strategy.get();
      strategy->attach(ctx);
      const auto params = net.parameters();
      const auto initial = snapshot(params);
      LoaderOptions lo;
      lo.batch_size = 32;
      lo.workers = 0;
      Loader loader(t->run.dataset->train(), lo);
      net.train();
      for (int64_t epoch = 0; epoch < ctx.epochs; ++epoch) {
        ctx.epochs_done = epoch;
        strategy->on_epoch_begin(ctx);
        loader.start_epoch(epoch);
        for (int i = 0; i < 3; ++i, ++ctx.step) {
          auto batch = loader.next();
          REQUIRE(batch);
          t->optimizer->zero_grad();
          auto loss = torch::nn::functional::cross_entropy(net.forward(batch->images), batch->labels);
          INFO("epoch " << epoch << " step " << ctx.step);
          REQUIRE(std::isfinite(loss.item<double>()));
          loss.backward();
          strategy->after_backward(ctx);
          for (const auto& p : params)
            if (p.grad().defined()) CHECK(all_finite(p.grad()));
          t->optimizer->step();
          strategy->after_step(ctx);
        }
      }
      ctx.epochs_done = ctx.epochs;
      bool changed = false;
      for (size_t i = 0; i < params.size(); ++i) {
        CHECK(all_finite(params[i]));
        changed = changed || !torch::equal(params[i], initial[i]);
      }
      CHECK(changed);

      // Resume: a new strategy builds its model (structural ones: its convs
      // are what a saved graph is restored onto), loads the saved state and
      // is attached (the trainer's order); it then acts on a gradient as the
      // first one does.
      std::stringstream archive;
      {
        torch::serialize::OutputArchive out;
        strategy->save(out);
        out.save_to(archive);
      }
      auto resumed = Registry::global().factory<StrategyKind>(name)(slot_options(t->run.config, "strategy"));
      std::shared_ptr<Model> rebuilt;
      if (auto factory = resumed->conv_factory()) {
        rebuilt = build_model(t->run.config, t->run.spec, *factory);
        conv_blocks(*rebuilt);  // their paths
      }
      {
        torch::serialize::InputArchive in;
        in.load_from(archive);
        resumed->load(in);
      }
      resumed->attach(ctx);
      torch::manual_seed(2);
      std::vector<torch::Tensor> grads;
      for (const auto& p : params) grads.push_back(torch::randn_like(p));
      auto scaled_by = [&](Strategy& s) {
        for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i].clone();
        s.after_backward(ctx);
        std::vector<torch::Tensor> g;
        for (const auto& p : params) g.push_back(p.grad().clone());
        return g;
      };
      auto first = scaled_by(*strategy), second = scaled_by(*resumed);
      for (size_t i = 0; i < params.size(); ++i) CHECK(torch::equal(first[i], second[i]));
      t->optimizer->zero_grad();

      // The plain model fused from this one computes its eval-mode function
      // (exactly a copy for plain convs; the fused branches for structural ones).
      net.eval();
      auto fused = fuse_model(t->run);
      torch::NoGradGuard no_grad;
      auto x = torch::randn({8, t->run.spec.in_channels, t->run.spec.height, t->run.spec.width});
      const double err = rel_diff(fused->forward(x), net.forward(x));
      INFO("fused vs branched, relative " << err);
      CHECK(err < 1e-5);
      fusion << " " << name << "/" << model << " " << err;
      int64_t with_bias = 0, fused_bias = 0;
      for (const auto& b : t->run.made) with_bias += b->fused_has_bias() ? 1 : 0;
      for (const auto& b : conv_blocks(*fused)) fused_bias += b->spec().bias ? 1 : 0;
      CHECK(fused_bias == with_bias);
      if (strategy->conv_factory() == nullptr) CHECK(err == 0);
    }
  }
  MESSAGE("fused vs trained model, largest relative logit difference:" << fusion.str());
}

TEST_CASE("registry: every measure gives per-channel, dependence and scaling matrices of the kernel's shape, G of "
          "mean 1, and what the strategy of the same name computes") {
  const auto& reg = Registry::global();
  torch::manual_seed(3);
  ConvSpec spec;
  spec.in_channels = spec.out_channels = 4;
  spec.kernel = {3, 5};
  spec.padding = {1, 2};
  const auto x = pad_input(torch::relu(torch::randn({6, 4, 7, 9})), spec);
  for (const auto& name : reg.names(MeasureKind::kName)) {
    INFO(name);
    const auto& info = reg.get(MeasureKind::kName, name);
    const Options o(resolve_object(Json::object(), "", info.schema), "");
    auto r = reg.factory<MeasureKind>(name)(o, x, spec);
    CHECK(r.per_channel.sizes() == torch::IntArrayRef{4, 3, 5});
    CHECK(r.dependence.sizes() == torch::IntArrayRef{3, 5});
    CHECK(r.scaling.sizes() == torch::IntArrayRef{3, 5});
    CHECK(r.scaling.mean().item<double>() == doctest::Approx(1.0).epsilon(1e-12));
    // A measure is the dependence of a scaling strategy: the same name, the same keys.
    REQUIRE(reg.contains(StrategyKind::kName, name));
    for (const auto& key : info.schema) {
      INFO(key.name);
      CHECK(find_key(reg.get(StrategyKind::kName, name).schema, key.name) != nullptr);
    }
  }
}

TEST_CASE("registry: unknown names list close matches and the known ones") {
  const auto& reg = Registry::global();
  CHECK_THROWS_WITH_AS(reg.get("schedule", "cosin"),
                       "unknown schedule 'cosin'; did you mean 'cosine'? (known: constant, cosine, step)",
                       ConfigError);
}

TEST_CASE("registry: a duplicate names both origins") {
  Registry reg;
  ScheduleKind::Factory f = [](const Options&, const ScheduleContext&) { return std::unique_ptr<Schedule>(); };
  reg.add({"schedule", "x", "first", {}, f, "a.cpp"});
  CHECK_THROWS_WITH_AS(reg.add({"schedule", "x", "second", {}, f, "b.cpp"}),
                       "registry: duplicate schedule 'x' registered by b.cpp and by a.cpp", std::logic_error);
}

TEST_CASE("registry: a plugin left out of the build is refused with its reason, not listed, and a later one replaces the note") {
  Registry reg;
  ScheduleKind::Factory f = [](const Options&, const ScheduleContext&) { return std::unique_ptr<Schedule>(); };
  reg.add({"schedule", "x", "there", {}, f, "a.cpp"});
  reg.add_absent("schedule", "y", "it needs Z, which this build was configured without");
  CHECK(reg.names("schedule") == std::vector<std::string>{"x"});
  CHECK_FALSE(reg.contains("schedule", "y"));
  CHECK_THROWS_WITH_AS(reg.get("schedule", "y"),
                       "schedule 'y' is not in this build: it needs Z, which this build was configured without",
                       ConfigError);
  CHECK_THROWS_WITH_AS(reg.get("schedule", "polynomial"), "unknown schedule 'polynomial' (known: x)", ConfigError);
  reg.add_absent("schedule", "x", "never mind");  // a registered plugin is never noted absent
  CHECK(reg.absent("schedule") == std::map<std::string, std::string>{{"y", "it needs Z, which this build was configured without"}});
  reg.add({"schedule", "y", "from a plugin library", {}, f, "lib.so"});
  CHECK(reg.absent("schedule").empty());
  CHECK(reg.get("schedule", "y").description == "from a plugin library");
}

TEST_CASE("registry: a factory of the wrong type is refused by name") {
  Registry reg;
  reg.add({"schedule", "bad", "wrong factory", {}, std::any(42), "bad.cpp"});
  CHECK_THROWS_AS(reg.factory<ScheduleKind>("bad"), std::logic_error);
}
