#include <doctest/doctest.h>

#include "support/support.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/run_log.h>
#include "app/suite/internal.h"
#include "app/suite/suite.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace sgs;
using namespace sgs::test;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names(const std::vector<SuiteRun>& runs) {
  std::vector<std::string> out;
  for (const auto& r : runs) out.push_back(r.name);
  return out;
}

// The message of the ConfigError that loading `suite` throws ("" if none).
std::string load_error(const fs::path& file, const Json& suite) {
  write_json(file, suite);
  try {
    Suite::load(file.string());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// A run.h5 as a finished run leaves it, with the given final_val_acc.
void fake_run(const fs::path& dir, double val_acc, RunStatus status = RunStatus::Completed) {
  fs::create_directories(dir);
  auto log = RunLog::create((dir / "run.h5").string(), tiny_config(), "cpu", 1);
  log->set_summary({{"final_val_acc", val_acc}, {"best_val_acc", val_acc}});
  log->set_status(status);
}

std::string status_of(const fs::path& run_dir) { return read_run_state(run_dir).text(); }

// `sgs ARGS...` in its own process group (so that the group can be killed).
int spawn_group(const std::vector<std::string>& args) {
  SpawnOptions options;
  options.new_group = true;
  return spawn_sgs(args, options);
}

// Polls `done` every 10 ms for up to `seconds`.
template <class F>
bool wait_for(F done, double seconds = 60) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// baseline (no search) and mi (searched over k), seeds 0 and 1 in the search,
// 0..2 in the final runs.
Json search_suite() {
  return Json{{"base", tiny_config(1)},
              {"axes", {{"seed", {0, 1}}}},
              {"variants",
               {{{"name", "baseline"}, {"set", {{"strategy", "none"}}}},
                {{"name", "mi"}, {"set", {{"strategy", "mutual_information"}}}, {"axes", {{"strategy.k", {3, 5, 7}}}}}}},
              {"search",
               {{"over", {"strategy.k"}},
                {"metric", "val_acc"},
                {"set", {{"dataset.val_fraction", 0.25}}},
                {"final", {{"set", {{"dataset.val_fraction", 0.0}}}, {"axes", {{"seed", {0, 1, 2}}}}}}}}};
}

}  // namespace

TEST_CASE("suite: axes are crossed with every variant, variant axes with the suite's, runs named by their values") {
  TempDir tmp("suite_expand");
  write_json(tmp / "base.json", tiny_config(2));
  Json suite{{"description", "expansion"},
             {"base", "base.json"},
             {"set", {{"epochs", 1}, {"optimizer.lr", 0.02}}},
             {"axes", {{"seed", {0, 1}}}},
             {"variants",
              {{{"name", "baseline"}, {"set", {{"strategy", "none"}}}},
               {{"name", "mi"},
                {"set", {{"strategy", "mutual_information"}, {"strategy.every", 2}}},
                {"axes", {{"strategy.k", {3, 5}}}}}}}};
  write_json(tmp / "suite.json", suite);
  Suite s = Suite::load((tmp / "suite.json").string());
  CHECK(s.stages() == 1);
  CHECK(s.runs(2).empty());
  CHECK(names(s.runs(1)) == std::vector<std::string>{"baseline/seed=0", "baseline/seed=1", "mi/k=3,seed=0",
                                                     "mi/k=3,seed=1", "mi/k=5,seed=0", "mi/k=5,seed=1"});
  const SuiteRun& r = s.runs(1)[5];
  CHECK(r.variant == "mi");
  CHECK(r.config["seed"] == 1);
  CHECK(r.config["epochs"] == 1);                       // the suite's set
  CHECK(r.config["optimizer"]["lr"] == doctest::Approx(0.02));
  CHECK(r.config["optimizer"]["momentum"] == doctest::Approx(0.9));  // from the base file
  CHECK(r.config["strategy"]["name"] == "mutual_information");       // the variant's slot replacement
  CHECK(r.config["strategy"]["every"] == 2);
  CHECK(r.config["strategy"]["k"] == 5);                 // the axis value
  CHECK(s.runs(1)[0].config["strategy"]["name"] == "none");
  CHECK(s.runs(1)[0].config["seed"] == 0);

  SUBCASE("a variant's axis replaces the suite's axis of the same key") {
    suite["variants"][0]["axes"] = {{"seed", {7}}};
    write_json(tmp / "suite.json", suite);
    Suite t = Suite::load((tmp / "suite.json").string());
    CHECK(names(t.runs(1))[0] == "baseline/seed=7");
    CHECK(t.runs(1).size() == 5);
  }
  SUBCASE("full keys where the last components clash, the slot's name for <slot>.name, no variants") {
    // Raw text: the order of the axes is the file's.
    std::ofstream(tmp / "plain.json")
        << R"({"base": "base.json", "axes": {"optimizer.weight_decay": [0.0, 0.001], "model.name": ["vgg11", "vgg13"]}})";
    Suite t = Suite::load((tmp / "plain.json").string());
    CHECK(names(t.runs(1)) == std::vector<std::string>{"weight_decay=0.0,model=vgg11", "weight_decay=0.0,model=vgg13",
                                                       "weight_decay=0.001,model=vgg11", "weight_decay=0.001,model=vgg13"});
    CHECK(t.runs(1)[3].config["model"]["name"] == "vgg13");
    CHECK(t.runs(1)[3].config["model"]["width"] == doctest::Approx(0.125));
    std::ofstream(tmp / "clash.json") << R"({"base": "base.json", "axes": {"dataset.seed": [3], "seed": [1]}})";
    CHECK(names(Suite::load((tmp / "clash.json").string()).runs(1))[0] == "dataset.seed=3,seed=1");
    std::ofstream(tmp / "one.json") << R"({"base": "base.json"})";
    CHECK(names(Suite::load((tmp / "one.json").string()).runs(1)) == std::vector<std::string>{"run"});
    std::ofstream(tmp / "str.json") << R"({"base": "base.json", "axes": {"description": ["a b/c", "x"]}})";
    CHECK(names(Suite::load((tmp / "str.json").string()).runs(1))[0] == "description=a_b_c");
  }
  SUBCASE("extra overrides (--threads) are applied last") {
    Suite t = Suite::load((tmp / "suite.json").string(), {{"threads", 2}});
    for (const auto& run : t.runs(1)) CHECK(run.config["threads"] == 2);
  }
}

TEST_CASE("suite: a search has two stages, variants without the searched axes go straight to final") {
  TempDir tmp("suite_stages");
  write_json(tmp / "s.json", search_suite());
  Suite s = Suite::load((tmp / "s.json").string());
  CHECK(s.stages() == 2);
  CHECK(names(s.runs(1)) == std::vector<std::string>{"final/baseline/seed=0", "final/baseline/seed=1",
                                                     "final/baseline/seed=2", "search/mi/k=3,seed=0",
                                                     "search/mi/k=3,seed=1", "search/mi/k=5,seed=0",
                                                     "search/mi/k=5,seed=1", "search/mi/k=7,seed=0",
                                                     "search/mi/k=7,seed=1"});
  CHECK(names(s.runs(2)) == std::vector<std::string>{"final/mi/seed=0", "final/mi/seed=1", "final/mi/seed=2"});
  CHECK(s.runs(1)[0].config["dataset"]["val_fraction"] == 0.0);   // final.set
  CHECK(s.runs(1)[3].config["dataset"]["val_fraction"] == 0.25);  // search.set
  CHECK(s.runs(1)[8].config["strategy"]["k"] == 7);
  CHECK(s.runs(2)[0].config.is_null());  // planned after the search
  CHECK(s.searched_variants() == std::vector<std::string>{"mi"});
}

TEST_CASE("suite: the search picks the best mean over the other axes, ties to the first in axis order") {
  TempDir tmp("suite_select");
  write_json(tmp / "s.json", search_suite());
  Suite s = Suite::load((tmp / "s.json").string());
  const fs::path out = tmp / "out";
  // k=3: 0.5, 0.7 (mean 0.6); k=5: 0.8, 0.6 (0.7); k=7: 0.9, 0.5 (0.7, a tie: k=5 comes first).
  const std::map<std::string, double> acc{{"k=3,seed=0", 0.5}, {"k=3,seed=1", 0.7}, {"k=5,seed=0", 0.8},
                                          {"k=5,seed=1", 0.6}, {"k=7,seed=0", 0.9}};
  for (const auto& [name, v] : acc) fake_run(out / "search" / "mi" / name, v);
  Selection incomplete = s.select("mi", out);
  CHECK_FALSE(incomplete.ready());
  CHECK(incomplete.incomplete == std::vector<std::string>{"search/mi/k=7,seed=1"});
  CHECK(incomplete.error.find("1 of its search runs are not completed") != std::string::npos);
  CHECK_THROWS_WITH_AS(s.plan_final(s.runs(2)[0], incomplete),
                       doctest::Contains("final/mi/seed=0: cannot be planned"), std::runtime_error);
  fake_run(out / "search" / "mi" / "k=7,seed=1", 0.5, RunStatus::Failed);
  CHECK_FALSE(s.select("mi", out).ready());  // a failed run is not completed

  fake_run(out / "search" / "mi" / "k=7,seed=1", 0.5);
  Selection sel = s.select("mi", out);
  REQUIRE(sel.ready());
  REQUIRE(sel.candidates.size() == 3);
  CHECK(sel.candidates[0].mean == doctest::Approx(0.6));
  CHECK(sel.candidates[1].mean == doctest::Approx(0.7));
  CHECK(sel.candidates[2].mean == doctest::Approx(0.7));
  CHECK(sel.candidates[2].runs == 2);
  CHECK(sel.chosen == 1);
  CHECK(sel.candidates[1].values == Assignments{{"strategy.k", 5}});
  Json j = sel.to_json("val_acc");
  CHECK(j["chosen"] == Json{{"strategy.k", 5}});
  CHECK(j["over"] == Json{"strategy.k"});

  // The final stage: the chosen k, the final overrides, the final seeds.
  for (int seed = 0; seed < 3; ++seed) {
    SuiteRun f = s.plan_final(s.runs(2)[static_cast<size_t>(seed)], sel);
    CHECK(f.name == "final/mi/seed=" + std::to_string(seed));
    CHECK(f.config["strategy"]["k"] == 5);
    CHECK(f.config["strategy"]["name"] == "mutual_information");
    CHECK(f.config["seed"] == seed);
    CHECK(f.config["dataset"]["val_fraction"] == 0.0);
  }

  SUBCASE("a clear winner; best_val_acc") {
    fake_run(out / "search" / "mi" / "k=7,seed=1", 0.95);
    CHECK(s.select("mi", out).chosen == 2);
    Json other = search_suite();
    other["search"]["metric"] = "best_val_acc";
    write_json(tmp / "b.json", other);
    CHECK(Suite::load((tmp / "b.json").string()).select("mi", out).chosen == 2);
  }
  SUBCASE("search runs without a validation split cannot be compared") {
    fake_run(out / "search" / "mi" / "k=3,seed=0", std::nan(""));
    Selection bad = s.select("mi", out);
    CHECK_FALSE(bad.ready());
    CHECK(bad.error.find("search/mi/k=3,seed=0: its run.h5 has no final_val_acc") != std::string::npos);
    CHECK(bad.error.find("dataset.val_fraction") != std::string::npos);
  }
  SUBCASE("the CLI: --dry-run shows the choice, --emit-slurm writes stage 2 once stage 1 is complete") {
    // Completed runs with their config.json, as their sgs run writes it: a
    // completed run counts only with the planned config.
    auto planned = [&](const std::string& name) {
      for (const auto& run : s.runs(1))
        if (run.name == name) return run.config;
      for (const auto& run : s.runs(2))
        if (run.name == name) return s.plan_final(run, s.select(run.variant, out)).config;
      FAIL("no run " << name);
      return Json();
    };
    auto done = [&](const std::string& name, double v) {
      fake_run(out / name, v);
      write_json(out / name / "config.json", planned(name));
    };
    for (const auto& run : s.runs(1))
      if (fs::exists(out / run.name / "run.h5")) write_json(out / run.name / "config.json", run.config);
    auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --dry-run", tmp.path());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("search/mi/k=5,seed=1") != std::string::npos);
    CHECK(r.out.find("(chosen: strategy.k=5)") != std::string::npos);
    CHECK(r.out.find("search 'mi': strategy.k=5 chosen") != std::string::npos);
    CHECK(r.out.find("final/baseline/seed=2") != std::string::npos);
    CHECK_FALSE(fs::exists(out / "suite.json"));  // a dry run writes nothing

    const std::string emit = " --out " + out.string() + " --emit-slurm " + (tmp / "job.sh").string();
    r = run_sgs("suite " + (tmp / "s.json").string() + emit + " --jobs 2 --slurm-args '--partition=gpu --time=1:00:00'",
                tmp.path());
    REQUIRE(r.exit_code == 0);
    std::string script = read_text(tmp / "job.sh");
    CHECK(script.find("#SBATCH --array=0-2%2\n") != std::string::npos);  // stage 1: the baseline runs left
    CHECK(script.find("#SBATCH --cpus-per-task=1\n") != std::string::npos);
    CHECK(script.find("#SBATCH --output=" + fs::absolute(out).string() + "/slurm/%A_%a.out\n") != std::string::npos);
    CHECK(script.find("#SBATCH --partition=gpu\n#SBATCH --time=1:00:00\n") != std::string::npos);
    CHECK(script.find(" suite '" + fs::absolute(tmp / "s.json").string() + "' --out '" + fs::absolute(out).string() +
                      "' --stage 1 --index \"$SLURM_ARRAY_TASK_ID\"") != std::string::npos);
    CHECK(fs::exists(out / "suite.json"));
    CHECK(fs::exists(out / "plan.json"));

    done("final/baseline/seed=0", 0.5);
    done("final/baseline/seed=2", 0.5);
    r = run_sgs("suite " + (tmp / "s.json").string() + emit, tmp.path());
    CHECK(read_text(tmp / "job.sh").find("#SBATCH --array=1\n") != std::string::npos);
    done("final/baseline/seed=1", 0.5);
    done("final/mi/seed=1", 0.5);
    r = run_sgs("suite " + (tmp / "s.json").string() + emit, tmp.path());
    REQUIRE(r.exit_code == 0);
    script = read_text(tmp / "job.sh");
    CHECK(script.find("#SBATCH --array=0,2\n") != std::string::npos);  // stage 2, seed 1 already done
    CHECK(script.find("--stage 2 --index") != std::string::npos);
    Json selection = read_json_file((out / "selection.json").string());
    CHECK(selection["mi"]["chosen"] == Json{{"strategy.k", 5}});
    CHECK(selection["mi"]["candidates"].size() == 3);
  }
}

TEST_CASE("suite: invalid suite files are refused with the file and the key, nothing is written") {
  TempDir tmp("suite_invalid");
  const fs::path f = tmp / "bad.json";
  const Json base = tiny_config(1);
  CHECK(load_error(f, Json{{"base", base}, {"axis", {{"seed", {0}}}}}).find(f.string() + ": axis: unknown key; did you mean 'axes'?") == 0);
  CHECK(load_error(f, Json{{"base", base}, {"axes", {{"seed", Json::array()}}}}) == f.string() + ": axes.seed: no values");
  CHECK(load_error(f, Json{{"base", base}, {"axes", {{"seed", {{{"a", 1}}}}}}}) ==
        f.string() + ": axes.seed[0]: expected a string, number or bool");
  CHECK(load_error(f, Json{{"axes", {{"seed", {0}}}}}).find(f.string() + ": base: missing") == 0);
  CHECK(load_error(f, Json{{"base", "nope.json"}}).find(f.string() + ": base: ") == 0);
  CHECK(load_error(f, Json{{"base", base}, {"variants", {{{"name", "a"}, {"set", {{"optimizer.lrr", 0.1}}}}}}}) .find(
            f.string() + ": a: variants[0].set: optimizer.lrr: unknown key for optimizer 'sgd'; did you mean 'lr'?") == 0);
  CHECK(load_error(f, Json{{"base", base}, {"set", {{"epochs", 0}}}}) == f.string() + ": run: set: epochs: must be >= 1, got 0");
  CHECK(load_error(f, Json{{"base", base}, {"variants", {{{"name", "a/b"}}}}}).find(f.string() + ": variants[0].name: 'a/b'") == 0);
  CHECK(load_error(f, Json{{"base", base}, {"variants", {{{"name", "a"}}, {{"name", "a"}}}}}) ==
        f.string() + ": variants[1].name: 'a' is used twice");
  CHECK(load_error(f, Json{{"base", base}, {"variants", {{{"name", "a"}, {"sett", {}}}}}}).find(
            f.string() + ": variants[0].sett: unknown key") == 0);
  CHECK(load_error(f, Json{{"base", base}, {"axes", {{"seed", {0}}}}, {"search", {{"over", {"strategy.k"}}}}}) ==
        f.string() + ": search.over: 'strategy.k' is not an axis of any variant");
  // A search on val_acc without a validation split: refused now, not after training.
  Json no_val = search_suite();
  no_val["search"]["set"] = Json::object();
  CHECK(load_error(f, no_val).find(f.string() + ": search/mi/k=3,seed=0: search.metric 'val_acc' needs a validation split") == 0);
  Json metric = search_suite();
  metric["search"]["metric"] = "loss";
  CHECK(load_error(f, metric).find(f.string() + ": search.metric: expected one of val_acc, best_val_acc") == 0);
  // Every run's config is resolved before anything runs.
  Json k = search_suite();
  k["variants"][1]["axes"]["strategy.k"] = {3, 0};
  CHECK(load_error(f, k).find("strategy.k: must be") != std::string::npos);
  // A mistake in one run only (the suite's key does not exist for 'none').
  Json one{{"base", base},
           {"variants", {{{"name", "plain"}, {"set", {{"strategy", "none"}}}}, {{"name", "mi"}, {"set", {{"strategy", "mutual_information"}}}}}},
           {"axes", {{"strategy.k", {3}}}}};
  CHECK(load_error(f, one).find(f.string() + ": plain/k=3: axes: strategy.k: unknown key for strategy 'none'") == 0);

  // The CLI: exit 2, one line, no output directory.
  write_json(f, Json{{"base", base}, {"axes", {{"seed", Json::array()}}}});
  auto r = run_sgs("suite " + f.string() + " --out " + (tmp / "out").string(), tmp.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err == "sgs: error: " + f.string() + ": axes.seed: no values\n");
  CHECK_FALSE(fs::exists(tmp / "out"));
}

TEST_CASE("suite: runs every run as its own process, a failing run is reported, the others complete") {
  TempDir tmp("suite_failure");
  Json suite{{"base", tiny_config(1)},
             {"axes", {{"seed", {0, 1}}}},
             {"variants",
              {{{"name", "good"}},
               {{"name", "diverge"}, {"set", {{"optimizer.lr", 1e6}}}, {"axes", {{"seed", {0}}}}}}}};
  write_json(tmp / "s.json", suite);
  const fs::path out = tmp / "out";
  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --jobs 2", tmp.path());
  CHECK(r.exit_code == 1);
  CHECK(status_of(out / "good" / "seed=0") == "completed");
  CHECK(status_of(out / "good" / "seed=1") == "completed");
  CHECK(status_of(out / "diverge" / "seed=0") == "diverged");
  CHECK(r.out.find("3 runs, 2 completed, 1 failed") != std::string::npos);
  CHECK(r.out.find("failed   diverge/seed=0: diverged (exit 3): loss is NaN") != std::string::npos);
  CHECK(r.err.find("completed good/seed=1") != std::string::npos);
  for (const char* f : {"config.json", "run.h5", "checkpoint.pt", "log.txt", "suite_config.json"})
    CHECK(fs::exists(out / "good" / "seed=0" / f));
  CHECK(read_text(out / "good" / "seed=0" / "log.txt").find("epoch 1/1") != std::string::npos);
  CHECK(read_json_file((out / "suite.json").string())["base"]["epochs"] == 1);
  CHECK(read_json_file((out / "plan.json").string())["runs"].size() == 3);

  // Again: the completed runs are skipped, the failed ones tried afresh.
  const std::string good_id = read_run_state(out / "good" / "seed=0").run_id;
  const std::string diverged_id = read_run_state(out / "diverge" / "seed=0").run_id;
  REQUIRE(good_id.size() == 32);
  REQUIRE(diverged_id.size() == 32);
  const auto mtime = fs::last_write_time(out / "good" / "seed=0" / "run.h5");
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --jobs 2", tmp.path());
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("3 runs, 2 completed (2 before this command), 1 failed") != std::string::npos);
  CHECK(read_run_state(out / "good" / "seed=0").run_id == good_id);
  CHECK(fs::last_write_time(out / "good" / "seed=0" / "run.h5") == mtime);
  CHECK(read_run_state(out / "diverge" / "seed=0").run_id != diverged_id);  // started afresh: a new run

  // A changed suite does not silently reuse or overwrite runs of the old one.
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --threads 2", tmp.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("good/seed=0/config.json: the run there has another config than the suite plans (first difference: threads)") !=
        std::string::npos);
}

