// Structural reparameterizations (masked_branches, acb, dbb), their fusion,
// `sgs fuse`, and Lemma 1 checked on real training runs.
#include <doctest/doctest.h>

#include "plugins/strategies/common/branches.h"
#include "plugins/strategies/common/dyrep_block.h"
#include "support/plugins.h"
#include "support/support.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/fuse.h>
#include <sgs/loader.h>
#include <sgs/norm.h>
#include <sgs/optimizer.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>
#include <sgs/trainer.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <random>
#include <set>
#include <sstream>

using namespace sgs;
using sgs::test::rel_diff;
using sgs::test::strategy_from;

namespace {

std::shared_ptr<ConvBlock> make_block(const std::string& strategy, const ConvSpec& spec, Json keys = Json::object()) {
  return strategy_from(strategy, std::move(keys))->conv_factory()->make(spec);
}

ConvSpec conv_spec(int64_t in, int64_t out, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                   std::array<int64_t, 2> padding, int64_t groups = 1) {
  ConvSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel = kernel;
  s.stride = stride;
  s.padding = padding;
  s.groups = groups;
  return s;
}

// The BatchNorms of a model that are not inside a conv block (the model's own).
int64_t count_batchnorms(torch::nn::Module& model) {
  std::vector<std::string> blocks;
  for (const auto& b : conv_blocks(model)) blocks.push_back(b->path() + ".");
  int64_t n = 0;
  for (const auto& item : model.named_modules("", false)) {
    if (!std::dynamic_pointer_cast<sgs::BatchNorm2dImpl>(item.value())) continue;
    bool inside = false;
    for (const auto& p : blocks) inside = inside || item.key().rfind(p, 0) == 0;
    n += inside ? 0 : 1;
  }
  return n;
}

// Every BatchNorm of the block gets random affine parameters and running
// statistics; every other parameter is perturbed (DBB's identity delta starts at 0).
void randomize(torch::nn::Module& block) {
  torch::NoGradGuard no_grad;
  for (auto& m : block.modules(/*include_self=*/false)) {
    if (auto bn = std::dynamic_pointer_cast<sgs::BatchNorm2dImpl>(m)) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0, 0.5);
      bn->running_mean.normal_(0, 0.5);
      bn->running_var.uniform_(0.3, 2.0);
    }
  }
  for (auto& p : block.named_parameters(/*recurse=*/false)) p.value().add_(torch::randn_like(p.value()) * 0.05);
}

// Fused conv vs branched block in eval mode; returns max |diff| / max |y|.
double fusion_error(const std::string& strategy, const ConvSpec& spec, Json keys = Json::object()) {
  auto block = make_block(strategy, spec, std::move(keys));
  if (auto growable = std::dynamic_pointer_cast<dyrep::GrowableConv>(block)) {  // dyrep: its block, grown
    dyrep::GrowContext g;
    g.generator = at::detail::createCPUGenerator(7);
    growable->grow(g);
  }
  randomize(*block);
  auto x = torch::randn({2, spec.in_channels, 13, 11});
  block->train();
  auto y_train = block->forward(x);  // also moves the running statistics
  randomize(*block);
  block->eval();
  torch::NoGradGuard no_grad;
  auto y = block->forward(x);
  auto [w, b] = block->fused();
  CHECK(w.sizes() == torch::IntArrayRef{spec.out_channels, spec.in_channels / spec.groups, spec.kernel[0], spec.kernel[1]});
  auto z = torch::conv2d(x, w, b, {spec.stride[0], spec.stride[1]}, {spec.padding[0], spec.padding[1]},
                         {spec.dilation[0], spec.dilation[1]}, spec.groups);
  CHECK(y_train.sizes() == z.sizes());
  REQUIRE(y.sizes() == z.sizes());
  return rel_diff(z, y);
}

using test::metric;
using test::train;

Json lemma1_slot(const std::string& file, const std::string& slot) {
  return read_json_file(std::string(SGS_SOURCE_DIR) + "/experiments/lemma1/" + file).at(slot);
}

