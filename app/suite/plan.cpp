// Suites: a suite file expanded into its runs (base x axes x variants, a
// search stage and its final stage), the search's selection rule, the plan
// files and --dry-run. The state of a suite is its run directories: each
// run's run.h5 says whether it completed, and its lock whether someone runs
// it now.
#include "app/suite/internal.h"
#include "app/process.h"

#include <sgs/checkpoint_file.h>
#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/run_file.h>
#include <sgs/io.h>
#include <sgs/run_dir.h>
#include <sgs/registry.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace sgs {

using namespace suite_detail;

// ---- Suite ----

Suite Suite::load(const std::string& path, const Assignments& extra, const fs::path& out_dir) {
  Suite s;
  s.path_ = path;
  s.extra_ = extra;
  {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot open the file");
    std::stringstream text;
    text << in.rdbuf();
    s.spec_ = parse_ordered_json_text(text.str(), path);
  }
  const Ordered& spec = s.spec_;
  if (!spec.is_object()) throw ConfigError(path + ": expected a JSON object at the top level");
  check_keys(spec, path, "", {"description", "base", "set", "axes", "variants", "search"});
  if (spec.contains("description") && !spec["description"].is_string())
    fail(path, "description", "expected a string");

  // base: a config file (relative to the suite file) or an inline config.
  if (!spec.contains("base")) fail(path, "base", "missing (a config file, relative to the suite file, or a config object)");
  if (spec["base"].is_string()) {
    fs::path base = spec["base"].get<std::string>();
    if (base.is_relative()) base = fs::path(path).parent_path() / base;
    try {
      s.base_ = read_json_file(base.string());
    } catch (const ConfigError& e) {
      fail(path, "base", e.what());
    }
    if (!s.base_.is_object()) fail(path, "base", base.string() + ": expected a JSON object");
  } else if (spec["base"].is_object()) {
    s.base_ = plain(spec["base"]);
  } else {
    fail(path, "base", "expected a config file name or a config object");
  }

  auto read_axes = [&](const Ordered& v, const std::string& where) {
    if (!v.is_object()) fail(path, where, "expected an object {\"key\": [values]}, e.g. {\"seed\": [0, 1, 2]}");
    std::vector<Axis> axes;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string w = where + "." + it.key();
      if (it.key().empty()) fail(path, where, "empty key");
      if (!it.value().is_array()) fail(path, w, "expected a list of values");
      if (it.value().empty()) fail(path, w, "no values");
      Axis a{it.key(), {}};
      for (size_t i = 0; i < it.value().size(); ++i) {
        const auto& x = it.value()[i];
        if (!x.is_string() && !x.is_number() && !x.is_boolean())
          fail(path, w + "[" + std::to_string(i) + "]", "expected a string, number or bool");
        Json value = plain(x);
        for (const auto& seen : a.values)
          if (seen == value) fail(path, w, "the value " + excerpt(value) + " is given twice");
        a.values.push_back(value);
      }
      axes.push_back(std::move(a));
    }
    return axes;
  };
  // Axes of `first`, then those of `second` not already there.
  auto merge = [](std::vector<Axis> first, const std::vector<Axis>& second) {
    for (const auto& a : second)
      if (std::none_of(first.begin(), first.end(), [&](const Axis& b) { return b.key == a.key; })) first.push_back(a);
    return first;
  };

  if (spec.contains("set")) s.common_ = read_set(spec["set"], path, "set");
  std::vector<Axis> suite_axes;
  if (spec.contains("axes")) suite_axes = read_axes(spec["axes"], "axes");

  if (spec.contains("variants")) {
    const auto& vs = spec["variants"];
    if (!vs.is_array()) fail(path, "variants", "expected a list of {\"name\": ..., \"set\": {...}, \"axes\": {...}}");
    if (vs.empty()) fail(path, "variants", "no variants (leave the key out for a single one)");
    s.named_variants_ = true;
    std::set<std::string> names;
    for (size_t i = 0; i < vs.size(); ++i) {
      const std::string where = "variants[" + std::to_string(i) + "]";
      const auto& v = vs[i];
      if (!v.is_object()) fail(path, where, "expected an object {\"name\": ..., \"set\": {...}, \"axes\": {...}}");
      check_keys(v, path, where, {"name", "description", "set", "axes", "after"});
      if (!v.contains("name") || !v["name"].is_string() || v["name"].get<std::string>().empty())
        fail(path, where + ".name", "missing (a name for the variant's run directories)");
      Variant var;
      var.name = v["name"].get<std::string>();
      var.where = where;
      if (!std::all_of(var.name.begin(), var.name.end(), name_char) || var.name == "." || var.name == "..")
        fail(path, where + ".name", "'" + var.name + "': use letters, digits and . _ - + (it names directories)");
      if (!names.insert(var.name).second) fail(path, where + ".name", "'" + var.name + "' is used twice");
      if (v.contains("set")) var.set = read_set(v["set"], path, where + ".set");
      std::vector<Axis> own;
      if (v.contains("axes")) own = read_axes(v["axes"], where + ".axes");
      var.axes = merge(own, suite_axes);
      if (v.contains("after")) {
        const auto& a = v["after"];
        const std::string w = where + ".after";
        if (!a.is_object()) fail(path, w, "expected {\"variant\": NAME, \"key\": KEY}, e.g. {\"variant\": \"search\", \"key\": \"strategy.scales_from\"}");
        check_keys(a, path, w, {"variant", "key"});
        for (const char* k : {"variant", "key"})
          if (!a.contains(k) || !a[k].is_string() || a[k].get<std::string>().empty())
            fail(path, w + "." + k, std::string("missing (") + (k == std::string("key") ? "the key set to the other run's directory" : "the variant whose runs this one follows") + ")");
        var.after_variant = a["variant"].get<std::string>();
        var.after_key = a["key"].get<std::string>();
      }
      s.variants_.push_back(std::move(var));
    }
    // The variants followed: earlier or later in the list, not themselves following one.
    for (const auto& var : s.variants_) {
      if (var.after_variant.empty()) continue;
      const std::string w = var.where + ".after.variant";
      auto it = std::find_if(s.variants_.begin(), s.variants_.end(), [&](const Variant& o) { return o.name == var.after_variant; });
      std::vector<std::string> known;
      for (const auto& o : s.variants_) known.push_back(o.name);
      if (it == s.variants_.end())
        fail(path, w, "no variant '" + var.after_variant + "'" + did_you_mean(var.after_variant, known));
      if (it->name == var.name) fail(path, w, "a variant cannot follow itself");
      if (!it->after_variant.empty())
        fail(path, w, "'" + it->name + "' itself follows '" + it->after_variant + "' (one step of \"after\" only)");
    }
  } else {
    Variant var;
    var.axes = suite_axes;
    s.variants_.push_back(std::move(var));
  }

  if (spec.contains("search")) {
    const auto& se = spec["search"];
    if (!se.is_object()) fail(path, "search", "expected an object {\"over\": [...], \"metric\": ..., ...}");
    check_keys(se, path, "search", {"over", "metric", "set", "final"});
    s.search_.present = true;
    if (!se.contains("over")) fail(path, "search.over", "missing (the axes to choose, e.g. [\"strategy.k\"])");
    const auto& over = se["over"];
    if (over.is_string()) {
      s.search_.over.push_back(over.get<std::string>());
    } else if (over.is_array() && !over.empty()) {
      for (const auto& k : over) {
        if (!k.is_string()) fail(path, "search.over", "expected a list of axis keys");
        s.search_.over.push_back(k.get<std::string>());
      }
    } else {
      fail(path, "search.over", "expected a non-empty list of axis keys");
    }
    if (se.contains("metric")) {
      const std::vector<std::string> metrics{"val_acc", "best_val_acc"};
      if (!se["metric"].is_string() ||
          std::find(metrics.begin(), metrics.end(), se["metric"].get<std::string>()) == metrics.end())
        fail(path, "search.metric", "expected one of " + join(metrics, ", ") + ", got " + excerpt(se["metric"]));
      s.search_.metric = se["metric"].get<std::string>();
    }
    if (se.contains("set")) s.search_.set = read_set(se["set"], path, "search.set");
    if (se.contains("final")) {
      const auto& fi = se["final"];
      if (!fi.is_object()) fail(path, "search.final", "expected an object {\"set\": {...}, \"axes\": {...}}");
      check_keys(fi, path, "search.final", {"set", "axes"});
      if (fi.contains("set")) s.search_.final_set = read_set(fi["set"], path, "search.final.set");
      if (fi.contains("axes")) s.search_.final_axes = read_axes(fi["axes"], "search.final.axes");
    }
    bool any = false;
    for (auto& v : s.variants_) {
      for (const auto& k : s.search_.over)
        if (std::any_of(v.axes.begin(), v.axes.end(), [&](const Axis& a) { return a.key == k; })) v.over.push_back(k);
      v.searched = !v.over.empty();
      any = any || v.searched;
    }
    if (!any) fail(path, "search.over", "'" + s.search_.over[0] + "' is not an axis of any variant");
    for (const auto& v : s.variants_)
      if (!v.after_variant.empty())
        fail(path, v.where + ".after", "a suite with a search cannot also have variants that follow others");
  }

  // Expansion: every run's config is resolved now (and every candidate final
  // run's), so that nothing runs when any is invalid.
  std::set<std::string> names;
  auto add = [&](std::vector<SuiteRun>& to, SuiteRun run) {
    if (!names.insert(run.name).second)
      throw ConfigError(path + ": two runs are named '" + run.name +
                        "' (values that differ only in characters a directory name cannot hold?)");
    to.push_back(std::move(run));
  };
  for (const auto& v : s.variants_) {
    if (!v.after_variant.empty()) continue;  // stage 2, below
    if (!s.search_.present) {
      for (const auto& values : product(v.axes)) add(s.stage1_, s.make_run(v, "", 1, v.axes, values, {}, true));
    } else if (!v.searched) {
      auto axes = s.final_axes(v);
      for (const auto& values : product(axes)) add(s.stage1_, s.make_run(v, "final", 1, axes, values, {}, true));
    } else {
      for (const auto& values : product(v.axes)) add(s.stage1_, s.make_run(v, "search", 1, v.axes, values, {}, true));
    }
  }
  // Runs that follow a run of another variant: the one whose values agree on
  // the axes both variants have.
  for (const auto& v : s.variants_) {
    if (v.after_variant.empty()) continue;
    for (const auto& values : product(v.axes)) {
      std::vector<const SuiteRun*> matches;
      for (const auto& r : s.stage1_) {
        if (r.variant != v.after_variant) continue;
        bool same = true;
        for (const auto& [k, x] : r.values)
          for (const auto& [vk, vx] : values)
            if (k == vk && x != vx) same = false;
        if (same) matches.push_back(&r);
      }
      std::string label;
      for (const auto& [k, x] : values) label += (label.empty() ? "" : ", ") + k + "=" + value_text(x);
      if (matches.size() != 1)
        fail(path, v.where + ".after",
             "'" + v.after_variant + "' has " + std::to_string(matches.size()) + " runs with " +
                 (label.empty() ? std::string("its values") : label) +
                 " (a run follows exactly one: give both variants the axes that tell its runs apart)");
      const fs::path dir = out_dir.empty() ? fs::path(matches[0]->name)
                                           : (fs::absolute(out_dir) / matches[0]->name).lexically_normal();
      SuiteRun run = s.make_run(v, "", 2, v.axes, values, {}, true, {{v.after_key, dir.string()}});
      run.after = matches[0]->name;
      add(s.stage2_, std::move(run));
    }
  }
  for (const auto& v : s.variants_) {
    if (!v.searched) continue;
    std::vector<Axis> over_axes;
    for (const auto& a : v.axes)
      if (std::find(v.over.begin(), v.over.end(), a.key) != v.over.end()) over_axes.push_back(a);
    auto axes = s.final_axes(v);
    for (const auto& values : product(axes)) {
      for (const auto& chosen : product(over_axes))
        s.candidates_.push_back(s.make_run(v, "final", 2, axes, values, chosen, true));
      add(s.stage2_, s.make_run(v, "final", 2, axes, values, {}, false));
    }
  }
  return s;
}

