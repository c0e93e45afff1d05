// The recipes of docs/extending.md (docs/recipes/, compiled into this test
// binary and registered like in-tree plugins): the guide shows them as they
// are, and they do what the guide says.
#include <doctest/doctest.h>

#include "support/support.h"

#include <sgs/run_file.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace sgs;

namespace {

// The code blocks of `markdown` that follow a "<!-- recipe: PATH -->" line:
// PATH -> the block's text.
std::vector<std::pair<std::string, std::string>> shown_recipes(const std::string& markdown) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string marker = "<!-- recipe: ";
  size_t at = 0;
  while ((at = markdown.find(marker, at)) != std::string::npos) {
    const size_t end = markdown.find(" -->", at);
    REQUIRE(end != std::string::npos);
    const std::string path = markdown.substr(at + marker.size(), end - at - marker.size());
    const size_t open = markdown.find("```cpp\n", end);
    REQUIRE(open != std::string::npos);
    const size_t close = markdown.find("\n```", open + 7);
    REQUIRE(close != std::string::npos);
    out.emplace_back(path, markdown.substr(open + 7, close - open - 7 + 1));
    at = close;
  }
  return out;
}

}  // namespace

TEST_CASE("docs/extending.md shows every recipe of docs/recipes/ as the file the tests compile") {
  const fs::path root(SGS_SOURCE_DIR);
  const auto shown = shown_recipes(test::read_text(root / "docs" / "extending.md"));
  std::set<std::string> seen;
  for (const auto& [path, text] : shown) {
    INFO(path);
    CHECK(seen.insert(path).second);
    REQUIRE(fs::exists(root / path));
    CHECK(text == test::read_text(root / path));
  }
  for (const auto& entry : fs::directory_iterator(root / "docs" / "recipes")) {
    INFO(entry.path().string());
    CHECK(seen.count("docs/recipes/" + entry.path().filename().string()) == 1);
  }
  CHECK(seen.size() == 4);
}

TEST_CASE("recipe centre_decay on recipe tiny_cnn: its own per-layer table is written, and a resume from an "
          "older checkpoint drops the rows of the epochs it redoes") {
  test::TempDir dir("recipe_centre_decay");
  Json config = test::tiny_config(3);
  config["model"] = Json{{"name", "tiny_cnn"}, {"width", 0.25}};
  config["strategy"] = Json{{"name", "centre_decay"}, {"c", 2.0}, {"rate", 0.5}};
  REQUIRE(test::train(config, dir / "whole").status == RunStatus::Completed);
  // 256 / 32 = 8 steps per epoch: interrupted inside epoch 2; the checkpoint
  // kept aside, the run resumed to its end, then resumed again from the
  // checkpoint kept (as if the later ones had been lost).
  REQUIRE(test::train(config, dir / "split", false, 11).status == RunStatus::Interrupted);
  fs::copy_file(dir / "split" / "checkpoint.pt", dir / "older.pt");
  REQUIRE(test::train(config, dir / "split", true).status == RunStatus::Completed);
  REQUIRE(read_run_file((dir / "split" / "run.h5").string()).layers[0].columns.at("centre_epoch").rows() == 3);
  fs::copy_file(dir / "older.pt", dir / "split" / "checkpoint.pt", fs::copy_options::overwrite_existing);
  // One step past the older checkpoint (step 11, inside epoch 2): the rows
  // of epoch 3 are gone, those of epochs 1 and 2 kept.
  REQUIRE(test::train(config, dir / "split", true, 12).status == RunStatus::Interrupted);
  const auto cut = read_run_file((dir / "split" / "run.h5").string());
  CHECK(cut.epochs == std::vector<int64_t>{1});
  for (const auto& layer : cut.layers) {
    CHECK(layer.columns.at("centre_epoch").values == std::vector<double>{0, 1});
    CHECK(layer.columns.at("centre_weight").rows() == 2);
    CHECK(layer.columns.at("scaling").rows() == 2);
  }
  REQUIRE(test::train(config, dir / "split", true).status == RunStatus::Completed);

  const auto whole = read_run_file((dir / "whole" / "run.h5").string());
  const auto split = read_run_file((dir / "split" / "run.h5").string());
  REQUIRE(whole.layers.size() == 2);  // conv1, conv2
  REQUIRE(split.layers.size() == 2);
  for (size_t i = 0; i < whole.layers.size(); ++i) {
    const auto& w = whole.layers[i].columns;
    const auto& s = split.layers[i].columns;
    INFO(whole.layers[i].name);
    REQUIRE(w.count("centre_epoch") == 1);
    CHECK(w.at("centre_epoch").values == std::vector<double>{0, 1, 2});
    // The centre's weight: G = 1 + extra at the centre of 9, divided by its mean.
    for (int e = 0; e < 3; ++e) {
      const double extra = 2.0 * std::pow(0.5, e);
      CHECK(w.at("centre_weight").value(e) == doctest::Approx((1 + extra) * 9 / (9 + extra)).epsilon(1e-12));
    }
    for (const char* name : {"centre_epoch", "centre_weight", "scaling", "scaling_epoch"}) {
      INFO(name);
      CHECK(s.at(name).shape == w.at(name).shape);
      CHECK(s.at(name).values == w.at(name).values);
    }
  }
  CHECK(split.epochs == whole.epochs);
  CHECK(split.metrics.at("test_loss") == whole.metrics.at("test_loss"));
}

TEST_CASE("docs/run_file.md: the h5py example reads a quick mutual-information run's file unchanged") {
  if (std::system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0)
    SGS_SKIP("python3-h5py is not installed (scripts/bootstrap.sh installs it)");
  test::TempDir dir("run_file_h5py");
  Json config = test::tiny_config(2);
  config["strategy"] = Json{{"name", "mutual_information"}, {"every", 1}, {"warmup_epochs", 0}, {"batches", 1}};
  REQUIRE(test::train(config, dir / "x").status == RunStatus::Completed);
  const std::string doc = test::read_text(fs::path(SGS_SOURCE_DIR) / "docs" / "run_file.md");
  const size_t section = doc.find("## Reading it with h5py");
  REQUIRE(section != std::string::npos);
  const size_t open = doc.find("```python\n", section);
  const size_t close = doc.find("\n```", open + 10);
  REQUIRE(close != std::string::npos);
  std::string code = doc.substr(open + 10, close - open - 10 + 1);
  const std::string example_path = "\"runs/x/run.h5\"";
  REQUIRE(code.find(example_path) != std::string::npos);
  code.replace(code.find(example_path), example_path.size(), "\"" + (dir / "x" / "run.h5").string() + "\"");
  std::ofstream(dir / "example.py") << code;
  const std::string cmd = "/usr/bin/python3 " + (dir / "example.py").string() + " > " + (dir / "out").string() +
                          " 2> " + (dir / "err").string();
  const int rc = std::system(cmd.c_str());
  const std::string out = test::read_text(dir / "out");
  INFO(out << test::read_text(dir / "err"));
  CHECK(rc == 0);
  CHECK(out.find("completed mutual_information") != std::string::npos);
  CHECK(out.find("last G after epoch 1") != std::string::npos);
  CHECK(out.find("final_test_acc") != std::string::npos);
}
