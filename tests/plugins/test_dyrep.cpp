// DyRep: the growable conv (growth, nested growth, cuts, fusion, its graph
// as text) and the strategy in training runs (growths logged, resume across
// a growth, optimizer state, sgs fuse's model). Its block against DyRep's own
// code: test_structural_reference.cpp.
#include <doctest/doctest.h>

#include "analysis/runs.h"
#include "plugins/strategies/common/dyrep_block.h"
#include "support/plugins.h"
#include "support/support.h"

#include <sgs/assembly.h>
#include <sgs/config.h>
#include <sgs/fuse.h>
#include <sgs/registry.h>
#include <sgs/run_file.h>
#include <sgs/run_log.h>
#include <sgs/strategy.h>
#include <sgs/trainer.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <sstream>

using namespace sgs;
using sgs::dyrep::GrowableConv;
using sgs::test::rel_diff;

namespace {

ConvSpec spec_of(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding) {
  ConvSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel = {k, k};
  s.stride = {stride, stride};
  s.padding = {padding, padding};
  return s;
}

// Every BatchNorm of `m` in train mode with statistics re-estimated over a
// few random batches through `m` (a stand-in for DyRep's recal_bn).
void recalibrate_on_noise(torch::nn::Module& m, ConvBlock& block, int64_t in) {
  torch::NoGradGuard no_grad;
  block.eval();
  for (const auto& sub : m.modules())
    if (auto* bn = dynamic_cast<BatchNorm2dImpl*>(sub.get())) {
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);
      bn->train();
    }
  for (int i = 0; i < 3; ++i) block.forward(torch::randn({8, in, 9, 9}) * 2 + 0.5);
  for (const auto& sub : m.modules())
    if (auto* bn = dynamic_cast<BatchNorm2dImpl*>(sub.get())) bn->options.momentum(0.1);
  block.eval();
}

dyrep::GrowContext grow_context(uint64_t seed, double gamma = 0.01) {
  dyrep::GrowContext g;
  g.generator = at::detail::createCPUGenerator(seed);
  g.gamma = gamma;
  return g;
}

// Perturbs every BatchNorm (affine and statistics) and parameter of `m`, as training would.
void perturb(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.add_(torch::randn_like(p) * 0.1);
  for (const auto& sub : m.modules())
    if (auto* bn = dynamic_cast<BatchNorm2dImpl*>(sub.get())) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0, 0.3);
      bn->running_mean.normal_(0, 0.3);
      bn->running_var.uniform_(0.5, 1.5);
    }
}

torch::Tensor fused_output(GrowableConv& c, const torch::Tensor& x) {
  auto [w, b] = c.fused();
  const auto& s = c.spec();
  return torch::conv2d(x, w, b, {s.stride[0], s.stride[1]}, {s.padding[0], s.padding[1]});
}

const std::vector<ConvSpec>& geometries() {
  static const std::vector<ConvSpec> g = {spec_of(4, 6, 3, 1, 1), spec_of(4, 6, 3, 2, 1), spec_of(6, 6, 3, 1, 1),
                                          spec_of(4, 6, 5, 1, 2), spec_of(6, 6, 3, 1, 0)};
  return g;
}

using test::metric;
using test::train;

// The optimizer state of `p` (LibTorch keys it by a string of the
// TensorImpl's address in 1.x, by the address in 2.x).
template <class Map>
auto find_state(Map& state, const torch::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // c10::guts::to_string (1.x, gone in 2.x) of the address
    key << p.unsafeGetTensorImpl();
    return state.find(key.str());
  } else {
    return state.find(static_cast<Key>(p.unsafeGetTensorImpl()));
  }
}

Json dyrep_config(int64_t epochs, Json keys = Json::object()) {
  Json c = test::tiny_config(epochs);
  keys["name"] = "dyrep";
  if (!keys.contains("grow_interval")) keys["grow_interval"] = 1;
  if (!keys.contains("recal_bn_batches")) keys["recal_bn_batches"] = 2;
  c["strategy"] = keys;
  return c;
}

}  // namespace