TEST_CASE("suite: a suite killed mid-way (SIGKILL to its process group) resumes, completed runs are not redone") {
  TempDir tmp("suite_kill");
  Json base = tiny_config(6);  // a run lasts a few seconds: the kill lands while seed=1 runs
  write_json(tmp / "s.json", Json{{"base", base}, {"axes", {{"seed", {0, 1, 2}}}}});
  const fs::path out = tmp / "out";
  int pid = spawn_group({"suite", (tmp / "s.json").string(), "--out", out.string(), "--jobs", "1"});
  REQUIRE(wait_for([&] { return status_of(out / "seed=0") == "completed"; }));
  REQUIRE(wait_for([&] { return fs::exists(out / "seed=1" / "log.txt"); }));
  kill(-pid, SIGKILL);
  CHECK(wait_child(pid) == 128 + SIGKILL);
  CHECK(status_of(out / "seed=2").empty());
  const std::string run_id = read_run_state(out / "seed=0").run_id;
  REQUIRE(run_id.size() == 32);
  const auto mtime = fs::last_write_time(out / "seed=0" / "run.h5");

  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string(), tmp.path());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("3 runs, 3 completed (1 before this command)") != std::string::npos);
  for (const char* s : {"seed=0", "seed=1", "seed=2"}) CHECK(status_of(out / s) == "completed");
  CHECK(read_run_state(out / "seed=0").run_id == run_id);
  CHECK(fs::last_write_time(out / "seed=0" / "run.h5") == mtime);
  CHECK(read_doubles((out / "seed=1" / "run.h5").string(), "/metrics/epoch").size() == 6);
}

