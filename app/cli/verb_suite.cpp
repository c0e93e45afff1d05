// sgs suite SUITE.json --out DIR [--jobs N] [--dry-run] [--index I] [--emit-slurm FILE] [--slurm]:
// expand a suite into runs and run them (app/suite/suite.h).
#include "verb.h"

#include <sgs/io.h>
#include <sgs/errors.h>
#include <sgs/trainer.h>
#include "app/suite/suite.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace {

// Every run's config validated as its `sgs run` validates it at start-up
// (dataset, model, strategy), before anything is written; runs that differ
// only in seed or description are checked once. A Slurm suite's data may be
// on its nodes only: there, data this machine cannot read is a note.
void check_runs(const sgs::Suite& suite, sgs::DeviceRules rules) {
  sgs::RunChecker checker(rules);
  std::set<std::string> seen;
  bool noted = false;
  for (const auto& run : suite.resolved_runs()) {
    sgs::Json key = run.config;
    key.erase("seed");
    key.erase("description");
    if (!seen.insert(key.dump()).second) continue;
    std::string values;
    for (const auto& group : {run.chosen, run.values})
      for (const auto& [k, v] : group)
        values += (values.empty() ? "" : ", ") + k + "=" + (v.is_string() ? v.get<std::string>() : sgs::excerpt(v));
    const std::string where =
        suite.path() + ": run " + run.name + (values.empty() ? "" : " (axes: " + values + ")") + ": ";
    try {
      checker.check(run.config);
    } catch (const sgs::ConfigError& e) {
      throw sgs::ConfigError(where + e.what());
    } catch (const sgs::DataError& e) {
      if (rules != sgs::DeviceRules::ExplicitCpu) throw sgs::DataError(where + e.what());
      if (!noted)
        std::cerr << "sgs suite: note: " << where << e.what() << " (not checked here; the run reads it on its node)\n";
      noted = true;
    } catch (const std::exception& e) {
      throw std::runtime_error(where + sgs::error_message(e));
    }
  }
}

int run_suite_verb(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  namespace fs = std::filesystem;
  po::options_description opts("options");
  std::string path, out, emit, slurm_args;
  int64_t jobs = 1, index = -1, threads = -1;
  int stage = 0;
  opts.add_options()("suite", po::value(&path)->required(), "suite file (JSON)")(
      "out", po::value(&out), "output directory, one sub-directory per run (default runs/<suite name>)")(
      "jobs,j", po::value(&jobs), "runs at once (default 1); with Slurm, array tasks at once")(
      "threads", po::value(&threads), "set every run's `threads` (part of its config: give the same value on resume)")(
      "dry-run,n", "list the runs with their status and overrides; run nothing")(
      "index", po::value(&index), "run only run I of the current stage (a Slurm array task)")(
      "stage", po::value(&stage), "with --index or --emit-slurm: the stage (1 or 2; default: the current one)")(
      "emit-slurm", po::value(&emit), "write a Slurm job-array script for the current stage to FILE")(
      "slurm", "submit the stages with sbatch and follow them until they end")(
      "slurm-args", po::value(&slurm_args), "extra sbatch options for the script, e.g. \"--partition=gpu --time=4:00:00\"");
  po::positional_options_description pos;
  pos.add("suite", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("suite", "SUITE.json [--out DIR] [--jobs N] [--dry-run | --index I | --emit-slurm FILE | --slurm]",
                            args, opts, pos, vm))
    return 0;
  int modes = static_cast<int>(vm.count("dry-run") + vm.count("index") + vm.count("emit-slurm") + vm.count("slurm"));
  if (modes > 1) throw sgs::ConfigError("sgs suite: --dry-run, --index, --emit-slurm and --slurm exclude each other");
  if (jobs < 1) throw sgs::ConfigError("sgs suite: --jobs: must be >= 1, got " + std::to_string(jobs));
  if (vm.count("threads") && threads < 0)
    throw sgs::ConfigError("sgs suite: --threads: must be >= 0, got " + std::to_string(threads));
  if (vm.count("stage") && (stage < 1 || stage > 2))
    throw sgs::ConfigError("sgs suite: --stage: expected 1 or 2, got " + std::to_string(stage));

  sgs::Assignments extra;
  if (threads >= 0) extra.emplace_back("threads", threads);
  sgs::SuiteOptions o;
  if (vm.count("out") && out.empty()) throw sgs::ConfigError("--out: expected a directory, got an empty string");
  o.out_dir = out.empty() ? fs::path("runs") / fs::path(path).stem() : fs::path(out);
  // Every run validated before anything is written.
  const sgs::Suite suite = sgs::Suite::load(path, extra, o.out_dir);
  o.jobs = jobs;
  o.jobs_given = vm.count("jobs") > 0;
  o.threads = threads;
  std::istringstream words(slurm_args);
  for (std::string w; words >> w;) o.slurm_args.push_back(w);

  if (vm.count("dry-run")) {
    sgs::print_suite_plan(suite, o.out_dir, std::cout);
    const std::string conflict = sgs::suite_folder_conflict(suite, o.out_dir);
    if (!conflict.empty()) std::cerr << "sgs suite: note: " << conflict << "\n";
    return 0;
  }
  if (vm.count("index")) return sgs::run_suite_index(suite, o, stage, index);  // its run checks itself
  // Cheap first: a folder of another suite.
  if (const std::string other = sgs::suite_folder_conflict(suite, o.out_dir); !other.empty())
    throw sgs::ConfigError(other);
  // A Slurm suite is checked on the login node: its devices say nothing of the nodes'.
  check_runs(suite, vm.count("slurm") || vm.count("emit-slurm") ? sgs::DeviceRules::ExplicitCpu : sgs::DeviceRules::Here);
  if (vm.count("slurm")) return sgs::run_suite_slurm(suite, o);
  if (vm.count("emit-slurm")) {
    sgs::claim_suite_folder(suite, o.out_dir, [&] { sgs::check_suite_conflicts(suite, o.out_dir); });
    if (stage == 0) stage = sgs::current_stage(suite, o.out_dir);
    if (stage == 0) {
      std::cerr << "sgs suite: every run of " << path << " is completed in " << o.out_dir.string() << "; nothing to submit\n";
      return 0;
    }
    if (stage == 2) sgs::record_selections(suite, o.out_dir, std::cerr);
    std::vector<int64_t> indices;
    std::string script = sgs::slurm_script(suite, o, stage, indices);
    if (script.empty()) {
      std::cerr << "sgs suite: stage " << stage << " has no run that can be submitted now (see --dry-run)\n";
      return 1;
    }
    std::filesystem::create_directories(o.out_dir / "slurm");
    sgs::write_file_atomically(emit, script);
    fs::permissions(emit, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
    std::cerr << "wrote " << emit << ": stage " << stage << " of " << suite.stages() << ", " << indices.size()
              << " array tasks; submit it with `sbatch " << emit << "`";
    if (stage < suite.stages())
      std::cerr << ", and when it has ended run this command again for stage " << stage + 1;
    std::cerr << " (or use --slurm)\n";
    return 0;
  }
  return sgs::run_suite(suite, o);
}

}  // namespace

SGS_VERB("suite", "run a suite of runs (base x axes x variants, searches) locally or on Slurm; resumable",
         run_suite_verb)