std::vector<Suite::Axis> Suite::final_axes(const Variant& v) const {
  std::vector<Axis> axes;
  for (const auto& a : v.axes)
    if (std::find(v.over.begin(), v.over.end(), a.key) == v.over.end()) axes.push_back(a);
  for (const auto& f : search_.final_axes) {
    auto it = std::find_if(axes.begin(), axes.end(), [&](const Axis& a) { return a.key == f.key; });
    if (it != axes.end()) *it = f;
    else axes.push_back(f);
  }
  return axes;
}

SuiteRun Suite::make_run(const Variant& v, const std::string& phase, int stage, const std::vector<Axis>& axes,
                         const Assignments& values, const Assignments& chosen, bool resolve,
                         const Assignments& follows) const {
  SuiteRun run;
  run.stage = stage;
  run.phase = phase;
  run.variant = v.name;
  run.values = values;
  run.chosen = chosen;
  std::vector<std::string> keys;
  for (const auto& a : axes) keys.push_back(a.key);
  std::string component;
  for (const auto& [k, x] : values)
    component += (component.empty() ? "" : ",") + axis_label(k, keys) + "=" + safe_name(value_text(x));
  for (const auto& part : {phase, v.name, component})
    if (!part.empty()) run.name += (run.name.empty() ? "" : "/") + part;
  if (run.name.empty()) run.name = "run";

  // Each group of assignments with where it comes from, for messages.
  const std::string stage_where = phase == "search" ? "search.set" : "search.final.set";
  const Assignments& stage_set = phase == "search" ? search_.set : search_.final_set;
  std::vector<std::pair<std::string, const Assignments*>> groups{
      {v.where.empty() ? "set" : v.where + ".set", &v.set},
      {stage_where, phase.empty() ? nullptr : &stage_set},
      {"search.over (the chosen value)", &chosen},
      {v.where + ".after (the run it follows)", &follows},
      {"axes", &values},
  };
  for (const auto& [where, group] : groups)
    if (group != nullptr) run.overrides.insert(run.overrides.end(), group->begin(), group->end());
  if (!resolve) return run;

  Json raw = base_;
  auto apply = [&](const std::string& where, const Assignments& group) {
    for (const auto& [k, x] : group) {
      try {
        apply_assignment(raw, k, x);
      } catch (const ConfigError& e) {
        throw ConfigError(path_ + ": " + run.name + ": " + where + ": " + e.what());
      }
    }
  };
  apply("set", common_);
  for (const auto& [where, group] : groups)
    if (group != nullptr) apply(where, *group);
  apply("command line", extra_);
  run.config = resolve_config(raw, path_ + ": " + run.name);
  if (phase == "search") {
    // The search ranks runs by a validation metric: refuse, before anything
    // trains, a search run that would have none.
    const Json& ds = run.config["dataset"];
    const std::string evaluate = run.config["evaluate"].get<std::string>();
    const bool val_split =
        ds.contains("val_fraction") && ds["val_fraction"].is_number() && ds["val_fraction"].get<double>() > 0;
    if (!val_split)
      throw ConfigError(path_ + ": " + run.name + ": search.metric '" + search_.metric +
                        "' needs a validation split, but dataset.val_fraction is 0 "
                        "(set it for the search: \"search\": {\"set\": {\"dataset.val_fraction\": 0.1}})");
    if (evaluate == "test" || evaluate == "none")
      throw ConfigError(path_ + ": " + run.name + ": search.metric '" + search_.metric +
                        "' needs evaluate to include val, got '" + evaluate + "'");
  }
  return run;
}