TEST_CASE("suite: SIGTERM reaches the runs, which write a checkpoint, the next command resumes them") {
  TempDir tmp("suite_term");
  // Long enough (seconds) that neither run can finish between the check that
  // both are running and the signal.
  Json base = tiny_config(20);
  base["dataset"]["train_size"] = 512;
  write_json(tmp / "s.json", Json{{"base", base}, {"axes", {{"seed", {0, 1}}}}});
  const fs::path out = tmp / "out";
  int pid = spawn_sgs({"suite", (tmp / "s.json").string(), "--out", out.string(), "--jobs", "2"});
  REQUIRE(wait_for([&] { return status_of(out / "seed=0") == "running" && status_of(out / "seed=1") == "running"; }));
  kill(pid, SIGTERM);
  CHECK(wait_child(pid) == 128 + SIGTERM);
  CHECK(status_of(out / "seed=0") == "interrupted");
  CHECK(status_of(out / "seed=1") == "interrupted");
  CHECK(fs::exists(out / "seed=0" / "checkpoint.pt"));

  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --jobs 2 --dry-run", tmp.path());
  CHECK(r.out.find("seed=0  resume (interrupted)") != std::string::npos);
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --jobs 2", tmp.path());
  CHECK(r.exit_code == 0);
  for (const char* s : {"seed=0", "seed=1"}) {
    CHECK(status_of(out / s) == "completed");
    std::string log = read_text(out / s / "log.txt");
    CHECK(log.find("== sgs suite") != std::string::npos);
    CHECK(log.find("resume seed=") != std::string::npos);
    CHECK(log.find("resuming ") != std::string::npos);
  }
}