// Runs the branched and the scaled config for 7 epochs of 8 steps (56 steps)
// and checks Lemma 1 on real float32 runs: the same loss curve (run.h5), the
// same fused kernels (checkpoints), and the branched model fused equals the
// scaled plain model, every parameter, to relative 1e-5. The runs differ by
// rounding only (~1e-6 here) as long as no pre-activation falls within that
// rounding of 0; one that does flips a ReLU derivative in one run and the
// trajectories separate (the float64 test above has no such limit).
void check_lemma1(const Json& branched, const Json& scaled, const std::string& name) {
  test::TempDir dir("lemma1_" + name);
  Json a = test::tiny_config(7), b = test::tiny_config(7);
  // The optimizer of experiments/lemma1/ (SGD, momentum, weight decay, lr 0.01):
  // float rounding differences grow with the step count at a rate set by the
  // dynamics; at lr 0.05 they reach ~1e-5 within 56 steps, at 0.01 ~1e-7.
  a["optimizer"] = b["optimizer"] = lemma1_slot("fixed.json", "optimizer");
  a["strategy"] = branched;
  b["strategy"] = scaled;
  train(a, dir / "branched");
  train(b, dir / "scaled");
  auto la = metric(dir / "branched", "train_loss"), lb = metric(dir / "scaled", "train_loss");
  REQUIRE(la.size() == 7);
  REQUIRE(lb.size() == 7);
  double worst = 0;
  std::ostringstream curve;
  for (size_t e = 0; e < la.size(); ++e) {
    worst = std::max(worst, std::abs(la[e] - lb[e]) / std::abs(lb[e]));
    curve << " " << la[e] << " (" << std::abs(la[e] - lb[e]) / std::abs(lb[e]) << ")";
  }
  MESSAGE(name << ": train_loss (relative difference):" << curve.str());
  MESSAGE(name << ": max relative train_loss difference over 7 epochs (56 steps): " << worst);
  CHECK(worst < 1e-5);
  CHECK(la.back() < la.front());  // it did train

  auto run_a = load_run_model((dir / "branched").string());
  auto run_b = load_run_model((dir / "scaled").string());
  REQUIRE(run_a.made.size() == run_b.made.size());
  double worst_kernel = 0;
  for (size_t i = 0; i < run_a.made.size(); ++i) {
    auto ka = run_a.made[i]->fused().first, kb = run_b.made[i]->fused().first;
    worst_kernel = std::max(worst_kernel, rel_diff(ka, kb));
  }
  MESSAGE(name << ": max relative fused-kernel difference: " << worst_kernel);
  CHECK(worst_kernel < 1e-5);
  // The fused branched model and the SGS-trained plain model: every tensor.
  auto fused = fuse_model(run_a);
  auto pb = run_b.model->named_parameters();
  for (const auto& p : fused->named_parameters()) {
    INFO(p.key());
    REQUIRE(pb.find(p.key()) != nullptr);
    CHECK(rel_diff(p.value(), pb[p.key()]) < 1e-5);
  }
  CHECK(fused->named_parameters().size() == pb.size());
}

// Lemma 1 step by step in float64, outside the trainer: the same registry
// components (VGG-11 at width 1/8, masked_branches, fixed, SGD with momentum
// and weight decay, synthetic batches), both models converted to float64 after
// being built from the same seed. Returns the worst relative differences of
// the per-step losses and of the merged kernels after `steps` steps.
std::pair<double, double> lemma1_float64(const Json& masks, const Json& matrix, int steps) {
  Json config = resolve_config(test::tiny_config(1), "t");
  const auto& reg = Registry::global();
  auto dataset = reg.factory<DatasetKind>("synthetic")(slot_options(config, "dataset"), 0);
  const ModelSpec spec{1, 4, 8, 8};
  auto branched_strategy = strategy_from("masked_branches", {{"masks", masks}});
  auto scaled_strategy = strategy_from("fixed", {{"matrix", matrix}, {"normalize", false}});
  auto branched = build_model(config, spec, *branched_strategy->conv_factory());
  ConvFactory plain;
  auto scaled = build_model(config, spec, plain);
  branched->to(torch::kFloat64);
  scaled->to(torch::kFloat64);
  Json sgd = {{"name", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 5e-4}};
  Options so(resolve_object(sgd, "optimizer", reg.get("optimizer", "sgd").schema, {"name"}), "optimizer");
  auto opt_b = reg.factory<OptimizerKind>("sgd")(so, branched->parameters());
  auto opt_s = reg.factory<OptimizerKind>("sgd")(so, scaled->parameters());
  auto blocks_b = conv_blocks(*branched), blocks_s = conv_blocks(*scaled);
  StrategyContext ctx;
  ctx.convs = blocks_s;
  ctx.optimizer = opt_s.get();
  scaled_strategy->attach(ctx);
  LoaderOptions lo;
  lo.batch_size = 32;
  lo.workers = 0;
  Loader loader(dataset->train(), lo);
  double worst_loss = 0;
  for (int step = 0, epoch = 0; step < steps; ++epoch) {
    loader.start_epoch(epoch);
    for (auto batch = loader.next(); batch && step < steps; batch = loader.next(), ++step) {
      auto x = batch->images.to(torch::kFloat64);
      opt_b->zero_grad();
      opt_s->zero_grad();
      auto lb = torch::nn::functional::cross_entropy(branched->forward(x), batch->labels);
      auto ls = torch::nn::functional::cross_entropy(scaled->forward(x), batch->labels);
      lb.backward();
      ls.backward();
      scaled_strategy->after_backward(ctx);
      opt_b->step();
      opt_s->step();
      worst_loss = std::max(worst_loss, std::abs(lb.item<double>() - ls.item<double>()) / ls.item<double>());
    }
  }
  double worst_kernel = 0;
  for (size_t i = 0; i < blocks_b.size(); ++i)
    worst_kernel = std::max(worst_kernel, rel_diff(blocks_b[i]->fused().first, blocks_s[i]->fused().first));
  return {worst_loss, worst_kernel};
}

}  // namespace

