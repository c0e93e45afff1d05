#include <doctest/doctest.h>

#include "plugins/strategies/common/dependence.h"
#include "plugins/strategies/common/dependence_strategy.h"
#include "plugins/strategies/common/scaling.h"
#include "plugins/strategies/common/static_scaling.h"
#include "support/plugins.h"
#include "support/support.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/registry.h>
#include <sgs/strategy.h>
#include <sgs/trainer.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

using namespace sgs;
using sgs::test::strategy_from;
namespace dep = sgs::dependence;

namespace {

// One channel per row: [1, C, 1, W] maps from rows of values.
torch::Tensor rows_map(const std::vector<std::vector<float>>& rows) {
  auto x = torch::empty({1, static_cast<int64_t>(rows.size()), 1, static_cast<int64_t>(rows[0].size())});
  for (size_t c = 0; c < rows.size(); ++c)
    for (size_t i = 0; i < rows[c].size(); ++i) x[0][c][0][i] = rows[c][i];
  return x;
}

ConvSpec kernel_1x3() {
  ConvSpec s;
  s.kernel = {1, 3};
  return s;
}

double entropy(std::vector<double> counts) {
  double total = 0, h = 0;
  for (double c : counts) total += c;
  for (double c : counts)
    if (c > 0) h -= c / total * std::log2(c / total);
  return h;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("mutual information: dependent, independent, skewed and constant channels against hand values") {
  // Displacement dx = -1 pairs P = X[x] with Q = X[x - 1], x = 1..8 (n = 8, 4 Sturges bins).
  auto x = rows_map({
      {0, 1, 0, 1, 0, 1, 0, 1, 0},  // P determines Q: (1,0) x4, (0,1) x4          -> NMI 1
      {0, 0, 1, 1, 0, 0, 1, 1, 0},  // every (P,Q) combination twice              -> NMI 0
      {0, 0, 0, 0, 0, 1, 1, 1, 0},  // (0,0) x4, (1,1) x2, (1,0) x1, (0,1) x1
      {.3f, .3f, .3f, .3f, .3f, .3f, .3f, .3f, .3f},  // constant: undefined -> NaN, left out
  });
  for (bool generic : {false, true}) {
    INFO("generic kernel " << generic);
    dep::Options o;
    o.generic_kernel = generic;
    o.k = 5;
    auto r = dep::compute(x, kernel_1x3(), o);
    auto pc = r.per_channel;
    CHECK(pc.sizes() == torch::IntArrayRef{4, 1, 3});
    const double skewed = (entropy({5, 3}) + entropy({5, 3}) - entropy({4, 2, 1, 1})) / entropy({4, 2, 1, 1});
    CHECK(skewed == doctest::Approx(0.0907820).epsilon(1e-6));
    const double expected[3][3] = {{1, 1, 1}, {0, 1, 0}, {skewed, 1, skewed}};
    for (int c = 0; c < 3; ++c)
      for (int j = 0; j < 3; ++j) CHECK(pc[c][0][j].item<double>() == doctest::Approx(expected[c][j]).epsilon(1e-12));
    CHECK(std::isnan(pc[3][0][0].item<double>()));
    CHECK(pc[3][0][1].item<double>() == 1.0);  // the centre is 1 for every channel
    // dependence = nan-mean of the raw values; scaling = mean of k-transformed, normalised.
    CHECK(r.dependence[0][0].item<double>() == doctest::Approx((1 + 0 + skewed) / 3));
    CHECK(r.dependence[0][1].item<double>() == doctest::Approx(1.0));
    const double edge = (1 + 0 + 5 * skewed / (4 * skewed + 1)) / 3;
    const double mean = (2 * edge + 1) / 3;
    CHECK(r.scaling[0][0].item<double>() == doctest::Approx(edge / mean).epsilon(1e-12));
    CHECK(r.scaling[0][1].item<double>() == doctest::Approx(1 / mean).epsilon(1e-12));
    CHECK(r.scaling.mean().item<double>() == doctest::Approx(1.0));
  }
}

TEST_CASE("mutual information: diagonal removal on a map with many zeros") {
  // Pairs (P,Q) for x = 1..8: (0,0) (2,0) (2,2) (3,2) (2,3) (0,2) (0,0) (0,0).
  auto x = rows_map({{0, 0, 2, 2, 3, 2, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0, 0}});
  dep::Options o;
  o.k = 1;
  // Without removal: n = 8, 4 bins over [0, 3]: 0 -> 0, 2 -> 2, 3 -> 3.
  auto plain = dep::compute(x, kernel_1x3(), o);
  const double h_pq = entropy({3, 1, 1, 1, 1, 1}), h_p = entropy({4, 3, 1});
  CHECK(plain.per_channel[0][0][0].item<double>() == doctest::Approx((2 * h_p - h_pq) / h_pq).epsilon(1e-12));
  CHECK(std::isnan(plain.per_channel[1][0][0].item<double>()));  // all zero: constant
  // With removal: pairs with a zero go; (2,2) (3,2) (2,3) remain, n = 3 -> 3 bins
  // over [2, 3]: 2 -> 0, 3 -> 2; the diagonal cell (2,2) is zeroed: two cells of 1.
  o.diagonal_removal = true;
  for (bool generic : {false, true}) {
    o.generic_kernel = generic;
    auto removed = dep::compute(x, kernel_1x3(), o);
    CHECK(removed.per_channel[0][0][0].item<double>() == doctest::Approx((1.0 + 1.0 - 1.0) / 1.0));
    CHECK(removed.per_channel[1][0][0].item<double>() == 0.0);  // no pairs left: 0, not NaN
    CHECK(removed.dependence[0][0].item<double>() == doctest::Approx(0.5));
  }
}

TEST_CASE("dependence: symmetric, mean-normalised, and the CPU kernel equals the generic tensor path") {
  torch::manual_seed(3);
  auto x = torch::relu(torch::randn({4, 5, 9, 11}));
  x.index_put_({torch::indexing::Slice(), 2}, 0.7f);  // a constant channel
  ConvSpec spec;
  spec.kernel = {5, 3};
  spec.dilation = {1, 2};
  for (auto measure : {dep::Measure::MutualInformation, dep::Measure::Autocorrelation}) {
    for (bool diag : {false, true}) {
      INFO("measure " << static_cast<int>(measure) << " diag " << diag);
      dep::Options o;
      o.measure = measure;
      o.diagonal_removal = diag;
      auto fast = dep::compute(x, spec, o);
      o.generic_kernel = true;
      auto generic = dep::compute(x, spec, o);
      CHECK(torch::allclose(fast.per_channel, generic.per_channel, 1e-12, 1e-12, /*equal_nan=*/true));
      auto pc = fast.per_channel;
      CHECK(torch::allclose(pc, pc.flip({1, 2}), 1e-12, 1e-12, true));  // d and -d agree
      CHECK(fast.scaling.mean().item<double>() == doctest::Approx(1.0));
      CHECK((fast.scaling > 0).all().item<bool>());
      CHECK(fast.scaling[2][1].item<double>() == doctest::Approx(fast.scaling.max().item<double>()));
    }
  }
  // Histograms agree cell by cell.
  auto h1 = dep::joint_histograms(x.contiguous(), -1, 2, false, false);
  auto h2 = dep::joint_histograms(x.contiguous(), -1, 2, false, true);
  CHECK(torch::equal(h1, h2));
  CHECK(h1.sum({1, 2})[0].item<double>() == 4 * 8 * 9);
}

TEST_CASE("autocorrelation: Pearson correlation, negatives clamped, constant channels left out") {
  auto x = rows_map({{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, -1, 1, -1, 1, -1, 1, -1, 1}, {2, 2, 2, 2, 2, 2, 2, 2, 2}});
  dep::Options o;
  o.measure = dep::Measure::Autocorrelation;
  o.k = 1;
  auto r = dep::compute(x, kernel_1x3(), o);
  CHECK(r.per_channel[0][0][0].item<double>() == doctest::Approx(1.0));  // a ramp: perfectly correlated
  CHECK(r.per_channel[1][0][0].item<double>() == 0.0);                    // -1 clamped to 0
  CHECK(std::isnan(r.per_channel[2][0][0].item<double>()));
  CHECK(r.dependence[0][0].item<double>() == doctest::Approx(0.5));
}

TEST_CASE("k-transform") {
  auto s = torch::tensor({0.0, 0.5, 1.0}, torch::kFloat64);
  auto t = dep::k_transform(s, 5);
  CHECK(t[0].item<double>() == 0.0);
  CHECK(t[1].item<double>() == doctest::Approx(2.5 / 3.0));
  CHECK(t[2].item<double>() == doctest::Approx(1.0));
  CHECK(torch::allclose(dep::k_transform(s, 1), s));
}

TEST_CASE("alpha_beta: centre/edge = alpha, centre/corner = beta, mean 1") {
  auto strategy = strategy_from("alpha_beta", {{"alpha", 2.0}, {"beta", 4.0}});
  auto block = std::make_shared<PlainConv>(ConvSpec{2, 3});
  block->set_path("conv");
  StrategyContext ctx;
  ctx.convs = {block};
  strategy->attach(ctx);
  auto* scaling = dynamic_cast<ScalingStrategy*>(strategy.get());
  REQUIRE(scaling != nullptr);
  auto g = scaling->scaling("conv").to(torch::kFloat64);
  auto expected = torch::tensor({.25, .5, .25, .5, 1., .5, .25, .5, .25}, torch::kFloat64).view({3, 3}) * (9.0 / 4.0);
  CHECK(max_abs_diff(g, expected) < 1e-6);
  CHECK(g.mean().item<double>() == doctest::Approx(1.0));
  CHECK_THROWS_AS(strategy_from("alpha_beta", {{"alpha", 2.0}}), ConfigError);
}

TEST_CASE("scaling applied to the gradient or to the update: SGD with momentum by hand") {
  const auto G = torch::tensor({1., 2., 1., 2., 3., 2., 1., 2., 1.}).view({3, 3});
  const double lr = 0.1, mu = 0.9;
  torch::manual_seed(0);
  auto g1 = torch::randn({2, 2, 3, 3}), g2 = torch::randn({2, 2, 3, 3});
  for (const std::string apply : {"gradient", "update"}) {
    INFO(apply);
    auto strategy = strategy_from("fixed", {{"matrix", {{1, 2, 1}, {2, 3, 2}, {1, 2, 1}}}, {"normalize", false},
                                            {"apply", apply}});
    auto block = std::make_shared<PlainConv>(ConvSpec{2, 2});
    block->set_path("conv");
    auto w0 = block->weight.detach().clone();
    torch::optim::SGD sgd({block->weight}, torch::optim::SGDOptions(lr).momentum(mu));
    StrategyContext ctx;
    ctx.convs = {block};
    ctx.optimizer = &sgd;
    strategy->attach(ctx);
    for (const auto& g : {g1, g2}) {
      block->weight.mutable_grad() = g.clone();
      strategy->after_backward(ctx);
      sgd.step();
      strategy->after_step(ctx);
    }
    torch::Tensor expected;
    if (apply == "gradient") {
      auto b1 = G * g1, b2 = mu * b1 + G * g2;
      expected = w0 - lr * b1 - lr * b2;
    } else {
      auto b1 = g1, b2 = mu * g1 + g2;
      expected = w0 - lr * G * b1 - lr * G * b2;
    }
    CHECK(max_abs_diff(block->weight.detach(), expected) < 1e-6);
  }
}

TEST_CASE("fixed: bad matrices are refused naming strategy.matrix") {
  CHECK_THROWS_WITH_AS(strategy_from("fixed", {{"matrix", {{1, 2}, {3}}}}),
                       "strategy.matrix: row 1 has 1 values, expected 2", ConfigError);
  CHECK_THROWS_WITH_AS(strategy_from("fixed", {{"matrix", {{1, -2}, {3, 4}}}}),
                       "strategy.matrix[0][1]: must be finite and >= 0, got -2", ConfigError);
  CHECK_THROWS_WITH_AS(strategy_from("fixed", {{"matrix", {{1, 0}, {3, 4}}}}),
                       "strategy.matrix: with normalize, every entry must be > 0 (G is positive with mean 1)",
                       ConfigError);
  auto strategy = strategy_from("fixed", {{"matrix", {{1, 1}, {1, 1}}}});
  auto block = std::make_shared<PlainConv>(ConvSpec{2, 2});
  block->set_path("features.0");
  StrategyContext ctx;
  ctx.convs = {block};
  CHECK_THROWS_WITH_AS(strategy->attach(ctx),
                       "strategy.matrix: a 2x2 matrix for layer 'features.0' whose kernel is 3x3", ConfigError);
  auto other = std::make_shared<PlainConv>(ConvSpec{2, 2});
  other->set_path("features.3");
  ctx.convs = {block, other};
  auto per_layer = strategy_from("fixed", {{"matrix", {{"features.3", {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}}}});
  CHECK_THROWS_WITH_AS(per_layer->attach(ctx),
                       "strategy.matrix: no matrix for layer 'features.0' (name it, or give \"*\")", ConfigError);
  // A layer the model does not have is a typo, refused even beside "*".
  const Json ones = {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}};
  auto typo = strategy_from("fixed", {{"matrix", {{"*", ones}, {"features.30", ones}}}});
  CHECK_THROWS_WITH_AS(typo->attach(ctx),
                       "strategy.matrix.features.30: the model has no spatial conv 'features.30'; did you mean "
                       "'features.0' or 'features.3'? (its layers: features.0, features.3)",
                       ConfigError);
}

TEST_CASE("mutual_information: warm-up epochs train with G = 1, then every E epochs an update") {
  auto strategy = strategy_from("mutual_information", {{"warmup_epochs", 2}, {"every", 3}, {"batches", 1}});
  auto block = std::make_shared<PlainConv>(ConvSpec{2, 2});
  block->set_path("conv");
  StrategyContext ctx;
  ctx.convs = {block};
  int gathers = 0;
  ctx.run_batches = [&](const BatchPass& pass) {
    ++gathers;
    torch::manual_seed(static_cast<int64_t>(pass.draw_seed % 1000));
    block->set_capture(pass.sink);
    block->forward(torch::rand({2, 2, 6, 6}));
    block->set_capture(nullptr);
    return int64_t{2};
  };
  strategy->attach(ctx);
  auto* scaling = dynamic_cast<ScalingStrategy*>(strategy.get());
  auto grad = torch::randn({2, 2, 3, 3});
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    ctx.epochs_done = epoch;
    strategy->on_epoch_begin(ctx);
    block->weight.mutable_grad() = grad.clone();
    strategy->after_backward(ctx);
    if (epoch < 2) {
      CHECK(!scaling->scaling("conv").defined());
      CHECK(torch::equal(block->weight.grad(), grad));  // G = 1
    } else {
      auto g = scaling->scaling("conv");
      REQUIRE(g.defined());
      CHECK(max_abs_diff(block->weight.grad(), grad * g) < 1e-7);
    }
  }
  CHECK(gathers == 2);  // epochs 2 and 5
}

TEST_CASE("strategies: a quick run with each scaling strategy writes its scalings to run.h5") {
  test::TempDir dir("strategies_runs");
  int scaling_strategies = 0;
  for (const auto& name : Registry::global().names("strategy")) {
    INFO(name);
    auto built = test::make_strategy(name);
    if (dynamic_cast<ScalingStrategy*>(built.get()) == nullptr) continue;
    ++scaling_strategies;
    // Dependence strategies update every epoch after the warm-up (epochs 1
    // and 2), static ones log their G once, as the update of epoch 0; any
    // other logs at epochs of its own, increasing, within the run.
    const bool dynamic = dynamic_cast<DependenceStrategy*>(built.get()) != nullptr;
    const bool fixed = dynamic_cast<StaticScaling*>(built.get()) != nullptr;
    Json config = test::tiny_config(3);
    config["strategy"] = test::test_slot("strategy", name, dynamic ? Json{{"every", 1}, {"batches", 1}} : Json::object());
    RunOptions ro;
    ro.out_dir = (dir / name).string();
    ro.quiet = true;
    CHECK(run_training(resolve_config(config, "t"), ro).status == sgs::RunStatus::Completed);
    const std::string f = (dir / name / "run.h5").string();
    for (const char* layer : {"features.0", "features.25"}) {
      const std::string g = std::string("/layers/") + layer;
      std::vector<double> epochs = test::read_doubles(f, g + "/scaling_epoch");
      if (dynamic) CHECK(epochs == std::vector<double>{1, 2});
      if (fixed) CHECK(epochs == std::vector<double>{0});
      REQUIRE(!epochs.empty());
      CHECK(std::is_sorted(epochs.begin(), epochs.end()));
      CHECK(std::adjacent_find(epochs.begin(), epochs.end()) == epochs.end());
      CHECK(epochs.front() >= 0);
      CHECK(epochs.back() < 3);
      CHECK(test::read_dims(f, g + "/scaling") == std::vector<int64_t>{static_cast<int64_t>(epochs.size()), 3, 3});
      CHECK(test::has_object(f, g + "/dependence") == dynamic);
      auto s = test::read_doubles(f, g + "/scaling");
      double mean = 0;
      for (int i = 0; i < 9; ++i) mean += s[i] / 9;
      CHECK(mean == doctest::Approx(1.0));
    }
    if (dynamic) CHECK(test::read_doubles(f, "/metrics/scaling_seconds")[1] > 0);
  }
  CHECK(scaling_strategies >= 4);  // mutual_information, autocorrelation, alpha_beta, fixed
}

TEST_CASE("sgs dependence reproduces the matrix a run logged, from the feature maps it saved") {
  test::TempDir dir("dependence_cli");
  Json config = test::tiny_config(2);
  config["strategy"] = {{"name", "mutual_information"}, {"every", 1}, {"batches", 2}, {"warmup_epochs", 0},
                        {"save_features", (dir / "features.h5").string()}, {"save_features_update", 1}};
  RunOptions ro;
  ro.out_dir = (dir / "run").string();
  ro.quiet = true;
  run_training(resolve_config(config, "t"), ro);
  REQUIRE(std::filesystem::exists(dir / "features.h5"));
  const std::string h5 = (dir / "run" / "run.h5").string();
  for (const char* layer : {"features.0", "features.8", "features.22"}) {
    INFO(layer);
    auto r = test::run_sgs("dependence " + (dir / "features.h5").string() + " --dataset " + layer +
                               " --k 5 --kernel 3 --padding 1",
                           dir.path());
    REQUIRE(r.exit_code == 0);
    auto out = Json::parse(r.out);
    auto logged_scaling = test::read_doubles(h5, std::string("/layers/") + layer + "/scaling");
    auto logged_dependence = test::read_doubles(h5, std::string("/layers/") + layer + "/dependence");
    REQUIRE(logged_scaling.size() == 18);  // updates at epochs 0 and 1; the second was saved
    for (int i = 0; i < 9; ++i) {
      CHECK(out["scaling"][i / 3][i % 3].get<double>() == doctest::Approx(logged_scaling[9 + i]).epsilon(1e-6));
      CHECK(out["dependence"][i / 3][i % 3].get<double>() ==
            doctest::Approx(logged_dependence[9 + i]).epsilon(1e-6));
    }
  }
  auto bad = test::run_sgs("dependence " + (dir / "features.h5").string() + " --dataset nope", dir.path());
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("no dataset 'nope'") != std::string::npos);
}