TEST_CASE("suite: --index runs one run of the stage (a Slurm array task)") {
  TempDir tmp("suite_index");
  write_json(tmp / "s.json", Json{{"base", tiny_config(1)}, {"axes", {{"seed", {0, 1}}}}});
  const fs::path out = tmp / "out";
  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --index 1", tmp.path());
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("seed=1: completed") != std::string::npos);
  CHECK(status_of(out / "seed=1") == "completed");
  CHECK_FALSE(fs::exists(out / "seed=0"));
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --index 1", tmp.path());
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("seed=1: already completed") != std::string::npos);
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --index 2", tmp.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--index 2: stage 1 has 2 runs (0-1)") != std::string::npos);
}

namespace {

// Every file below `dir` whose name holds ".tmp" (none once every writer has stopped).
std::vector<std::string> temporary_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path().string());
  return out;
}

bool one_line(const std::string& err) { return std::count(err.begin(), err.end(), '\n') == 1; }

}  // namespace

TEST_CASE("suite: a folder holds one suite's runs, another suite is refused, the same suite twice at once runs each run once") {
  TempDir tmp("suite_shared");
  const fs::path a = tmp / "a.json", b = tmp / "b.json", out = tmp / "out";
  write_json(a, Json{{"base", tiny_config(1)}, {"axes", {{"seed", {0, 1, 2, 3}}}}});
  Json other{{"base", tiny_config(1)}, {"set", {{"optimizer.lr", 0.01}}}, {"axes", {{"seed", {0, 1, 2, 3}}}}};
  write_json(b, other);

  // Started together on one folder: each run is run once, by one of them,
  // and neither writes into the other's temporary files.
  const fs::path la = tmp / "a1.log", lb = tmp / "a2.log";
  SpawnOptions oa, ob;
  oa.err = la;
  ob.err = lb;
  int pa = spawn_sgs({"suite", a.string(), "--out", out.string()}, oa);
  int pb = spawn_sgs({"suite", a.string(), "--out", out.string()}, ob);
  CHECK(wait_child(pa) == 0);
  CHECK(wait_child(pb) == 0);
  for (int seed = 0; seed < 4; ++seed) {
    const fs::path run = out / ("seed=" + std::to_string(seed));
    CHECK(status_of(run) == "completed");
    const std::string log = read_text(run / "log.txt");
    size_t starts = 0;
    for (size_t at = log.find("== sgs suite"); at != std::string::npos; at = log.find("== sgs suite", at + 1)) ++starts;
    CHECK(starts == 1);
  }
  CHECK(temporary_files(out).empty());

  // Another suite on the folder: refused before anything is written.
  const std::string recorded = read_text(out / "suite.json");
  auto r = run_sgs("suite " + b.string() + " --out " + out.string(), tmp.path());
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.err));
  CHECK(r.err.find(out.string() + ": holds the runs of another suite (" + a.string()) != std::string::npos);
  CHECK(r.err.find("first difference: set") != std::string::npos);
  CHECK(read_text(out / "suite.json") == recorded);
  // --dry-run and --emit-slurm say so too; --emit-slurm refuses.
  r = run_sgs("suite " + b.string() + " --out " + out.string() + " --emit-slurm " + (tmp / "x.sh").string(), tmp.path());
  CHECK(r.exit_code == 2);
  CHECK_FALSE(fs::exists(tmp / "x.sh"));

  // Two different suites started together on a fresh folder: one is refused.
  const fs::path out2 = tmp / "out2";
  pa = spawn_sgs({"suite", a.string(), "--out", out2.string()});
  pb = spawn_sgs({"suite", b.string(), "--out", out2.string()});
  const int ca = wait_child(pa), cb = wait_child(pb);
  CHECK(((ca == 0 && cb == 2) || (ca == 2 && cb == 0)));
  CHECK(temporary_files(out2).empty());
}