// The structural strategies: every registered strategy with a conv factory
// (masked_branches, acb and dbb now; the expected names: test_registry.cpp).
const std::vector<std::string>& structural() {
  static const auto names = test::structural_strategies();
  return names;
}

// Those refusing grouped convs (with a ConfigError naming why); every other
// one must fuse them.
const std::set<std::string> kNoGroups = {"dbb", "dyrep", "orepa"};
// Those refusing kernels that are not square with padding K/2 (OREPA's
// blocks assert it).
const std::set<std::string> kSquareOnly = {"orepa"};

// Whether the strategy's schema has `key`.
bool has_key(const std::string& strategy, const std::string& key) {
  return find_key(Registry::global().get("strategy", strategy).schema, key) != nullptr;
}

TEST_CASE("structural: every strategy with a conv factory leaves 1x1 and 1xK convs plain, but orepa's 1x1 blocks") {
  CHECK(structural().size() >= 3);
  for (const auto& n : structural()) {
    INFO(n);
    for (const auto& spec : {conv_spec(4, 8, {1, 1}, {2, 2}, {0, 0}), conv_spec(4, 8, {1, 3}, {1, 1}, {0, 1})}) {
      auto b = make_block(n, spec);
      // OREPA's builder makes 1x1 convs OREPA_1x1 (but a basic block's shortcut).
      const bool converted = n == "orepa" && spec.kernel[1] == 1;
      CHECK((dynamic_cast<PlainConv*>(b.get()) == nullptr) == converted);
    }
  }
  auto shortcut = conv_spec(4, 8, {1, 1}, {2, 2}, {0, 0});
  shortcut.role = ConvSpec::Role::BasicShortcut;
  CHECK(dynamic_cast<PlainConv*>(make_block("orepa", shortcut).get()) != nullptr);
  shortcut.role = ConvSpec::Role::BottleneckShortcut;
  CHECK(dynamic_cast<PlainConv*>(make_block("orepa", shortcut).get()) == nullptr);
  CHECK(fusion_error("orepa", shortcut) < 1e-5);
}

TEST_CASE("structural: the fused conv equals the branched block in eval mode (random BN statistics)") {
  torch::manual_seed(11);
  for (const auto& strategy : structural()) {
    for (int64_t k : {3, 5, 7}) {
      for (int64_t s : {1, 2}) {
        INFO(strategy << " K " << k << " stride " << s);
        // (7x7 stays plain by default where the authors' builders leave it.)
        Json keys = Json::object();
        if (k >= 7 && has_key(strategy, "convert_large_kernels")) keys["convert_large_kernels"] = true;
        double err = fusion_error(strategy, conv_spec(4, 6, {k, k}, {s, s}, {k / 2, k / 2}), keys);
        CHECK(err < 1e-5);
      }
    }
    // Non-square kernels, padding below and above K/2 (the centred branches
    // crop or pad), groups where the block supports them.
    for (const auto& spec : {conv_spec(3, 5, {3, 5}, {1, 2}, {1, 2}), conv_spec(3, 5, {5, 5}, {1, 1}, {0, 1}),
                             conv_spec(3, 5, {3, 3}, {2, 1}, {2, 0})}) {
      INFO(strategy << " kernel " << spec.kernel[0] << "x" << spec.kernel[1] << " padding " << spec.padding[0] << ","
                    << spec.padding[1]);
      if (kSquareOnly.count(strategy) != 0 && (spec.kernel[0] != spec.kernel[1] || spec.padding[0] != spec.kernel[0] / 2 ||
                                             spec.padding[1] != spec.kernel[1] / 2)) {
        CHECK_THROWS_AS(make_block(strategy, spec), ConfigError);
        continue;
      }
      CHECK(fusion_error(strategy, spec) < 1e-5);
    }
    INFO(strategy << " groups 2");
    const auto grouped = conv_spec(4, 6, {3, 3}, {1, 1}, {1, 1}, 2);
    if (kNoGroups.count(strategy) != 0) {
      CHECK_THROWS_AS(make_block(strategy, grouped), ConfigError);
    } else {
      CHECK(fusion_error(strategy, grouped) < 1e-5);
    }
  }
  Json masks = {{{1, 0, 1}, {0, 1, 0}, {1, 0, 1}}, {{0, 1, 0}, {1, 1, 1}, {0, 1, 0}}, {{1, 1, 0}, {1, 1, 0}, {0, 0, 0}}};
  CHECK(fusion_error("masked_branches", conv_spec(4, 6, {3, 3}, {2, 2}, {1, 1}), {{"masks", masks}}) < 1e-5);
  // repvgg's QARepVGG variants, with the identity (and the average pool) where in = out, stride 1, and groups.
  for (const char* variant : {"qarepvgg", "qarepvgg_v2"})
    for (const auto& spec : {conv_spec(6, 6, {3, 3}, {1, 1}, {1, 1}), conv_spec(6, 6, {5, 5}, {1, 1}, {2, 2}),
                             conv_spec(4, 6, {3, 3}, {2, 2}, {1, 1}), conv_spec(6, 6, {3, 3}, {1, 1}, {1, 1}, 2)}) {
      INFO(variant << " K " << spec.kernel[0] << " stride " << spec.stride[0] << " groups " << spec.groups);
      CHECK(fusion_error("repvgg", spec, {{"variant", variant}}) < 1e-5);
    }
}