TEST_CASE("dyrep block: growth, nested growth and cuts keep the eval-mode function, and the fused conv equals the block") {
  torch::manual_seed(11);
  for (const auto& spec : geometries()) {
    INFO("in " << spec.in_channels << " out " << spec.out_channels << " k " << spec.kernel[0] << " stride "
               << spec.stride[0] << " padding " << spec.padding[0]);
    auto c = std::make_shared<GrowableConv>(spec, 0);
    c->eval();
    const auto x = torch::randn({4, spec.in_channels, 9, 9});
    torch::NoGradGuard no_grad;
    auto before = c->forward(x);
    auto g = grow_context(5);
    g.recalibrate = [&](torch::nn::Module& m) { recalibrate_on_noise(m, *c, spec.in_channels); };
    c->grow(g);
    c->eval();
    CHECK(c->grown());
    CHECK(c->branches() == c->growth_branches());
    const bool same_window = spec.padding[0] == 1 || spec.padding[0] == 2;
    CHECK(c->branches()[dyrep::k1x1] == same_window);
    CHECK(c->branches()[dyrep::kIdentity] == (same_window && spec.in_channels == spec.out_channels &&
                                              spec.stride[0] == 1));
    CHECK(c->scalable_weight().defined() == false);
    auto after = c->forward(x);
    CHECK(rel_diff(after, before) < 1e-5);
    CHECK(rel_diff(fused_output(*c, x), after) < 1e-5);

    // As training leaves it: the fused conv still equals the block.
    perturb(*c);
    before = c->forward(x);
    CHECK(rel_diff(fused_output(*c, x), before) < 1e-5);

    // A second growth inside the block (DyRep: convs of depth < 2), each step
    // compared with the one before.
    for (const auto& [name, child] : c->children()) {
      INFO(name);
      CHECK(child->depth() == 1);
      child->grow(g);
      c->eval();
      auto now = c->forward(x);
      CHECK(rel_diff(now, before) < 1e-5);
      CHECK(rel_diff(fused_output(*c, x), now) < 1e-5);
      before = now;
    }
    perturb(*c);
    before = c->forward(x);

    // Its graph as text rebuilds the same block (the weights loaded by name).
    const std::string graph = c->structure();
    auto copy = std::make_shared<GrowableConv>(spec, 0);
    copy->restore(graph);
    CHECK(copy->structure() == graph);
    {
      auto from = c->named_parameters(true), to = copy->named_parameters(true);
      REQUIRE(from.size() == to.size());
      for (const auto& p : from) to[p.key()].copy_(p.value());
      auto fb = c->named_buffers(true), tb = copy->named_buffers(true);
      REQUIRE(fb.size() == tb.size());
      for (const auto& b : fb) tb[b.key()].copy_(b.value());
    }
    copy->eval();
    CHECK(torch::equal(copy->forward(x), before));

    // Cuts: all but the KxK branch and one other, then down to the plain conv.
    dyrep::Branches keep = c->branches();
    int left = -1;
    for (int b = 0; b < dyrep::kBranches; ++b) {
      if (b == dyrep::kKxk || !keep[b]) continue;
      if (left < 0) left = b;
      else keep[b] = false;
    }
    c->cut(keep, g);
    c->eval();
    auto cut = c->forward(x);
    CHECK(rel_diff(cut, before) < 1e-5);
    CHECK(c->branches() == keep);
    CHECK(rel_diff(fused_output(*c, x), cut) < 1e-5);
    c->cut(dyrep::Branches{}, g);
    c->eval();
    CHECK_FALSE(c->grown());
    CHECK(c->bias().defined());  // DyRep's _cut: one conv with bias
    CHECK(c->structure() == "p1");
    CHECK(rel_diff(c->forward(x), cut) < 1e-5);
  }
}

TEST_CASE("dyrep block: with grow_gamma 0 a growth also keeps the train-mode output of conv + the model's BN") {
  // DyRep's own gamma (0.01) keeps the eval-mode function only: in train mode
  // the branch BatchNorms normalise with batch statistics. With gamma 0 the
  // new branches add nothing, and the model's BN undoes the KxK branch's.
  torch::manual_seed(12);
  double dyrep_growth = 0, dyrep_cut = 0;  // the train-mode change with DyRep's own settings, for the record
  for (const auto& spec : geometries()) {
    INFO("k " << spec.kernel[0] << " stride " << spec.stride[0] << " padding " << spec.padding[0]);
    auto c = std::make_shared<GrowableConv>(spec, 0);
    BatchNorm2d bn(spec.out_channels);
    const auto x = torch::randn({8, spec.in_channels, 9, 9});
    torch::NoGradGuard no_grad;
    c->train();
    bn->train();
    auto before = bn(c->forward(x));
    auto g = grow_context(6, /*gamma=*/0.0);
    c->grow(g);
    c->train();
    CHECK(rel_diff(bn(c->forward(x)), before) < 1e-5);

    auto d = std::make_shared<GrowableConv>(spec, 0);
    d->train();
    before = bn(d->forward(x));
    auto g01 = grow_context(6, /*gamma=*/0.01);
    d->grow(g01);
    d->train();
    auto grown = bn(d->forward(x));
    dyrep_growth = std::max(dyrep_growth, rel_diff(grown, before));
    perturb(*d);
    before = bn(d->forward(x));
    dyrep::Branches keep{};
    d->cut(keep, g01);
    d->train();
    dyrep_cut = std::max(dyrep_cut, rel_diff(bn(d->forward(x)), before));
  }
  MESSAGE("train-mode output of conv + BN, largest relative change: a growth with DyRep's gamma 0.01 "
          << dyrep_growth << ", a cut to the plain conv " << dyrep_cut << " (eval mode: below 1e-5 for both)");
}