const Suite::Variant& Suite::variant(const std::string& name) const {
  for (const auto& v : variants_)
    if (v.name == name) return v;
  throw std::invalid_argument("suite: no variant '" + name + "'");
}

std::vector<std::string> Suite::searched_variants() const {
  std::vector<std::string> out;
  for (const auto& v : variants_)
    if (v.searched) out.push_back(v.name);
  return out;
}

std::vector<size_t> Suite::search_runs(const std::string& name) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < stage1_.size(); ++i)
    if (stage1_[i].phase == "search" && stage1_[i].variant == name) out.push_back(i);
  return out;
}

Selection Suite::select(const std::string& name, const fs::path& out_dir) const {
  const Variant& v = variant(name);
  Selection sel;
  sel.variant = name;
  sel.over = v.over;
  std::vector<Axis> over_axes;
  for (const auto& a : v.axes)
    if (std::find(v.over.begin(), v.over.end(), a.key) != v.over.end()) over_axes.push_back(a);
  for (const auto& values : product(over_axes)) sel.candidates.push_back({values, 0.0, 0});
  const std::string key = search_.metric == "val_acc" ? "final_val_acc" : search_.metric;
  std::vector<double> sums(sel.candidates.size(), 0.0);
  for (size_t i : search_runs(name)) {
    const SuiteRun& run = stage1_[i];
    const fs::path dir = out_dir / run.name;
    if (!read_run_state(dir).completed()) {
      sel.incomplete.push_back(run.name);
      continue;
    }
    double value = NAN;
    try {
      auto summary = read_run_file((dir / "run.h5").string(), kRunSummary).summary;
      if (summary.count(key)) value = summary.at(key);
    } catch (const std::exception& e) {
      sel.error = e.what();
      return sel;
    }
    if (!std::isfinite(value)) {
      sel.error = run.name + ": its run.h5 has no " + key +
                  " (a search needs a validation split: \"search\": {\"set\": {\"dataset.val_fraction\": 0.2}})";
      return sel;
    }
    for (size_t c = 0; c < sel.candidates.size(); ++c) {
      bool match = true;
      for (const auto& [k, x] : sel.candidates[c].values)
        for (const auto& [rk, rx] : run.values)
          if (rk == k && rx != x) match = false;
      if (match) {
        sums[c] += value;
        sel.candidates[c].runs += 1;
      }
    }
  }
  if (!sel.incomplete.empty()) {
    sel.error = std::to_string(sel.incomplete.size()) + " of its search runs are not completed (" +
                sel.incomplete[0] + (sel.incomplete.size() > 1 ? ", ..." : "") + ")";
    return sel;
  }
  for (size_t c = 0; c < sel.candidates.size(); ++c) {
    auto& cand = sel.candidates[c];
    cand.mean = cand.runs > 0 ? sums[c] / static_cast<double>(cand.runs) : NAN;
    if (cand.runs > 0 && (sel.chosen < 0 || cand.mean > sel.candidates[static_cast<size_t>(sel.chosen)].mean))
      sel.chosen = static_cast<int64_t>(c);  // strictly better: ties go to the first in axis order
  }
  return sel;
}