TEST_CASE("structural: fuse_model reproduces whole branched models in eval mode (VGG-11 and ResNet-18 with a 7x7 stem)") {
  const std::vector<std::pair<Json, ModelSpec>> models = {
      {{{"name", "vgg11"}, {"width", 0.125}}, ModelSpec{3, 10, 16, 16}},
      {{{"name", "resnet18"}, {"width", 0.125}, {"stem", "imagenet"}}, ModelSpec{3, 10, 32, 32}},
  };
  for (const auto& strategy : structural()) {
    for (const auto& [model, spec] : models) {
      INFO(strategy << " " << model.dump());
      Json raw = test::tiny_config(1);
      raw["model"] = model;
      raw["strategy"] = {{"name", strategy}};
      RunModel run;
      run.config = resolve_config(raw, "t");
      run.spec = spec;
      run.strategy = strategy_from(strategy);
      RecordingConvFactory recording(run.strategy->conv_factory());
      run.model = build_model(run.config, spec, recording);
      run.made = recording.blocks();
      run.norms_after = recording.norms_after();
      conv_blocks(*run.model);
      if (strategy == "dyrep") {  // every growable conv grown, and one of them twice
        dyrep::GrowContext g;
        g.generator = at::detail::createCPUGenerator(9);
        std::shared_ptr<dyrep::GrowableConv> last;
        for (auto& b : run.made)
          if (auto growable = std::dynamic_pointer_cast<dyrep::GrowableConv>(b)) {
            growable->grow(g);
            last = growable;
          }
        REQUIRE(last);
        last->children().front().second->grow(g);
      }
      randomize(*run.model);
      run.model->eval();
      auto fused = fuse_model(run);
      // A bias where the block folds one in: acb, dbb and repvgg (BatchNorms
      // inside; blocks that replace conv + BN) on every spatial conv but the 7x7 stem (8 in VGG-11, 16 of 17
      // in ResNet-18), dyrep on every grown one, masked_branches none.
      int64_t bias_convs = 0, with_bias = 0, spatial = 0, norms = 0;
      for (const auto& b : conv_blocks(*fused)) bias_convs += b->spec().bias ? 1 : 0;
      for (size_t i = 0; i < run.made.size(); ++i) {
        with_bias += run.made[i]->fused_has_bias() ? 1 : 0;
        spatial += run.made[i]->spec().spatial() ? 1 : 0;
        norms += run.norms_after[i] ? 1 : 0;
      }
      CHECK(bias_convs == with_bias);
      CHECK(spatial == (model["name"] == "vgg11" ? 8 : 17));
      // The fused model holds a BatchNorm only where the run's model has one
      // after the conv: none after a fused acb/dbb/repvgg unit.
      CHECK(count_batchnorms(*fused) == norms);
      // (acb, dbb and repvgg replace conv + BN, the authors' placement.)
      const bool replaces_bn = !run.strategy->conv_factory()->norm_after(conv_spec(8, 8, {3, 3}, {1, 1}, {1, 1}));
      // The 7x7 stem and the shortcuts stay conv + BN; orepa converts the
      // stem, as its authors' builder does (and keeps basic-block shortcuts).
      CHECK(norms == (!replaces_bn                  ? static_cast<int64_t>(run.made.size())
                      : model["name"] == "vgg11" ? 0
                      : strategy == "orepa"      ? 3
                                                 : 1 + 3));
      torch::NoGradGuard no_grad;
      auto x = torch::randn({4, 3, spec.height, spec.width});
      CHECK(rel_diff(fused->forward(x), run.model->forward(x)) < 1e-5);
    }
  }
}