TEST_CASE("suite: every run is checked as sgs run checks it (fp16, a fixed matrix, the data) before anything is written") {
  TempDir tmp("suite_check");
  Json base = tiny_config(1);
  const fs::path out = tmp / "out";
  auto refused = [&](const Json& suite, int code, const std::string& expected, const std::string& mode = "") {
    write_json(tmp / "s.json", suite);
    auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + mode, tmp.path());
    INFO(r.err);
    CHECK(r.exit_code == code);
    CHECK(one_line(r.err));
    CHECK(r.err.find(expected) != std::string::npos);
    CHECK_FALSE(fs::exists(out));
  };
  // fp16 needs CUDA: refused where the device is "cpu" (tiny_config's).
  refused(Json{{"base", base}, {"axes", {{"precision", {"fp32", "fp16"}}}}}, 2,
          "s.json: run precision=fp16 (axes: precision=fp16): precision: fp16 needs a CUDA device");
  refused(Json{{"base", base}, {"axes", {{"precision", {"fp16"}}}}}, 2, "fp16 needs a CUDA device",
          " --emit-slurm " + (tmp / "x.sh").string());
  // A zero in a fixed matrix (normalized, G must be positive), set by a variant.
  Json fixed{{"base", base},
             {"set", {{"strategy", "fixed"}}},
             {"axes", {{"seed", {0, 1}}}},
             {"variants",
              {{{"name", "two"}, {"set", {{"strategy.matrix", {{1, 1, 1}, {1, 2, 1}, {1, 1, 1}}}}}},
               {{"name", "zero"}, {"set", {{"strategy.matrix", {{1, 1, 1}, {1, 0, 1}, {1, 1, 1}}}}}}}}};
  refused(fixed, 2, "s.json: run zero/seed=0 (axes: seed=0): strategy.matrix: with normalize, every entry must be > 0");
  // A layer the model does not have: only the model, built, can tell.
  Json layer = fixed;
  layer["variants"][1]["set"]["strategy.matrix"] = {{"*", {{1, 1, 1}, {1, 2, 1}, {1, 1, 1}}}, {"features.99", {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}};
  refused(layer, 2, "strategy.matrix.features.99: the model has no spatial conv 'features.99'");
  // Data that cannot be read: exit 1, before any run starts.
  refused(Json{{"base", base},
               {"variants", {{{"name", "good"}}, {{"name", "nodata"}, {"set", {{"dataset", "mnist"}, {"dataset.root", (tmp / "none").string()}}}}}}},
          1, "s.json: run nodata: mnist: ");
  // Where the device is "auto", a Slurm suite does not judge fp16 by the login node.
  Json slurm{{"base", base}, {"set", {{"device", "auto"}}}, {"axes", {{"precision", {"fp16"}}}}};
  write_json(tmp / "s.json", slurm);
  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --emit-slurm " +
                       (tmp / "x.sh").string(),
                   tmp.path());
  CHECK(r.exit_code == 0);
  CHECK(fs::exists(tmp / "x.sh"));
}