TEST_CASE("dyrep block: a graph that is not one is refused with its position") {
  GrowableConv c(spec_of(4, 6, 3, 1, 1), 0);
  for (const char* bad : {"x", "p", "g1111", "g0001000[p1", "g1111111[p1][p0]x", "g1110000[p1][p0]",
                                 "g1111111[g1111111[g1111111[p1][p0]][p0]][p0]"}) {
    INFO(bad);
    CHECK_THROWS_WITH_AS(c.restore(bad), doctest::Contains("dyrep: graph"), std::runtime_error);
  }
}

TEST_CASE("dyrep: growth keeps the network's eval output and the optimizer state of surviving parameters, and so does a cut") {
  torch::manual_seed(13);
  Json raw = dyrep_config(10, {{"recal_bn_batches", 0}});
  const Json config = resolve_config(raw, "t");
  auto strategy = make_strategy(config);
  auto model = build_model(config, ModelSpec{1, 4, 8, 8}, *strategy->conv_factory());
  auto blocks = conv_blocks(*model);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  StrategyContext ctx;
  ctx.model = model.get();
  ctx.optimizer = &sgd;
  ctx.epochs = 10;
  ctx.seed = 3;
  for (auto& b : blocks)
    if (b->spec().spatial()) ctx.convs.push_back(b);
  strategy->attach(ctx);
  auto x = torch::randn({16, 1, 8, 8});
  auto y = torch::randint(0, 4, {16});
  auto steps = [&](int n) {
    model->train();
    for (int i = 0; i < n; ++i) {
      sgd.zero_grad();
      torch::nn::functional::cross_entropy(model->forward(x), y).backward();
      strategy->after_backward(ctx);
      sgd.step();
      ++ctx.step;
    }
  };
  auto key = [](const torch::Tensor& p) { return static_cast<const void*>(p.unsafeGetTensorImpl()); };
  auto momenta = [&] {
    std::map<const void*, torch::Tensor> m;
    for (const auto& p : sgd.param_groups()[0].params()) {
      auto it = find_state(sgd.state(), p);
      if (it != sgd.state().end())
        m[key(p)] = static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer().clone();
    }
    return m;
  };
  auto eval_out = [&] {
    torch::NoGradGuard no_grad;
    model->eval();
    return model->forward(x);
  };
  auto check_adjust = [&](int64_t epochs_done) {
    steps(3);
    const auto before_out = eval_out();
    const auto before = momenta();
    std::set<const void*> before_params;
    for (const auto& p : model->parameters()) before_params.insert(key(p));
    ctx.epochs_done = epochs_done;
    strategy->on_epoch_begin(ctx);
    CHECK(rel_diff(eval_out(), before_out) < 1e-5);
    // The optimizer holds exactly the model's parameters, in order.
    const auto params = model->parameters();
    const auto& held = sgd.param_groups()[0].params();
    REQUIRE(held.size() == params.size());
    for (size_t i = 0; i < params.size(); ++i) CHECK(key(held[i]) == key(params[i]));
    // Surviving parameters keep their momentum; new ones have none; removed ones' state is gone.
    int64_t kept = 0, fresh = 0;
    for (const auto& p : params) {
      const bool has = find_state(sgd.state(), p) != sgd.state().end();
      if (before_params.count(key(p))) {
        REQUIRE(has);
        CHECK(torch::equal(momenta().at(key(p)), before.at(key(p))));
        ++kept;
      } else {
        CHECK_FALSE(has);
        ++fresh;
      }
    }
    CHECK(sgd.state().size() == static_cast<size_t>(kept));
    CHECK(fresh > 0);
    steps(1);  // and training goes on with the new parameters
  };
  check_adjust(1);
  int grown = 0;
  std::shared_ptr<GrowableConv> first;
  for (auto& b : ctx.convs)
    if (auto g = std::dynamic_pointer_cast<GrowableConv>(b); g && g->grown()) {
      ++grown;
      first = g;
    }
  CHECK(grown == 1);
  REQUIRE(first);
  // Branch weights that spread: 1xK strong, the others weak: the next adjustment cuts the weak ones.
  {
    torch::NoGradGuard no_grad;
    for (auto& item : first->named_parameters(true)) {
      const std::string& n = item.key();
      if (n.rfind("dbb_kxk.", 0) == 0 || n.find("bn") == std::string::npos || n.find(".weight") == std::string::npos)
        continue;
      const bool last = n == "dbb_1x1.bn.weight" || n == "dbb_1x1_kxk.bn2.weight" || n == "dbb_1x1_avg.avgbn.weight" ||
                        n == "dbb_1xk.bn.weight" || n == "dbb_kx1.bn.weight" || n == "dbb_id.weight";
      if (last) item.value().fill_(n == "dbb_1xk.bn.weight" ? 0.5 : 0.01);
    }
    first->named_parameters(true)["dbb_kxk.bn.weight"].fill_(1.0);
  }
  check_adjust(2);
  CHECK(first->grown());
  CHECK(first->branches()[dyrep::k1xK]);
  CHECK_FALSE(first->branches()[dyrep::k1x1]);
  CHECK_FALSE(first->branches()[dyrep::k1x1Avg]);
}