TEST_CASE("structural: the KxK weight is drawn exactly as the plain conv draws it") {
  const auto spec = conv_spec(4, 6, {3, 3}, {1, 1}, {1, 1});
  torch::manual_seed(5);
  PlainConv plain(spec);
  const auto after_plain = torch::rand({4});
  // masked_branches: the merged kernel is the plain one, and nothing else is drawn.
  Json masks = {{{0, 1, 0}, {1, 1, 1}, {0, 1, 0}}, {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}, {{1, 0, 1}, {0, 0, 0}, {1, 0, 1}}};
  for (const Json& m : {Json("acb_masks"), masks}) {
    INFO(m.dump());
    torch::manual_seed(5);
    auto block = make_block("masked_branches", spec, {{"masks", m}});
    CHECK(torch::equal(torch::rand({4}), after_plain));
    CHECK(torch::equal(block->fused().first, plain.weight));
  }
  // acb, dbb and orepa with init: model: their KxK branch starts as the plain
  // conv (they draw more after it).
  for (auto [name, key] :
       {std::pair{"acb", "square"}, std::pair{"dbb", "origin"}, std::pair{"orepa", "kernel.weight_orepa_origin"}}) {
    torch::manual_seed(5);
    auto block = make_block(name, spec, {{"init", "model"}});
    CHECK(torch::equal(block->named_parameters(true)[key], plain.weight));
  }
}

TEST_CASE("structural: acb and dbb as their authors build them: 7x7 plain, convs as nn.Conv2d draws them, gamma_init") {
  const auto stem = conv_spec(3, 8, {7, 7}, {2, 2}, {3, 3});
  for (const char* name : {"acb", "dbb"}) {
    INFO(name);
    CHECK(dynamic_cast<PlainConv*>(make_block(name, stem).get()) != nullptr);
    CHECK(dynamic_cast<PlainConv*>(make_block(name, stem, {{"convert_large_kernels", true}}).get()) == nullptr);
    CHECK(dynamic_cast<PlainConv*>(make_block(name, conv_spec(4, 6, {5, 5}, {1, 1}, {2, 2})).get()) == nullptr);
  }
  // Every conv of the block drawn as nn.Conv2d's default (kaiming-uniform,
  // a = sqrt(5)), in construction order.
  auto spec = conv_spec(4, 6, {3, 3}, {2, 2}, {1, 1});
  spec.init = ConvSpec::Init::PytorchDefault;
  torch::manual_seed(9);
  const auto square = init_conv(spec).first;
  const auto hor = init_conv(branches::branch_spec(spec, 4, 6, {1, 3})).first;
  spec.init = ConvSpec::Init::KaimingFanOut;  // what the model asks for
  torch::manual_seed(9);
  auto acb = make_block("acb", spec);
  auto params = acb->named_parameters(false);
  CHECK(torch::equal(params["square"], square));
  CHECK(torch::equal(params["hor"], hor));
  // gamma_init: the three BatchNorms' scales (1 by default).
  for (double gamma : {1.0, 1.0 / 3}) {
    auto block = make_block("acb", spec, gamma == 1.0 ? Json::object() : Json{{"gamma_init", gamma}});
    auto all = block->named_parameters(true);
    for (const char* bn : {"square_bn.weight", "hor_bn.weight", "ver_bn.weight"}) {
      INFO(bn << " " << gamma);
      CHECK(torch::allclose(all[bn], torch::full({6}, gamma), 0, 0));
    }
  }
}

