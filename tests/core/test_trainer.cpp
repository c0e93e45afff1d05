#include <doctest/doctest.h>

#include <sgs/version.h>

#include "support/support.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/trainer.h>

#include <csignal>
#include <thread>

using namespace sgs;
using namespace sgs::test;

TEST_CASE("trainer: a short run on synthetic data lowers the loss") {
  TempDir dir("trainer_loss");
  auto result = train(tiny_config(4), dir / "run");
  CHECK(result.status == sgs::RunStatus::Completed);
  auto loss = metric(dir / "run", "train_loss");
  REQUIRE(loss.size() == 4);
  CHECK(loss.back() < 0.7 * loss.front());
  CHECK(metric(dir / "run", "test_acc").back() > 0.5);  // 4 classes: chance is 0.25
}

TEST_CASE("trainer: the same config, seed and threads give the identical loss curve") {
  TempDir dir("trainer_determinism");
  train(tiny_config(2), dir / "a");
  train(tiny_config(2), dir / "b");
  CHECK(metric(dir / "a", "train_loss") == metric(dir / "b", "train_loss"));
  CHECK(metric(dir / "a", "test_loss") == metric(dir / "b", "test_loss"));
  Json other = tiny_config(2);
  other["seed"] = 1;
  train(other, dir / "c");
  CHECK(metric(dir / "a", "train_loss") != metric(dir / "c", "train_loss"));
}

TEST_CASE("trainer: a run stopped mid-epoch and resumed equals an uninterrupted one") {
  TempDir dir("trainer_resume");
  Json config = tiny_config(3);
  config["strategy"] = Json{{"name", "mutual_information"}, {"every", 1}, {"warmup_epochs", 1}, {"batches", 1}};
  train(config, dir / "whole");
  // 256 / 32 = 8 steps per epoch: stop inside epoch 2, after its scaling update.
  auto first = train(config, dir / "split", false, 11);
  CHECK(first.status == sgs::RunStatus::Interrupted);
  CHECK(read_string_attr((dir / "split" / "run.h5").string(), "/", "status") == "interrupted");
  CHECK(metric(dir / "split", "train_loss").size() == 1);
  const std::string run_id = read_string_attr((dir / "split" / "run.h5").string(), "/", "run_id");
  auto second = train(config, dir / "split", true);
  CHECK(read_string_attr((dir / "split" / "run.h5").string(), "/", "run_id") == run_id);  // the same run, resumed
  CHECK(second.status == sgs::RunStatus::Completed);
  for (const char* m : {"train_loss", "train_acc", "test_loss", "test_acc", "lr"}) {
    INFO(m);
    CHECK(metric(dir / "whole", m) == metric(dir / "split", m));
  }
  const std::string layer = "/layers/features.4/";
  for (const char* d : {"scaling", "dependence", "kernel_magnitude"}) {
    INFO(d);
    CHECK(read_doubles((dir / "whole" / "run.h5").string(), layer + d) ==
          read_doubles((dir / "split" / "run.h5").string(), layer + d));
  }
  CHECK(read_doubles((dir / "split" / "run.h5").string(), layer + "scaling_epoch") == std::vector<double>{1, 2});
  // Resuming a finished run changes nothing and reports its summary.
  auto again = train(config, dir / "split", true);
  CHECK(again.status == sgs::RunStatus::Completed);
  CHECK(again.summary.at("final_test_acc") == second.summary.at("final_test_acc"));
  CHECK(metric(dir / "split", "train_loss").size() == 3);
  CHECK(read_string_attr((dir / "split" / "run.h5").string(), "/", "status") == "completed");
}

TEST_CASE("trainer: a killed run resumes from its last checkpoint (CLI, SIGKILL)") {
  TempDir dir("trainer_kill");
  Json config = tiny_config(3);
  config["dataset"]["train_size"] = 2048;  // long enough epochs to kill one mid-way
  write_json(dir / "c.json", config);
  auto whole = run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "whole").string() + " -q", dir.path());
  REQUIRE(whole.exit_code == 0);
  // Start a run, wait for its first epoch's checkpoint, kill it hard.
  int pid = spawn_sgs({"run", (dir / "c.json").string(), "--out", (dir / "killed").string(), "-q"});
  for (int i = 0; i < 1200 && !std::filesystem::exists(dir / "killed" / "checkpoint.pt"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ::kill(pid, SIGKILL);
  CHECK(wait_child(pid) == 128 + SIGKILL);
  REQUIRE(std::filesystem::exists(dir / "killed" / "checkpoint.pt"));
  CHECK(read_string_attr((dir / "killed" / "run.h5").string(), "/", "status") == "running");
  auto resumed = run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "killed").string() + " -q --resume",
                         dir.path());
  REQUIRE(resumed.exit_code == 0);
  for (const char* m : {"train_loss", "test_acc"}) {
    INFO(m);
    CHECK(metric(dir / "whole", m) == metric(dir / "killed", m));
  }
  CHECK(read_string_attr((dir / "killed" / "run.h5").string(), "/", "status") == "completed");
}