std::string Suite::waits_for(const SuiteRun& run, const fs::path& out_dir) {
  if (run.after.empty() || read_run_state(out_dir / run.after).completed()) return "";
  return "waits for " + run.after + " to complete";
}

SuiteRun Suite::plan_final(const SuiteRun& run, const Selection& selection) const {
  if (!selection.ready()) throw std::runtime_error(run.name + ": cannot be planned: " + selection.error);
  const Variant& v = variant(run.variant);
  return make_run(v, "final", 2, final_axes(v), run.values, selection.candidates[static_cast<size_t>(selection.chosen)].values,
                  true);
}

Ordered Suite::resolved_json() const {
  Ordered out = spec_;
  out["base"] = Ordered::parse(base_.dump());
  out["source"] = fs::absolute(path_).lexically_normal().string();
  if (!extra_.empty()) out["command_line"] = Ordered::parse(assignments_object(extra_).dump());
  return out;
}

Json Suite::plan_json() const {
  Json runs = Json::array();
  for (int stage = 1; stage <= 2; ++stage) {
    const auto& list = this->runs(stage);
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& r = list[i];
      Json o{{"stage", stage}, {"index", i}, {"name", r.name}, {"phase", r.phase}, {"variant", r.variant},
             {"values", assignments_object(r.values)}, {"overrides", assignments_text(r.overrides)}};
      if (!r.after.empty()) o["after"] = r.after;
      runs.push_back(o);
    }
  }
  return Json{{"suite", fs::absolute(path_).lexically_normal().string()},
              {"stages", stages()},
              {"common", assignments_text(common_)},
              {"runs", runs}};
}