TEST_CASE("dyrep: a quick run grows every interval, logs the growths to run.h5, and fuses to the branched function") {
  test::TempDir dir("dyrep_run");
  auto result = train(dyrep_config(4), dir / "run");
  REQUIRE(result.status == RunStatus::Completed);
  auto run = read_run_file((dir / "run" / "run.h5").string(), kRunLayers);
  std::vector<int64_t> grow_epochs;
  for (const auto& layer : run.layers)
    for (const auto& c : analysis::structure_changes(layer)) {
      if (c.event == analysis::StructureChange::kGrow) grow_epochs.push_back(c.epoch);
      CHECK(c.branches[dyrep::kKxk] == 1);
    }
  std::sort(grow_epochs.begin(), grow_epochs.end());
  CHECK(grow_epochs == std::vector<int64_t>{1, 2, 3});  // after epochs 1, 2, 3 of 4
  CHECK(result.summary.at("parameters") > result.summary.at("parameters_fused"));
  // sgs report counts them.
  auto report = test::run_sgs("report " + (dir / "run").string(), dir.path());
  CHECK(report.exit_code == 0);
  CHECK(report.out.find("| growths | cuts |") != std::string::npos);
  CHECK(report.out.find(" | 3 | ") != std::string::npos);
  // The grown graph comes back from the checkpoint; the fused plain model computes its function.
  auto loaded = load_run_model((dir / "run").string());
  int64_t grown = 0;
  for (const auto& b : loaded.made)
    if (auto g = std::dynamic_pointer_cast<GrowableConv>(b)) grown += g->grown() ? 1 : 0;
  CHECK(grown >= 1);
  auto fused = fuse_model(loaded);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({8, 1, 8, 8});
  CHECK(rel_diff(fused->forward(x), loaded.model->forward(x)) < 1e-5);
}

TEST_CASE("dyrep: a run stopped after a growth and resumed equals an uninterrupted one") {
  test::TempDir dir("dyrep_resume");
  const Json config = dyrep_config(3);
  train(config, dir / "whole");
  // 8 steps per epoch: growths after epochs 1 and 2. Stop inside epoch 2
  // (after the first growth), and at the end of epoch 2 (before the second).
  for (int64_t stop : {11, 16}) {
    INFO("stopped after step " << stop);
    const auto split = dir / ("split" + std::to_string(stop));
    auto first = train(config, split, false, stop);
    CHECK(first.status == RunStatus::Interrupted);
    auto second = train(config, split, true);
    CHECK(second.status == RunStatus::Completed);
    for (const char* m : {"train_loss", "test_loss", "test_acc"}) {
      INFO(m);
      CHECK(metric(dir / "whole", m) == metric(split, m));
    }
    CHECK((test::structure_changes(split) == test::structure_changes(dir / "whole")));
  }
}
