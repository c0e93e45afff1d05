// Suites: many runs from one JSON file (a base config, overrides, axes crossed
// with variants, optionally the paper's search-then-retrain rule), each run an
// `sgs run` in its own directory and process. The suite's state is the run
// directories themselves: run.h5's status says what is done, so a suite is
// resumed by running it again, locally or on Slurm.
//
// Suite file (README "Suites"):
//   {"description": "...", "base": "config.json" | {...}, "set": {key: value},
//    "axes": {key: [values]},
//    "variants": [{"name": "mi", "set": {...}, "axes": {...}},
//                 {"name": "t", "set": {...}, "after": {"variant": "mi", "key": "strategy.scales_from"}}, ...],
//    "search": {"over": [keys], "metric": "val_acc" | "best_val_acc",
//               "set": {...}, "final": {"set": {...}, "axes": {...}}}}
// Keys in "set" and "axes" are those of `sgs run --set` (a slot name replaces
// the slot). A run's config is base, then the suite's set, the variant's set,
// the stage's set (search.set or search.final.set), the values chosen by the
// search (final runs), its axis values (in axis order), and the command line's
// extra overrides (--threads).
//
// A variant is searched over those of search.over's keys that are among its
// axes (a variant with none of them is not searched).
// A variant with "after" follows another: each of its runs sets `key` to the
// directory of the other variant's run with the same values of the axes both
// have (RepOpt's target runs take the scales of the search run of their
// seed), and starts once that run has completed.
// Stages: without a search every run is stage 1. With one, stage 1 holds the
// search runs and the final runs of variants that are not searched; stage 2
// holds the searched variants' final runs, whose configs are known only once
// all of the variant's search runs have completed. Runs that follow another
// are stage 2 too (their configs are known from the start).
#pragma once

#include <sgs/run_status.h>
#include <sgs/schema.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sgs {

// Ordered key -> value assignments ("strategy.k" -> 5).
using Assignments = std::vector<std::pair<std::string, Json>>;

struct SuiteRun {
  std::string name;     // its directory below the suite's output directory, "search/mi/k=5,seed=0"
  int stage = 1;        // 1 or 2 (see above)
  std::string phase;    // "search", "final", or "" in a suite without a search
  std::string variant;  // "" when the suite has no variants
  Assignments values;   // the axis values of this run, in axis order
  Assignments chosen;   // final runs of a searched variant: the values the search chose
  Assignments overrides;  // what is applied to the base beyond the suite's common "set", in order
  Json config;          // the resolved config; null for a stage-2 run not planned yet
  std::string after;    // the run (its name) this one follows ("after"), or ""
};

// What a run directory holds, from its run.h5 (read without a lock).
struct RunState {
  bool has_file = false;            // run.h5 exists
  std::optional<RunStatus> status;  // nullopt: no run.h5, or an unreadable one
  std::string error;                // run.h5's error, or why it is unreadable
  std::string run_id;               // run.h5's run_id (a new one for every fresh start)
  bool checkpoint = false;
  bool unreadable() const { return has_file && !status; }
  bool completed() const { return status == RunStatus::Completed; }
  // completed: skip; failed, diverged, unreadable: start afresh; otherwise
  // (none, running, interrupted) resume (from the checkpoint when there is one).
  bool fresh() const { return unreadable() || status == RunStatus::Failed || status == RunStatus::Diverged; }
  // "" (no run.h5), "unreadable", or the status's name.
  std::string text() const { return !has_file ? "" : status ? to_string(*status) : "unreadable"; }
};
RunState read_run_state(const std::filesystem::path& run_dir);

// The search's choice for one variant.
struct Selection {
  struct Candidate {
    Assignments values;  // one value per `over` key
    double mean = 0;     // the metric's mean over the candidate's search runs
    int64_t runs = 0;
  };
  std::string variant;
  std::vector<std::string> over;      // the variant's axes among search.over
  std::vector<Candidate> candidates;  // in axis order
  std::vector<std::string> incomplete;  // search runs not completed (then nothing is chosen)
  std::string error;                  // why nothing could be chosen
  int64_t chosen = -1;                // index into candidates
  bool ready() const { return chosen >= 0; }
  Json to_json(const std::string& metric) const;
};

class Suite {
 public:
  // Reads, validates and expands a suite file, and resolves every run's
  // config (for final runs of searched variants, with every candidate value),
  // so that a mistake is found before anything runs. `extra` is applied last
  // to every run (e.g. {"threads", 2}). Throws ConfigError naming the file
  // and the key: "suite.json: axes.seed: no values". `out_dir`: where the
  // runs go (a run that follows another is given that run's directory in it).
  static Suite load(const std::string& path, const Assignments& extra = {},
                    const std::filesystem::path& out_dir = {});

  const std::string& path() const { return path_; }
  bool has_search() const { return search_.present; }
  int stages() const { return !stage2_.empty() ? 2 : 1; }
  const std::vector<SuiteRun>& runs(int stage) const { return stage == 2 ? stage2_ : stage1_; }
  const Assignments& common() const { return common_; }  // the suite's "set"
  const Assignments& extra() const { return extra_; }    // the command line's (--threads)
  const std::vector<std::string>& search_over() const { return search_.over; }
  const std::string& search_metric() const { return search_.metric; }

  // Every run whose config is known: stage 1's, and stage 2's planned with
  // each value a search can choose (what is checked before anything runs).
  std::vector<SuiteRun> resolved_runs() const {
    std::vector<SuiteRun> out = stage1_;
    out.insert(out.end(), candidates_.begin(), candidates_.end());
    return out;
  }