namespace {

// What makes two suites the same: the resolved file, wherever it was read
// from. The command line's overrides (--threads) are not part of it: each
// run's config holds them, and a run of other values is refused by its own
// comparison (config_conflict).
Json suite_identity(const Ordered& resolved) {
  Json j = plain(resolved);
  j.erase("source");
  j.erase("command_line");
  return j;
}

// The digest a checkpoint records of config.json, of the identity's canonical text.
std::string suite_digest(const Json& identity) { return config_digest(identity.dump()); }

}  // namespace

std::string suite_folder_conflict(const Suite& suite, const fs::path& out_dir) {
  const fs::path file = out_dir / "suite.json";
  if (!fs::exists(file)) return "";
  Ordered recorded;
  try {
    recorded = parse_ordered_json_text(read_file(file), file.string());
  } catch (const ConfigError& e) {
    throw DataError(std::string(e.what()) + " (the record of the suite whose runs " + out_dir.string() +
                    " holds; restore it, or use another --out)");
  }
  const Json had = suite_identity(recorded), now = suite_identity(suite.resolved_json());
  if (had == now) return "";
  std::string source = recorded.contains("source") && recorded["source"].is_string()
                           ? recorded["source"].get<std::string>()
                           : std::string("unknown");
  return out_dir.string() + ": holds the runs of another suite (" + source + ", digest " + suite_digest(had) +
         "), not of " + suite.path() + " (digest " + suite_digest(now) + "; first difference: " +
         first_difference(had, now) + "): use another --out (or remove " + file.string() +
         " to give the folder to this suite; runs of another config are still refused)";
}