TEST_CASE("structural: bad masks and unsupported convs are refused naming the key") {
  CHECK_THROWS_WITH_AS(strategy_from("masked_branches", {{"masks", "acb"}}),
                       "strategy.masks: unknown preset 'acb' (known: acb_masks; or give a list of 0/1 matrices)",
                       ConfigError);
  CHECK_THROWS_WITH_AS(strategy_from("masked_branches", {{"masks", {{{1, 1}, {1, 1}}, {{1, 2}, {0, 0}}}}}),
                       "strategy.masks[1][0][1]: expected 0 or 1, got 2", ConfigError);
  CHECK_THROWS_WITH_AS(strategy_from("masked_branches", {{"masks", {{{1, 1}, {1, 1}}, {{1, 1}, {0}}}}}),
                       "strategy.masks[1]: row 1 has 1 values, expected 2", ConfigError);
  CHECK_THROWS_WITH_AS(strategy_from("masked_branches", {{"masks", {{{1, 1}, {1, 1}}, {{0, 0}, {0, 0}}}}}),
                       "strategy.masks[1]: an all-zero mask (a branch that never acts)", ConfigError);
  CHECK_THROWS_WITH_AS(strategy_from("masked_branches", {{"masks", {{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}}}),
                       "strategy.masks: the 3x3 masks leave kernel position [0][1] uncovered (their union must cover "
                       "the kernel)",
                       ConfigError);
  CHECK_THROWS_WITH_AS(make_block("masked_branches", conv_spec(2, 2, {5, 5}, {1, 1}, {2, 2}),
                                  {{"masks", {{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}}}),
                       "strategy.masks: no 5x5 mask for a 5x5 conv (masks given: 3x3)", ConfigError);
  CHECK_THROWS_WITH_AS(make_block("masked_branches", conv_spec(2, 2, {4, 4}, {1, 1}, {2, 2})),
                       "strategy.masks: acb_masks needs odd kernel sizes, got a 4x4 conv (give the masks as a list)",
                       ConfigError);
  CHECK_THROWS_WITH_AS(make_block("acb", conv_spec(2, 2, {4, 4}, {1, 1}, {2, 2})),
                       "strategy.name: acb needs odd kernel sizes (branches align on the centre), got a 4x4 conv",
                       ConfigError);
  CHECK_THROWS_WITH_AS(make_block("dbb", conv_spec(2, 2, {3, 3}, {1, 1}, {1, 1}, 2)),
                       "strategy.name: dbb needs groups = 1, got a conv with 2 groups", ConfigError);
  // Through the CLI: exit 2 with the one-line message.
  test::TempDir dir("structural_cli_errors");
  Json config = test::tiny_config(1);
  config["strategy"] = {{"name", "masked_branches"}, {"masks", {{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}, {{0, 3}}}}};
  test::write_json(dir / "c.json", config);
  auto r = test::run_sgs("run " + (dir / "c.json").string() + " -q --out " + (dir / "run").string(), dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("strategy.masks[1][0][1]: expected 0 or 1, got 3") != std::string::npos);
}

TEST_CASE("Lemma 1: masked branches {3x3, 1x3, 3x1} train exactly as SGS with G = [[1,2,1],[2,3,2],[1,2,1]]") {
  // The strategies of experiments/lemma1/, on the tiny config (SGD, momentum, weight decay).
  auto branched = lemma1_slot("masked_branches.json", "strategy"), scaled = lemma1_slot("fixed.json", "strategy");
  CHECK(lemma1_slot("masked_branches.json", "optimizer") == lemma1_slot("fixed.json", "optimizer"));
  CHECK(branched.at("masks") == "acb_masks");
  CHECK(scaled.at("normalize") == false);
  check_lemma1(branched, scaled, "acb_masks");
}

TEST_CASE("Lemma 1 in float64, step by step: masked branches and SGS with G = sum of the masks agree to 1e-10") {
  // In float64 the two trajectories stay within rounding for any length; in
  // float32 (the runs below) they do too until a pre-activation lands within
  // rounding of 0 and one ReLU's derivative differs, after which they separate.
  Json acb = {{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}, {{0, 0, 0}, {1, 1, 1}, {0, 0, 0}}, {{0, 1, 0}, {0, 1, 0}, {0, 1, 0}}};
  Json other = {{{0, 1, 0}, {1, 1, 1}, {0, 1, 0}}, {{1, 0, 1}, {0, 0, 0}, {1, 0, 1}}, {{1, 1, 0}, {1, 1, 0}, {0, 0, 0}}};
  for (const auto& [masks, steps] : {std::pair{acb, 50}, std::pair{other, 16}}) {
    Json g = Json::array();
    for (int y = 0; y < 3; ++y) {
      g.push_back(Json::array());
      for (int x = 0; x < 3; ++x) g[y].push_back(masks[0][y][x].get<int>() + masks[1][y][x].get<int>() + masks[2][y][x].get<int>());
    }
    auto [loss, kernel] = lemma1_float64(masks, g, steps);
    MESSAGE("float64, " << steps << " steps, G " << g.dump() << ": max relative loss difference " << loss << ", kernels " << kernel);
    CHECK(loss < 1e-10);
    CHECK(kernel < 1e-10);
  }
  // A wrong G is caught: the check is not vacuous.
  auto [loss, kernel] = lemma1_float64(acb, Json{{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}, 8);
  CHECK(kernel > 1e-3);
}

TEST_CASE("Lemma 1: a random set of masks trains exactly as SGS with G = their sum") {
  std::mt19937 rng(2023);
  std::bernoulli_distribution coin(0.4);
  const int n = 4;
  std::vector<std::array<std::array<int, 3>, 3>> masks(n);
  for (auto& m : masks)
    for (auto& row : m)
      for (auto& v : row) v = coin(rng) ? 1 : 0;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x) {
      bool covered = false;
      for (const auto& m : masks) covered = covered || m[y][x] == 1;
      if (!covered) masks[static_cast<size_t>(rng() % n)][y][x] = 1;  // the union covers the kernel
    }
  Json jm = Json::array(), g = Json::array();
  for (const auto& m : masks) {
    Json rows = Json::array();
    for (const auto& row : m) rows.push_back(Json(row));
    if (std::all_of(m.begin(), m.end(), [](const auto& row) { return row == std::array<int, 3>{0, 0, 0}; }))
      rows[1][1] = 1;  // no all-zero branch
    jm.push_back(rows);
  }
  for (int y = 0; y < 3; ++y) {
    Json row = Json::array();
    for (int x = 0; x < 3; ++x) {
      int s = 0;
      for (const auto& m : jm) s += m[y][x].get<int>();
      row.push_back(s);
    }
    g.push_back(row);
  }
  MESSAGE("masks " << jm.dump() << " -> G " << g.dump());
  // Step by step in float64 (56 steps, as the float32 runs above): with a G
  // entry of 4 these dynamics amplify float32 rounding until a ReLU flips
  // (a relative loss difference of 4e-4 after one epoch on this machine's
  // oneDNN kernels), which says nothing about the lemma; float64 does not.
  auto [loss, kernel] = lemma1_float64(jm, g, 56);
  MESSAGE("float64, 56 steps: max relative loss difference " << loss << ", kernels " << kernel);
  CHECK(loss < 1e-10);
  CHECK(kernel < 1e-10);
}

TEST_CASE("structural: a short training run of each lowers the loss and fuses to the plain size + biases") {
  test::TempDir dir("structural_train");
  for (const auto& name : structural()) {
    INFO(name);
    Json config = test::tiny_config(3);
    config["strategy"] = {{"name", name}};
    if (name == "dyrep") config["strategy"].update({{"grow_interval", 1}, {"recal_bn_batches", 2}});  // grows twice
    auto result = train(config, dir / name);
    CHECK(result.status == sgs::RunStatus::Completed);
    auto loss = metric(dir / name, "train_loss");
    REQUIRE(loss.size() == 3);
    CHECK(loss.back() < 0.8 * loss.front());
    // kernel_magnitude is logged from the fused kernel.
    CHECK(test::read_dims((dir / name / "run.h5").string(), "/layers/features.0/kernel_magnitude") ==
          std::vector<int64_t>{4, 3, 3});
    // parameters_fused = the plain model's parameters + a bias per spatial conv
    // whose block folds one in (acb, dbb, repvgg, a grown dyrep conv; not
    // masked_branches), less the BatchNorms the blocks replaced.
    auto resolved = resolve_config(config, "t");
    ConvFactory plain;
    auto model = build_model(resolved, ModelSpec{1, 4, 8, 8}, plain);
    auto run = load_run_model((dir / name).string());  // the model as trained (dyrep: grown)
    int64_t params = 0, biases = 0, norms_replaced = 0;
    for (const auto& p : model->parameters()) params += p.numel();
    for (size_t i = 0; i < run.made.size(); ++i) {
      const auto& b = run.made[i];
      if (b->spec().spatial() && b->fused_has_bias()) biases += b->spec().out_channels;
      if (!run.norms_after[i]) norms_replaced += 2 * b->spec().out_channels;  // the BN's weight and bias
    }
    // acb, dbb, repvgg: the plain model's conv weights + a bias each, no BN.
    CHECK(result.summary.at("parameters_fused") == static_cast<double>(params + biases - norms_replaced));
    CHECK(result.summary.at("parameters") > result.summary.at("parameters_fused"));
  }
}

TEST_CASE("structural: acb, dbb and repvgg replace conv + BN and their branch BN betas train, while replace: conv "
          "keeps the model's BN, which leaves those betas without gradient") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"acb", "conv_bn"}, {"acb", "conv"}, {"dbb", "conv_bn"}, {"dbb", "conv"}, {"repvgg", ""}};
  for (const auto& [name, replace] : cases) {
    INFO(name << " replace " << replace);
    Json keys = Json::object();
    if (!replace.empty()) keys["replace"] = replace;
    auto strategy = strategy_from(name, keys);
    torch::manual_seed(3);
    auto model = build_model(resolve_config(test::tiny_config(1), "t"), ModelSpec{1, 4, 8, 8}, *strategy->conv_factory());
    const bool keeps = replace == "conv";
    CHECK(count_batchnorms(*model) == (keeps ? 8 : 0));  // VGG-11: 8 convs, all 3x3
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05));
    model->train();
    auto x = torch::randn({16, 1, 8, 8});
    auto y = torch::randint(0, 4, {16});
    for (int step = 0; step < 5; ++step) {
      sgd.zero_grad();
      torch::nn::functional::cross_entropy(model->forward(x), y).backward();
      sgd.step();
    }
    // The largest |beta| of a BatchNorm that ends a branch (DBB's inner BNs
    // feed a conv or a pooling, so their betas train either way).
    const std::map<std::string, std::set<std::string>> last = {
        {"acb", {"square_bn", "hor_bn", "ver_bn"}},
        {"dbb", {"origin_bn", "one_bn", "bn2", "avg_out_bn"}},
        {"repvgg", {"dense_bn", "one_bn", "identity_bn"}}};
    double beta = 0;
    int64_t seen = 0;
    for (const auto& b : conv_blocks(*model))
      for (const auto& m : b->named_modules("", false))
        if (auto bn = std::dynamic_pointer_cast<sgs::BatchNorm2dImpl>(m.value()); bn && last.at(name).count(m.key())) {
          beta = std::max(beta, bn->bias.abs().max().item<double>());
          ++seen;
        }
    CHECK(seen >= 8 * 2);
    if (keeps) CHECK(beta < 1e-6);
    else CHECK(beta > 1e-3);
  }
}