  // The names of the variants whose finals wait for a search, in order.
  std::vector<std::string> searched_variants() const;
  // The search runs of a searched variant (indices into runs(1)).
  std::vector<size_t> search_runs(const std::string& variant) const;
  // Reads the variant's search runs below `out_dir` and applies the rule:
  // the candidate with the best mean metric, ties to the first in axis order.
  Selection select(const std::string& variant, const std::filesystem::path& out_dir) const;
  // A stage-2 run of runs(2), planned with the selection's choice.
  SuiteRun plan_final(const SuiteRun& run, const Selection& selection) const;
  // Why a run that follows another cannot start yet ("" when it can: the
  // run it follows has completed in `out_dir`, or it follows none).
  static std::string waits_for(const SuiteRun& run, const std::filesystem::path& out_dir);

  // The suite as written to OUT/suite.json: the file with the base inlined.
  nlohmann::ordered_json resolved_json() const;
  // OUT/plan.json: every run with its stage, index, variant, values, overrides.
  Json plan_json() const;

 private:
  struct Axis {
    std::string key;
    std::vector<Json> values;
  };
  struct Variant {
    std::string name, where;  // where: "variants[1]" for messages
    Assignments set;
    std::vector<Axis> axes;         // the variant's axes merged with the suite's
    std::vector<std::string> over;  // its axes among search.over (searched when not empty)
    bool searched = false;
    std::string after_variant, after_key;  // "after": the variant it follows, the key set to its run's directory
  };
  struct Search {
    bool present = false;
    std::vector<std::string> over;
    std::string metric = "val_acc";
    Assignments set, final_set;
    std::vector<Axis> final_axes;
  };

  SuiteRun make_run(const Variant& v, const std::string& phase, int stage, const std::vector<Axis>& axes,
                    const Assignments& values, const Assignments& chosen, bool resolve,
                    const Assignments& follows = {}) const;
  std::vector<Axis> final_axes(const Variant& v) const;
  const Variant& variant(const std::string& name) const;

  std::string path_;
  nlohmann::ordered_json spec_;  // the file as read
  Json base_;
  Assignments common_, extra_;
  std::vector<Variant> variants_;
  bool named_variants_ = false;
  Search search_;
  std::vector<SuiteRun> stage1_, stage2_;
  std::vector<SuiteRun> candidates_;  // stage 2's runs with each candidate value
};

// How `sgs suite` runs a suite.
struct SuiteOptions {
  std::filesystem::path out_dir;
  int64_t jobs = 1;               // runs at once (local); array throttle with Slurm when jobs_given
  bool jobs_given = false;
  int64_t threads = -1;           // -1: as the configs say (else it is an extra override)
  std::string sgs_binary = "/proc/self/exe";  // what runs each run (`sgs run`)
  std::vector<std::string> slurm_args;        // extra #SBATCH options ("--partition=gpu")
  double poll_seconds = 2;        // Slurm: how often squeue and the run files are read
};

// `sgs suite --dry-run`: every run with its status and overrides.
void print_suite_plan(const Suite& suite, const std::filesystem::path& out_dir, std::ostream& out);

// Runs every run not completed, `jobs` at a time, stage 2 of each searched
// variant as soon as its search is complete. Returns the exit status: 0 all
// completed, 1 some failed or could not be planned, 128+N interrupted by N.
int run_suite(const Suite& suite, const SuiteOptions& options);

// Runs run `index` of `stage` (a Slurm array task); stage 0 = the current
// stage (the first with runs not completed). Returns the exit status.
int run_suite_index(const Suite& suite, const SuiteOptions& options, int stage, int64_t index);

// The current stage: the first stage with runs not completed (0 when all are).
int current_stage(const Suite& suite, const std::filesystem::path& out_dir);

// A Slurm job-array script for the runs of `stage` that are not completed and
// can be planned; `indices` receives their indices. Empty when there is none.
std::string slurm_script(const Suite& suite, const SuiteOptions& options, int stage, std::vector<int64_t>& indices);

// Submits the current stage with sbatch, follows it with squeue until it
// ends, then the next stage; reports like run_suite and returns its status.
int run_suite_slurm(const Suite& suite, const SuiteOptions& options);

// Applies the search rule to every searched variant whose search runs have
// all completed, records the choices in OUT/selection.json and prints them to
// `log`; returns every searched variant's selection (ready or not).
std::vector<Selection> record_selections(const Suite& suite, const std::filesystem::path& out_dir, std::ostream& log);

// Refuses (ConfigError, the first conflict and how many more) a run
// directory of stage 1 that holds another config than the suite plans.
void check_suite_conflicts(const Suite& suite, const std::filesystem::path& out_dir);

// An output folder belongs to one suite, recorded in OUT/suite.json (the
// resolved suite file). Returns why OUT belongs to another suite (its source
// and digest, the first difference), "" when it is this one's or free;
// DataError when OUT/suite.json cannot be read.
std::string suite_folder_conflict(const Suite& suite, const std::filesystem::path& out_dir);

// Under OUT/.suite.lock (two suites started at once take turns): refuses a
// folder of another suite (ConfigError, nothing written), calls
// `before_writing` (more checks), then writes OUT/suite.json and
// OUT/plan.json (atomically).
void claim_suite_folder(const Suite& suite, const std::filesystem::path& out_dir,
                        const std::function<void()>& before_writing = {});

}  // namespace sgs
