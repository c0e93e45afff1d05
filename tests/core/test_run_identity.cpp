// Run identity: every checkpoint names its run (run.h5's run_id and a digest
// of config.json); a checkpoint copied from another run is refused by
// --resume, fuse, export and quantize in one line naming both runs, and
// --resume refuses a checkpoint without its config.json.
#include <doctest/doctest.h>

#include "support/support.h"

#include <sgs/assembly.h>
#include <sgs/checkpoint_file.h>
#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/run_file.h>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;
using namespace sgs;

namespace {

size_t err_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("run identity: a checkpoint copied from another run is refused by --resume, fuse, export and quantize") {
  test::TempDir dir("run_identity");
  Json config = test::tiny_config(3);
  test::write_json(dir / "c.json", config);
  REQUIRE(test::train(config, dir / "a").status == RunStatus::Completed);
  REQUIRE(test::train(config, dir / "b").status == RunStatus::Completed);
  const std::string id_a = read_run_file((dir / "a" / "run.h5").string(), kRunAttributes).run_id;
  const std::string id_b = read_run_file((dir / "b" / "run.h5").string(), kRunAttributes).run_id;
  REQUIRE(id_a != id_b);
  // Same model, same config: only the run differs.
  fs::copy_file(dir / "a" / "checkpoint.pt", dir / "b" / "checkpoint.pt", fs::copy_options::overwrite_existing);
  const std::string h5_bytes = test::read_text(dir / "b" / "run.h5");
  const std::string ckpt = (dir / "b" / "checkpoint.pt").string();
  for (const std::string& args : {"run " + (dir / "c.json").string() + " --out " + (dir / "b").string() + " --resume",
                                 "fuse " + (dir / "b").string() + " --out " + (dir / "f.pt").string(),
                                 "quantize " + (dir / "b").string(),
                                 "export " + (dir / "b").string() + " --out " + (dir / "m.onnx").string()}) {
    INFO(args);
    const auto r = test::run_sgs(args, dir.path());
    if (r.err.find("this build has no") != std::string::npos) continue;  // export without libonnx-dev
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(ckpt + ": belongs to run " + id_a) != std::string::npos);
    CHECK(r.err.find("not to this directory's run " + id_b) != std::string::npos);
    CHECK(err_lines(r.err) == 1);
  }
  CHECK(test::read_text(dir / "b" / "run.h5") == h5_bytes);
  CHECK_FALSE(fs::exists(dir / "f.pt"));
  CHECK_FALSE(fs::exists(dir / "m.onnx"));

  // A checkpoint of a run with another config (5 epochs resumed as 6): the digest differs.
  Json six = config;
  six["epochs"] = 4;
  REQUIRE(test::train(six, dir / "c", false, 1).status == RunStatus::Interrupted);
  fs::copy_file(dir / "a" / "checkpoint.pt", dir / "c" / "checkpoint.pt", fs::copy_options::overwrite_existing);
  test::write_json(dir / "six.json", six);
  const auto r = test::run_sgs("run " + (dir / "six.json").string() + " --out " + (dir / "c").string() + " --resume",
                               dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("belongs to run " + id_a) != std::string::npos);
  CHECK(test::read_string_attr((dir / "c" / "run.h5").string(), "/", "status") == "interrupted");

  // The run's own checkpoint still resumes, and fuses.
  REQUIRE(test::train(config, dir / "a2", false, 1).status == RunStatus::Interrupted);
  CHECK(test::train(config, dir / "a2", true).status == RunStatus::Completed);
  const auto f = test::run_sgs("fuse " + (dir / "a2").string() + " --out " + (dir / "f.pt").string() + " --no-eval",
                               dir.path());
  CHECK(f.exit_code == 0);
  CHECK(f.err.find("warning") == std::string::npos);
}

TEST_CASE("run identity: --resume refuses a checkpoint without its config.json, and still starts a fresh directory") {
  test::TempDir dir("run_identity_config");
  Json config = test::tiny_config(2);
  test::write_json(dir / "c.json", config);
  REQUIRE(test::train(config, dir / "r", false, 1).status == RunStatus::Interrupted);
  fs::remove(dir / "r" / "config.json");
  const std::string h5_bytes = test::read_text(dir / "r" / "run.h5");
  auto r = test::run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "r").string() + " --resume",
                         dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find((dir / "r" / "config.json").string() + ": missing; --resume cannot tell whose checkpoint") !=
        std::string::npos);
  CHECK(err_lines(r.err) == 1);
  CHECK(test::read_text(dir / "r" / "run.h5") == h5_bytes);
  // Fresh and empty directories: --resume starts the run (scripts/quick.sh and suite retries rely on it).
  fs::create_directories(dir / "empty");
  for (const char* name : {"fresh", "empty"}) {
    r = test::run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / name).string() + " --resume -q",
                      dir.path());
    CHECK(r.exit_code == 0);
  }
}

TEST_CASE("run identity: the digest is of config.json's bytes, and a checkpoint without identity is taken with a warning") {
  CHECK(config_digest("{}\n") == config_digest("{}\n"));
  CHECK(config_digest("{}\n") != config_digest("{} \n"));
  CHECK(config_digest("").size() == 16);
  const RunIdentity here{"aaaa", config_digest("x")};
  CHECK(check_checkpoint_identity(here, here, "c.pt").empty());
  CHECK(check_checkpoint_identity(std::nullopt, here, "c.pt") ==
        "c.pt: written before checkpoints named their run; it is taken as this directory's");
  CHECK_THROWS_AS(check_checkpoint_identity(RunIdentity{"bbbb", here.config_digest}, here, "c.pt"), ConfigError);
  CHECK_THROWS_AS(check_checkpoint_identity(RunIdentity{"aaaa", config_digest("y")}, here, "c.pt"), ConfigError);
  // A directory whose run.h5 is gone: the config alone decides (resuming then fails on the missing run file).
  CHECK(check_checkpoint_identity(RunIdentity{"bbbb", here.config_digest}, RunIdentity{"", here.config_digest}, "c.pt")
            .empty());
}

TEST_CASE("run identity: a checkpoint of another width is refused by its shapes, naming the tensor") {
  // Checkpoints from before run identity carry no digest: their shapes are
  // still checked (LibTorch's load would take a tensor of any shape).
  test::TempDir dir("run_width");
  Json config = test::tiny_config(1);
  REQUIRE(test::train(config, dir / "a").status == RunStatus::Completed);
  Json wider = resolve_config(config, "c.json");
  wider["model"]["width"] = 0.25;
  auto dataset = make_dataset(wider);
  ConvFactory plain;
  auto model = build_model(wider, model_spec(*dataset), plain);
  torch::serialize::InputArchive archive, weights;
  archive.load_from((dir / "a" / "checkpoint.pt").string());
  archive.read("model", weights);
  const std::string file = (dir / "a" / "checkpoint.pt").string();
  try {
    load_model_weights(*model, weights, file);
    FAIL("a checkpoint of another width was loaded");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    CHECK(what.find(file + ": model.") == 0);
    CHECK(what.find(" where the run's config builds [") != std::string::npos);
    CHECK(what.find("(a checkpoint of another model or width than config.json says)") != std::string::npos);
  }
}