TEST_CASE("suite: a completed run counts as done only when its config.json shows the planned config") {
  TempDir tmp("suite_present");
  write_json(tmp / "s.json", Json{{"base", tiny_config(1)}, {"axes", {{"seed", {0, 1}}}}});
  const fs::path out = tmp / "out";
  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string(), tmp.path());
  REQUIRE(r.exit_code == 0);
  fs::remove(out / "seed=1" / "config.json");
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string(), tmp.path());
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.err));
  CHECK(r.err.find((out / "seed=1" / "config.json").string() + ": missing, so the completed run there cannot be told") !=
        std::string::npos);
  // The Slurm path too: no script that would skip it.
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --emit-slurm " +
                  (tmp / "job.sh").string(),
              tmp.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("config.json: missing") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "job.sh"));
  // What the suite compares when it takes a run's lock (after waiting for
  // another process): the same function.
  Suite suite = Suite::load((tmp / "s.json").string());
  CHECK(suite_detail::config_conflict(suite.runs(1)[0], out).empty());
  CHECK_FALSE(suite_detail::config_conflict(suite.runs(1)[1], out).empty());
  std::ofstream(out / "seed=0" / "config.json") << "{not json";
  CHECK(suite_detail::config_conflict(suite.runs(1)[0], out).find("the completed run there cannot be told") !=
        std::string::npos);
}