TEST_CASE("sgs fuse: an ACB run gives a plain model with the branched model's test accuracy") {
  test::TempDir dir("structural_fuse");
  Json config = test::tiny_config(2);
  config["strategy"] = {{"name", "acb"}};
  train(config, dir / "run");
  auto r = test::run_sgs("fuse " + (dir / "run").string() + " --out " + (dir / "model.pt").string(), dir.path());
  REQUIRE(r.exit_code == 0);
  // Line 2: the header; line 3: split images branched_acc fused_acc branched_loss fused_loss diff scale.
  std::istringstream lines(r.out);
  std::string first, header, row;
  std::getline(lines, first);
  std::getline(lines, header);
  std::getline(lines, row);
  CHECK(first.find("fused 8 spatial convs") != std::string::npos);
  CHECK(header.rfind("split\timages\tbranched_acc\tfused_acc", 0) == 0);
  std::istringstream cols(row);
  std::string split;
  int64_t images = 0;
  double acc_b = 0, acc_f = 0, loss_b = 0, loss_f = 0, diff = 1, scale = 0;
  cols >> split >> images >> acc_b >> acc_f >> loss_b >> loss_f >> diff >> scale;
  CHECK(split == "test");
  CHECK(images == 64);
  CHECK(acc_b == acc_f);
  CHECK(std::abs(acc_b - 100 * metric(dir / "run", "test_acc").back()) <= 0.005 + 1e-9);  // printed with 2 decimals
  CHECK(diff <= 1e-5 * scale);
  // model.pt loads into the plain VGG-11 with a bias on its 3x3 convs and no
  // BatchNorms, and computes the branched model's function.
  auto run = load_run_model((dir / "run").string());
  FusedConvFactory with_bias(std::vector<FusedConv>(8, FusedConv{true, false}));
  auto plain = build_model(run.config, run.spec, with_bias);
  torch::serialize::InputArchive archive;
  archive.load_from((dir / "model.pt").string());
  plain->load(archive);
  plain->eval();
  CHECK(count_batchnorms(*plain) == 0);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({16, 1, 8, 8});
  CHECK(rel_diff(plain->forward(x), run.model->forward(x)) < 1e-5);
  // --no-eval writes the model and prints one line; a directory without a run is refused.
  auto quiet = test::run_sgs("fuse " + (dir / "run").string() + " --out " + (dir / "m2.pt").string() + " --no-eval",
                             dir.path());
  CHECK(quiet.exit_code == 0);
  CHECK(std::count(quiet.out.begin(), quiet.out.end(), '\n') == 1);
  CHECK(std::filesystem::exists(dir / "m2.pt"));
  auto bad = test::run_sgs("fuse " + dir.path().string() + " --out " + (dir / "m3.pt").string(), dir.path());
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("no config.json") != std::string::npos);
}