void claim_suite_folder(const Suite& suite, const fs::path& out_dir, const std::function<void()>& before_writing) {
  FolderLock lock(out_dir);
  auto conflict = suite_folder_conflict(suite, out_dir);
  if (!conflict.empty()) throw ConfigError(conflict);
  if (before_writing) before_writing();
  write_atomically(out_dir / "suite.json", suite.resolved_json().dump(2) + "\n");
  write_atomically(out_dir / "plan.json", suite.plan_json().dump(2) + "\n");
}

std::vector<Selection> record_selections(const Suite& suite, const fs::path& out_dir, std::ostream& log) {
  std::vector<Selection> all, ready;
  for (const auto& v : suite.searched_variants()) {
    all.push_back(suite.select(v, out_dir));
    if (all.back().ready()) ready.push_back(all.back());
    log << selection_text(suite, all.back()) << "\n";
  }
  if (!ready.empty()) write_selections(suite, ready, out_dir);
  return all;
}

int current_stage(const Suite& suite, const fs::path& out_dir) {
  for (int stage = 1; stage <= suite.stages(); ++stage)
    for (const auto& r : suite.runs(stage))
      if (!read_run_state(out_dir / r.name).completed() || !config_conflict(r, out_dir).empty()) return stage;
  return 0;
}

// ---- --dry-run ----

void print_suite_plan(const Suite& suite, const fs::path& out_dir, std::ostream& out) {
  const size_t n1 = suite.runs(1).size(), n2 = suite.runs(2).size();
  out << "suite " << suite.path() << ": " << n1 + n2 << " runs";
  if (suite.stages() == 2) out << " in 2 stages (" << n1 << " + " << n2 << ")";
  out << ", output " << out_dir.string() << "\n";
  Assignments every = suite.common();
  every.insert(every.end(), suite.extra().begin(), suite.extra().end());
  if (!every.empty()) out << "every run: " << assignments_text(every) << "\n";
  bool conflicts = false;
  std::map<std::string, Selection> selections;
  std::vector<std::string> order = suite.searched_variants();
  for (const auto& v : order) selections[v] = suite.select(v, out_dir);
  for (int stage = 1; stage <= suite.stages(); ++stage) {
    if (suite.stages() == 2 && suite.has_search())
      out << (stage == 1 ? "stage 1: the search runs, and the runs of variants without a search\n"
                         : "stage 2: the final runs of searched variants, once their search is complete\n");
    else if (suite.stages() == 2)
      out << (stage == 1 ? "stage 1: the runs that follow none\n"
                         : "stage 2: the runs that follow a run of stage 1, once it has completed\n");
    struct Row {
      std::string index, name, status, overrides;
    };
    std::vector<Row> rows;
    size_t wn = 4, ws = 6;
    const auto& list = suite.runs(stage);
    for (size_t i = 0; i < list.size(); ++i) {
      SuiteRun run = list[i];
      std::string status;
      if (stage == 2 && run.config.is_null()) {
        const auto& sel = selections.at(run.variant);
        if (sel.ready()) run = suite.plan_final(run, sel);
        else status = "waiting for the search";
      }
      if (status.empty() && !Suite::waits_for(run, out_dir).empty() && !read_run_state(out_dir / run.name).completed())
        status = "waiting for " + run.after;
      if (status.empty()) {
        auto st = read_run_state(out_dir / run.name);
        status = !st.has_file     ? "new"
                 : st.completed()  ? to_string(RunStatus::Completed)
                 : st.fresh()      ? "redo (" + st.text() + ")"
                                   : "resume (" + st.text() + ")";
        if (run_dir_locked_elsewhere(out_dir / run.name)) status = "running now";
        if (!config_conflict(run, out_dir).empty()) {
          status = "another config";
          conflicts = true;
        }
      }
      std::string overrides = assignments_text(run.overrides);
      if (!run.chosen.empty()) overrides += "  (chosen: " + assignments_text(run.chosen) + ")";
      rows.push_back({std::to_string(i), run.name, status, overrides});
      wn = std::max(wn, run.name.size());
      ws = std::max(ws, status.size());
    }
    auto pad = [](const std::string& s, size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
    out << "  " << pad("#", 4) << pad("run", wn + 2) << pad("status", ws + 2) << "overrides\n";
    for (const auto& r : rows) out << "  " << pad(r.index, 4) << pad(r.name, wn + 2) << pad(r.status, ws + 2) << r.overrides << "\n";
  }
  for (const auto& v : order) out << selection_text(suite, selections.at(v)) << "\n";
  if (conflicts)
    out << "'another config': the directory holds a run of another config (the suite or --threads changed); "
           "the suite does not run until it is removed\n";
}

}  // namespace sgs