TEST_CASE("trainer: run.h5 holds every dataset and attribute of the layout for a plain run") {
  TempDir dir("trainer_layout");
  Json config = tiny_config(2);
  config["dataset"]["val_fraction"] = 0.25;
  train(config, dir / "run");
  const std::string f = (dir / "run" / "run.h5").string();
  CHECK(read_number_attr(f, "/", "layout_version") == 1);
  CHECK(read_string_attr(f, "/", "sgs_version") == version_string());
  CHECK(std::string(version_string()).rfind("0.1.0", 0) == 0);
  CHECK(Json::parse(read_string_attr(f, "/", "config")) == resolve_config(config, "x"));
  CHECK(read_string_attr(f, "/", "status") == "completed");
  CHECK(read_string_attr(f, "/", "error").empty());
  CHECK(read_string_attr(f, "/", "created").size() == 20);
  const std::string run_id = read_string_attr(f, "/", "run_id");
  CHECK(run_id.size() == 32);
  CHECK(run_id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(read_string_attr(f, "/", "finished").size() == 20);
  CHECK(read_string_attr(f, "/", "device") == "cpu");
  CHECK(read_number_attr(f, "/", "threads") == 1);
  for (const char* m : {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
                        "epoch_seconds", "scaling_seconds"}) {
    INFO(m);
    CHECK(read_dims(f, std::string("/metrics/") + m) == std::vector<int64_t>{2});
  }
  CHECK(read_doubles(f, "/metrics/epoch") == std::vector<double>{1, 2});
  for (double a : read_doubles(f, "/metrics/train_acc")) CHECK((a >= 0 && a <= 1));
  // VGG-11 has 8 convs, all 3x3.
  const char* layers[] = {"features.0", "features.4", "features.8", "features.11",
                          "features.15", "features.18", "features.22", "features.25"};
  for (int i = 0; i < 8; ++i) {
    std::string g = std::string("/layers/") + layers[i];
    INFO(g);
    REQUIRE(has_object(f, g));
    CHECK(read_number_attr(f, g, "index") == i);
    CHECK(read_ints_attr(f, g, "kernel") == std::vector<int64_t>{3, 3});
    CHECK(read_ints_attr(f, g, "stride") == std::vector<int64_t>{1, 1});
    CHECK(read_ints_attr(f, g, "padding") == std::vector<int64_t>{1, 1});
    CHECK(read_number_attr(f, g, "in_channels") == (i == 0 ? 1 : std::vector<int>{8, 16, 32, 32, 64, 64, 64}[i - 1]));
    CHECK(read_dims(f, g + "/kernel_magnitude") == std::vector<int64_t>{3, 3, 3});
    auto km = read_doubles(f, g + "/kernel_magnitude");
    double mean = 0;
    for (int k = 0; k < 9; ++k) mean += km[k] / 9;
    CHECK(mean == doctest::Approx(1.0));
    CHECK(!has_object(f, g + "/scaling"));
    CHECK(!has_object(f, g + "/dependence"));
  }
  for (const char* a : {"final_train_acc", "final_val_acc", "final_test_acc", "best_val_acc", "train_seconds",
                        "epochs_completed", "parameters", "parameters_fused"}) {
    INFO(a);
    CHECK(std::isfinite(read_number_attr(f, "/summary", a)));
  }
  CHECK(read_number_attr(f, "/summary", "parameters") == read_number_attr(f, "/summary", "parameters_fused"));
  CHECK(std::filesystem::exists(dir / "run" / "config.json"));
  CHECK(std::filesystem::exists(dir / "run" / "checkpoint.pt"));
}

TEST_CASE("trainer: a diverging run is marked diverged and exits with 3") {
  TempDir dir("trainer_diverge");
  Json config = tiny_config(2);
  config["optimizer"]["lr"] = 1e6;
  write_json(dir / "c.json", config);
  auto r = run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "run").string() + " -q", dir.path());
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("diverged: loss is") != std::string::npos);
  const std::string f = (dir / "run" / "run.h5").string();
  CHECK(read_string_attr(f, "/", "status") == "diverged");
  CHECK(read_string_attr(f, "/", "error").find("loss is") != std::string::npos);
}

TEST_CASE("trainer: SIGTERM finishes the step, writes a checkpoint and marks the run interrupted") {
  TempDir dir("trainer_sigterm");
  Json config = tiny_config(50);
  config["dataset"]["train_size"] = 2048;
  write_json(dir / "c.json", config);
  int pid = spawn_sgs({"run", (dir / "c.json").string(), "--out", (dir / "run").string(), "-q"});
  for (int i = 0; i < 1200 && !std::filesystem::exists(dir / "run" / "run.h5"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGTERM);
  CHECK(wait_child(pid) == 128 + SIGTERM);
  CHECK(read_string_attr((dir / "run" / "run.h5").string(), "/", "status") == "interrupted");
  CHECK(std::filesystem::exists(dir / "run" / "checkpoint.pt"));
}

TEST_CASE("trainer: a config.json that predates keys added since (at their defaults) is the same run's") {
  TempDir dir("trainer_older_config");
  Json config = tiny_config(2);
  CHECK(train(config, dir / "run", false, 3).status == sgs::RunStatus::Interrupted);
  // As a build before precision, memory_format and cudnn_benchmark wrote it
  // (its checkpoints, without a run identity, are taken with a warning:
  // test_run_identity.cpp); --resume compares configs with same_run_config.
  const Json resolved = read_json_file((dir / "run" / "config.json").string());
  Json older = resolved;
  for (const char* key : {"precision", "memory_format", "cudnn_benchmark"}) {
    REQUIRE(older.contains(key));
    older.erase(key);
  }
  CHECK(sgs::same_run_config(older, resolved));
  // A value that differs is another run, and refuses the resume.
  Json bf16 = older;
  bf16["precision"] = "bf16";
  CHECK_FALSE(sgs::same_run_config(bf16, resolved));
  bf16 = config;
  bf16["precision"] = "bf16";
  CHECK_THROWS_WITH_AS(train(bf16, dir / "run", true), doctest::Contains("has a different config"), ConfigError);
}
