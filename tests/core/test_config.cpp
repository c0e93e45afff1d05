#include <doctest/doctest.h>

#include <sgs/config.h>
#include <sgs/errors.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using sgs::Json;

namespace {

Json base() {
  return Json::parse(R"({
    "epochs": 2,
    "dataset": {"name": "synthetic"},
    "model": {"name": "vgg11", "width": 0.25},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}
  })");
}

std::string config_error_of(const Json& raw) {
  try {
    sgs::resolve_config(raw, "exp.json");
  } catch (const sgs::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config: defaults of the run and of every slot are filled in") {
  Json c = sgs::resolve_config(base(), "exp.json");
  CHECK(c["seed"] == 0);
  CHECK(c["batch_size"] == 128);
  CHECK(c["schedule"]["name"] == "cosine");
  CHECK(c["schedule"]["min_lr"] == 0.0);
  CHECK(c["strategy"]["name"] == "none");
  CHECK(c["optimizer"]["weight_decay"].get<double>() == doctest::Approx(5e-4));
  CHECK(c["model"]["width"] == 0.25);
  // Resolving the resolved config changes nothing.
  CHECK(sgs::resolve_config(c, "x") == c);
}

TEST_CASE("config: a slot may be given as a bare plugin name") {
  Json raw = base();
  raw["schedule"] = "constant";
  CHECK(sgs::resolve_config(raw, "exp.json")["schedule"] == Json{{"name", "constant"}});
}

TEST_CASE("config: every kind of mistake is one line naming the JSON path") {
  Json raw = base();
  raw["optimizer"]["momentun"] = 0.9;
  CHECK(config_error_of(raw).rfind("exp.json: optimizer.momentun: unknown key; did you mean 'momentum'?", 0) == 0);

  raw = base();
  raw["optimizer"]["momentum"] = "high";
  CHECK(config_error_of(raw) == "exp.json: optimizer.momentum: expected a number, got a string \"high\"");

  raw = base();
  raw["optimizer"]["lr"] = -0.1;
  CHECK(config_error_of(raw) == "exp.json: optimizer.lr: must be > 0, got -0.1");

  raw = base();
  raw["optimizer"]["name"] = "sdg";
  CHECK(config_error_of(raw).rfind("exp.json: optimizer.name: unknown optimizer 'sdg'; did you mean 'sgd'?", 0) == 0);

  raw = base();
  raw.erase("model");
  CHECK(config_error_of(raw).rfind("exp.json: model.name: missing required key", 0) == 0);

  raw = base();
  raw["epoch"] = 3;
  CHECK(config_error_of(raw).rfind("exp.json: epoch: unknown key; did you mean 'epochs'?", 0) == 0);

  raw = base();
  raw["epochs"] = 0;
  CHECK(config_error_of(raw) == "exp.json: epochs: must be >= 1, got 0");

  raw = base();
  raw["device"] = "gpu";
  CHECK(config_error_of(raw).rfind("exp.json: device: expected one of {auto, cpu, cuda}, got 'gpu'", 0) == 0);
  for (const auto& msg : {config_error_of(raw)}) CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("config: --set overrides are typed by the schema") {
  Json raw = base();
  sgs::apply_override(raw, "optimizer.lr=0.2");
  sgs::apply_override(raw, "optimizer.nesterov=true");
  sgs::apply_override(raw, "epochs=5");
  sgs::apply_override(raw, "schedule.name=step");
  sgs::apply_override(raw, "schedule.milestones=[2,4]");
  Json c = sgs::resolve_config(raw, "exp.json");
  CHECK(c["optimizer"]["lr"] == 0.2);
  CHECK(c["optimizer"]["nesterov"] == true);
  CHECK(c["epochs"] == 5);
  CHECK(c["schedule"]["milestones"] == Json::array({2, 4}));
  CHECK_THROWS_WITH_AS(sgs::apply_override(raw, "optimizer.lr=fast"), "optimizer.lr: expected float > 0, got 'fast'",
                       sgs::ConfigError);
  CHECK_THROWS_WITH_AS(sgs::apply_override(raw, "optimizer.lr=-1"), "optimizer.lr: must be > 0, got -1",
                       sgs::ConfigError);
  CHECK_THROWS_AS(sgs::apply_override(raw, "optimizer.lrr=1"), sgs::ConfigError);
  CHECK_THROWS_AS(sgs::apply_override(raw, "epochs"), sgs::ConfigError);
  // Replacing a slot's plugin drops the old plugin's keys.
  sgs::apply_override(raw, "optimizer=adam");
  CHECK(sgs::resolve_config(raw, "x")["optimizer"]["lr"] == 1e-3);
}

TEST_CASE("config: the CLI refuses a bad config with exit 2 and writes nothing") {
  auto dir = std::filesystem::temp_directory_path() / "sgs_test_config_cli";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Json raw = base();
  raw["optimizer"]["momentun"] = 0.9;   // misspelt key
  raw["optimizer"]["lr"] = -0.1;        // negative learning rate
  raw["model"]["width"] = "wide";       // wrong type
  std::ofstream(dir / "bad.json") << raw.dump();
  for (const std::string verb : {"config", "run"}) {
    std::string cmd = std::string(SGS_BINARY) + " " + verb + " " + (dir / "bad.json").string() + " --out " +
                      (dir / "out").string() + " > " + (dir / "stdout").string() + " 2> " + (dir / "stderr").string();
    if (verb == "config") cmd = std::string(SGS_BINARY) + " config " + (dir / "bad.json").string() + " > " +
                                (dir / "stdout").string() + " 2> " + (dir / "stderr").string();
    int rc = std::system(cmd.c_str());
    CHECK(WEXITSTATUS(rc) == 2);
    std::ifstream err(dir / "stderr");
    std::string line, all;
    int lines = 0;
    while (std::getline(err, line)) {
      all += line;
      ++lines;
    }
    CHECK(lines == 1);
    INFO(all);
    // The first mistake in document order is reported, with its path.
    CHECK(all.find("bad.json: model.width: expected a number, got a string \"wide\"") != std::string::npos);
    CHECK(!std::filesystem::exists(dir / "out"));
  }
  // Each of the three mistakes alone is named too.
  raw = base();
  raw["optimizer"]["momentun"] = 0.9;
  std::ofstream(dir / "one.json") << raw.dump();
  int rc = std::system((std::string(SGS_BINARY) + " config " + (dir / "one.json").string() + " --set optimizer.lr=-1 2> " +
                        (dir / "stderr").string()).c_str());
  CHECK(WEXITSTATUS(rc) == 2);
  std::ifstream err(dir / "stderr");
  std::string msg;
  std::getline(err, msg);
  CHECK(msg.find("optimizer.lr: must be > 0, got -1") != std::string::npos);
  std::filesystem::remove_all(dir);
}

namespace {

// `sgs ARGS` -> (exit code, stderr); writes nothing else.
std::pair<int, std::string> sgs_cli(const std::string& args, const std::filesystem::path& dir) {
  const auto err = dir / "stderr";
  int rc = std::system((std::string(SGS_BINARY) + " " + args + " > /dev/null 2> " + err.string()).c_str());
  std::ifstream in(err);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WEXITSTATUS(rc), text};
}

}  // namespace

TEST_CASE("config: numbers beyond their type, overflowing JSON, duplicate keys and cross-key rules are refused "
          "before anything is written, naming file and path") {
  auto dir = std::filesystem::temp_directory_path() / "sgs_test_config_gaps";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.json").string(), out = (dir / "out").string();
  Json raw = base();
  raw["threads"] = 1;
  raw["dataset"] = {{"name", "synthetic"}, {"size", 8}, {"train_size", 64}, {"test_size", 16}, {"channels", 1}};
  raw["model"]["width"] = 0.125;
  std::ofstream(good) << raw.dump();
  auto refused = [&](const std::string& args, const std::string& expected) {
    auto [rc, err] = sgs_cli(args + " --out " + out, dir);
    INFO(args);
    INFO(err);
    CHECK(rc == 2);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.find(expected) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(out));
  };
  refused("run " + good + " --set optimizer.lr=1e39", good + ": optimizer.lr: 1e+39 is out of range (beyond float32's 3.4e38)");
  refused("run " + good + " --set epochs=1e16", good + ": epochs: 1e+16 is written as a floating-point number beyond 2^53");
  refused("run " + good + " --set seed=18446744073709551615", good + ": seed: 18446744073709551615 is beyond a 64-bit integer's range");
  {
    const std::string f = (dir / "overflow.json").string();
    std::ofstream(f) << R"({"epochs": 1e999, "dataset": "synthetic", "model": "vgg11"})";
    refused("run " + f, f + ": invalid JSON: number overflow");
  }
  {
    const std::string f = (dir / "twice.json").string();
    std::ofstream(f) << R"({"dataset": "synthetic", "model": "vgg11", "optimizer": {"name": "sgd", "lr": 0.1, "lr": 0.2}})";
    refused("run " + f, f + ": optimizer.lr: duplicate key (given twice in one object)");
  }
  {
    Json fixed = raw;
    fixed["strategy"] = {{"name", "fixed"}, {"matrix", {{"*", {{1, 1, 1}, {1, 2, 1}, {1, 1, 1}}}, {"features.99", {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}}}};
    const std::string f = (dir / "fixed.json").string();
    std::ofstream(f) << fixed.dump();
    refused("run " + f, f + ": strategy.matrix.features.99: the model has no spatial conv 'features.99'");
  }
  refused("run " + good + " --set evaluate=val", good + ": evaluate: 'val' needs a validation split");
  // Fixed bounds, whatever machine validates: beyond them a run would abort or hang.
  refused("run " + good + " --set threads=100000", good + ": threads: must be <= 1024, got 100000");
  refused("run " + good + " --set data_workers=100000", good + ": data_workers: must be <= 256, got 100000");
  const std::string suite = (dir / "suite.json").string();
  std::ofstream(suite) << R"({"base": "good.json", "axes": {"seed": [0, 1]}})";
  refused("suite " + suite + " --threads 100000", "threads: must be <= 1024, got 100000");
  CHECK(sgs::load_config(good, {"threads=1024", "data_workers=256"})["threads"] == 1024);
  {  // An empty --out is refused, not read as "the default directory".
    for (const std::string& file : {good, suite}) {
      auto [rc, err] = sgs_cli((file == good ? "run " : "suite ") + file + " --out ''", dir);
      INFO(file << ": " << err);
      CHECK(rc == 2);
      CHECK(err.find("--out: expected a directory, got an empty string") != std::string::npos);
      CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    }
  }
  // Integers are kept exactly, to int64's limit.
  auto resolved = sgs::load_config(good, {"seed=9223372036854775807"});
  CHECK(resolved["seed"].get<int64_t>() == INT64_MAX);
  CHECK(sgs::load_config(good, {"seed=9007199254740993"})["seed"].get<int64_t>() == 9007199254740993LL);
  std::filesystem::remove_all(dir);
}