TEST_CASE("suite: a variant that follows another (after) gets its run's directory and starts once that run completed: "
          "RepOpt's search -> target chain, refusals, --index and --dry-run") {
  TempDir tmp("suite_after");
  Json chain{{"base", tiny_config(1)},
             {"axes", {{"seed", {0, 1}}}},
             {"variants",
              {{{"name", "repopt_search"}, {"set", {{"strategy", "repopt"}}}},
               {{"name", "repopt"},
                {"set", {{"strategy", "repopt"}, {"strategy.mode", "target"}}},
                {"after", {{"variant", "repopt_search"}, {"key", "strategy.scales_from"}}}}}}};
  const fs::path out = tmp / "out";
  write_json(tmp / "s.json", chain);
  {
    Suite s = Suite::load((tmp / "s.json").string(), {}, out);
    CHECK(s.stages() == 2);
    CHECK(names(s.runs(1)) == std::vector<std::string>{"repopt_search/seed=0", "repopt_search/seed=1"});
    REQUIRE(names(s.runs(2)) == std::vector<std::string>{"repopt/seed=0", "repopt/seed=1"});
    CHECK(s.runs(2)[1].after == "repopt_search/seed=1");
    CHECK(s.runs(2)[1].config["strategy"]["scales_from"] ==
          (fs::absolute(out) / "repopt_search" / "seed=1").lexically_normal().string());
    CHECK(s.resolved_runs().size() == 2);  // checked before running: the runs that follow are not (no scales yet)
  }
  // A run that follows another, alone (a Slurm task of stage 2 before stage 1): refused, nothing written.
  auto r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --stage 2 --index 0", tmp.path());
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("repopt/seed=0: waits for repopt_search/seed=0 to complete") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "repopt" / "seed=0"));
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --dry-run", tmp.path());
  CHECK(r.out.find("stage 2: the runs that follow a run of stage 1, once it has completed") != std::string::npos);
  CHECK(r.out.find("waiting for repopt_search/seed=1") != std::string::npos);
  // The whole chain, two at a time: each target starts once its search completed.
  r = run_sgs("suite " + (tmp / "s.json").string() + " --out " + out.string() + " --jobs 2", tmp.path());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("4 runs, 4 completed") != std::string::npos);
  for (int seed : {0, 1}) {
    const std::string tail = "seed=" + std::to_string(seed);
    const auto search = read_run_file((out / "repopt_search" / tail / "run.h5").string(), kRunLayers);
    const auto target = read_run_file((out / "repopt" / tail / "run.h5").string(), kRunLayers);
    const auto& searched = search.layers.at(0).columns.at("scale_conv");
    const auto& used = target.layers.at(0).columns.at("scale_conv");
    const int64_t n = searched.shape.at(1);
    CHECK(std::vector<double>(searched.values.end() - n, searched.values.end()) == used.values);
    CHECK(read_json_file((out / "plan.json").string())["runs"][2 + seed]["after"] == "repopt_search/" + tail);
  }
  // Refusals, each naming the key.
  auto with_after = [&](const Json& after, const std::string& other = "") {
    Json s = chain;
    s["variants"][1]["after"] = after;
    if (!other.empty()) s["variants"][0]["after"] = {{"variant", other}, {"key", "x"}};
    return load_error(tmp / "bad.json", s);
  };
  CHECK(with_after({{"variant", "repopt_serch"}, {"key", "strategy.scales_from"}})
            .find("variants[1].after.variant: no variant 'repopt_serch'; did you mean 'repopt_search'") != std::string::npos);
  CHECK(with_after({{"variant", "repopt"}, {"key", "strategy.scales_from"}}).find("a variant cannot follow itself") !=
        std::string::npos);
  CHECK(with_after({{"variant", "repopt_search"}}).find("variants[1].after.key: missing") != std::string::npos);
  CHECK(with_after({{"variant", "repopt_search"}, {"key", "strategy.scales_from"}}, "repopt")
            .find("variants[0].after.variant: 'repopt' itself follows 'repopt_search' (one step of \"after\" only)") !=
        std::string::npos);
  Json ambiguous = chain;
  ambiguous["variants"][0]["axes"] = {{"optimizer.lr", {0.05, 0.1}}};
  CHECK(load_error(tmp / "bad.json", ambiguous)
            .find("variants[1].after: 'repopt_search' has 2 runs with seed=0 (a run follows exactly one") != std::string::npos);
  Json both = search_suite();
  both["variants"][0]["after"] = {{"variant", "mi"}, {"key", "strategy.scales_from"}};
  CHECK(load_error(tmp / "bad.json", both).find("a suite with a search cannot also have variants that follow others") !=
        std::string::npos);
}
