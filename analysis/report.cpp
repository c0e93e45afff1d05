#include "report.h"

#include <sgs/errors.h>
#include <sgs/run_file.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace sgs::analysis {

Stat make_stat(const std::vector<double>& values) {
  Stat s;
  for (double v : values)
    if (std::isfinite(v)) s.values.push_back(v);
  if (s.values.empty()) return s;
  double sum = 0;
  for (double v : s.values) sum += v;
  s.mean = sum / static_cast<double>(s.n());
  if (s.n() > 1) {
    double ss = 0;
    for (double v : s.values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(s.n() - 1));
  }
  return s;
}

namespace {

// `v` with `decimals` decimals, "-" for NaN.
std::string fixed(double v, int decimals = 2) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string hours_text(double h) {
  char buf[64];
  if (h >= 1)
    std::snprintf(buf, sizeof buf, "%.2f", h);
  else
    std::snprintf(buf, sizeof buf, "%.3g", h);
  return buf;
}

// "+1.23", "-0.40", "-" for NaN.
std::string signed2(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.2f", v);
  return buf;
}

// 0.0123, 0.46, "< 0.0001", "-".
std::string p_text(double p) {
  if (!std::isfinite(p)) return "-";
  if (p < 1e-4) return "< 0.0001";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2g", p);
  return buf;
}

// 3, 2.5 (a mean of counts: at most one decimal).
std::string number_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", std::round(v * 10) / 10);
  return buf;
}

// 9.23M, 145.2k, 812.
std::string count_text(double n) {
  if (!std::isfinite(n)) return "-";
  char buf[64];
  if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

std::string integer_text(double n) {
  if (!std::isfinite(n)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

Json stat_json(const Stat& s) {
  auto num = [](double v) { return std::isfinite(v) ? Json(v) : Json(); };
  Json values = Json::array();
  for (double v : s.values) values.push_back(v);
  return Json{{"mean", num(s.mean)}, {"std", num(s.std)}, {"n", s.n()}, {"values", values}};
}

std::string seeds_text(const std::vector<Json>& seeds, const std::string& sep) {
  std::vector<std::string> parts;
  for (const auto& s : seeds) parts.push_back(value_label(s));
  return join(parts, sep);
}

// Column header for the best accuracy: "best val acc (%)", or "best acc (%)" when groups differ.
std::string best_header(const Report& r) {
  std::set<std::string> on;
  for (const auto& g : r.groups)
    if (!g.best_on.empty()) on.insert(g.best_on);
  if (on.size() == 1) return "best " + *on.begin() + " acc (%)";
  return "best acc (%)";
}

// An int8 configuration as a column header: the weights alone for sgs
// quantize's default activations and calibration ("per-channel"), else the
// whole name.
std::string int8_short(const std::string& config) {
  const std::string tail = "_symmetric_minmax";
  if (config.size() > tail.size() && config.compare(config.size() - tail.size(), tail.size(), tail) == 0)
    return config.substr(0, config.size() - tail.size());
  return config;
}

// One "Against" table: each group's comparison, `slot(g)`.
template <class Slot>
void against_table(std::ostringstream& out, const Report& r, const std::string& what, Slot slot) {
  size_t tests = 0;
  for (const auto& g : r.groups) tests += !g.is_reference && slot(g).tested() ? 1 : 0;
  out << "\n## Against " << md_cell(r.against) << ": " << what
      << ", difference in percentage points\n\n"
         "| method | difference | 95 % interval | p | p (Holm) | test |\n|---|---|---|---|---|---|\n";
  for (const auto& g : r.groups) {
    if (g.is_reference) continue;
    const Comparison& c = slot(g);
    out << "| " << md_cell(g.label) << " | " << signed2(c.difference) << " | "
        << (c.tested() ? "[" + signed2(c.ci_low) + ", " + signed2(c.ci_high) + "]" : "-") << " | " << p_text(c.p)
        << " | " << p_text(c.p_holm) << " | " << (c.tested() ? c.test + ", " : "") << md_cell(c.note) << " |\n";
  }
  out << "\nTwo-sided t-tests: paired over the seeds both groups ran (the same seed gives the same initial "
         "weights, data order and augmentation), Welch's where they share none; p (Holm) adjusted over the "
      << tests << " test" << (tests == 1 ? "" : "s") << " of this table.\n";
}

bool any_val(const Report& r) {
  return std::any_of(r.groups.begin(), r.groups.end(), [](const ReportGroup& g) { return g.final_val_acc.n() > 0; });
}

}  // namespace

std::string mean_std_text(const Stat& s) {
  if (s.n() == 0) return "-";
  return fixed(s.mean) + " ± " + (s.n() > 1 ? fixed(s.std) : std::string("-"));
}

namespace {

// One family of comparisons with the reference group: `values(g)` gives a
// group's per-run values in the order of its seeds (NaN: none), `slot(g)`
// where its comparison goes. Paired over the seeds both ran, else Welch;
// Holm over the family. Returns false when the reference has no value.
template <class Values, class Slot>
bool compare_family(Report& report, const ReportGroup& reference, Values values, Slot slot) {
  std::map<std::string, double> by_seed;
  std::vector<double> all_ref;
  const auto& ref_values = values(reference);
  for (size_t i = 0; i < reference.seeds.size(); ++i) {
    if (!std::isfinite(ref_values[i])) continue;
    by_seed.emplace(value_label(reference.seeds[i]), ref_values[i]);
    all_ref.push_back(ref_values[i]);
  }
  if (all_ref.empty()) return false;
  std::vector<Comparison*> family;
  for (auto& g : report.groups) {
    if (&g == &reference) continue;
    const auto& v = values(g);
    std::vector<double> mine, paired_mine, paired_ref;
    std::set<std::string> used;
    for (size_t i = 0; i < g.seeds.size(); ++i) {
      if (!std::isfinite(v[i])) continue;
      mine.push_back(v[i]);
      const std::string seed = value_label(g.seeds[i]);
      auto it = by_seed.find(seed);
      if (it != by_seed.end() && used.insert(seed).second) {
        paired_mine.push_back(v[i]);
        paired_ref.push_back(it->second);
      }
    }
    Comparison& c = slot(g);
    if (!paired_mine.empty()) {
      c = paired_t(paired_mine, paired_ref);
      if (c.tested()) c.note = std::to_string(paired_mine.size()) + " shared seeds";
    } else {
      c = welch_t(mine, all_ref);
      if (c.tested()) c.note = "no shared seed; " + std::to_string(mine.size()) + " vs " + std::to_string(all_ref.size()) + " runs";
    }
    family.push_back(&c);
  }
  holm(family);
  return true;
}

// Each group against the reference, in fp32 and in every int8 configuration.
void compare_groups(Report& report, const std::string& against, const std::vector<bool>& baseline) {
  size_t ref = report.groups.size();
  if (!against.empty()) {
    std::vector<std::string> labels;
    for (size_t i = 0; i < report.groups.size(); ++i) {
      labels.push_back("'" + report.groups[i].label + "'");
      if (report.groups[i].label == against) ref = i;
    }
    if (ref == report.groups.size())
      throw ConfigError("--against: no group is labelled '" + against + "'; the groups are " +
                        (labels.empty() ? std::string("none (no completed run)") : join(labels, ", ")));
  } else {
    size_t found = 0;
    for (size_t i = 0; i < baseline.size(); ++i)
      if (baseline[i]) {
        ref = i;
        ++found;
      }
    if (found != 1) return;
  }
  auto& reference = report.groups[ref];
  const bool compared = compare_family(
      report, reference, [](const ReportGroup& g) -> const std::vector<double>& { return g.run_test_acc; },
      [](ReportGroup& g) -> Comparison& { return g.against; });
  if (!compared) {
    // The comparison is of final test accuracies: a reference without any has nothing to compare with.
    const std::string why = "'" + reference.label +
                            "': none of its runs has a final test accuracy (evaluate without test?), so nothing "
                            "can be compared with it";
    if (!against.empty()) throw ConfigError("--against: " + why);
    report.warnings.push_back("the baseline " + why);
    return;
  }
  reference.is_reference = true;
  report.against = reference.label;
  for (size_t q = 0; q < report.int8.size(); ++q)
    if (!compare_family(
            report, reference, [q](const ReportGroup& g) -> const std::vector<double>& { return g.int8[q].run_acc; },
            [q](ReportGroup& g) -> Comparison& { return g.int8[q].against; }))
      for (auto& g : report.groups) g.int8[q].against.note = "'" + reference.label + "' was not quantized";
}

}  // namespace

Report make_report(const std::vector<RunData>& runs, const std::vector<std::string>& by, const std::string& against,
                   const std::vector<std::string>& int8) {
  Report report;
  std::set<std::string> recorded;  // int8 configurations of the completed runs
  for (const auto& r : runs)
    if (r.completed())
      for (const auto& [key, record] : r.deploy)
        if (key.rfind("int8/", 0) == 0) recorded.insert(key.substr(5));
  report.int8 = int8.empty() ? std::vector<std::string>(recorded.begin(), recorded.end()) : int8;
  for (const auto& q : int8)
    if (!recorded.count(q)) {
      std::vector<std::string> known(recorded.begin(), recorded.end());
      throw ConfigError("--int8: no completed run has a record of '" + q + "' (sgs quantize writes them); " +
                        (known.empty() ? std::string("none has any") : "recorded: " + join(known, ", ")));
    }
  std::vector<const RunData*> completed;
  for (const auto& r : runs) {
    if (r.completed()) {
      completed.push_back(&r);
    } else {
      report.excluded.push_back(
          {r.name, r.file, r.status_text(), r.error, static_cast<int64_t>(r.epochs.size())});
    }
  }
  if (!by.empty() && completed.empty()) {
    // Still check the keys against whatever runs there are.
    std::vector<const RunData*> all;
    for (const auto& r : runs) all.push_back(&r);
    group_runs(all, by);
  }
  auto grouping = group_runs(completed, by);
  report.keys = grouping.keys;
  std::vector<bool> baseline;  // per group: all its runs without a strategy
  std::vector<std::string> pooled;  // groups holding more than one run of a seed
  for (const auto& g : grouping.groups) {
    ReportGroup out;
    out.label = g.label;
    out.values = g.values;
    std::vector<double> test, val, train, best, epoch_seconds;
    std::vector<std::vector<double>> int8_drop(report.int8.size());
    out.int8.resize(report.int8.size());
    std::set<std::string> best_on;
    std::vector<std::string> seen_seeds;
    std::set<std::string> repeated;  // seeds of more than one run in the group
    double seconds = 0;
    for (size_t i : g.members) {
      const RunData& r = *completed[i];
      out.runs.push_back(r.name);
      const Json seed = r.config.contains("seed") ? r.config["seed"] : Json();
      out.seeds.push_back(seed);
      const std::string seed_text = value_label(seed);
      if (std::find(seen_seeds.begin(), seen_seeds.end(), seed_text) != seen_seeds.end()) repeated.insert(seed_text);
      seen_seeds.push_back(seed_text);
      test.push_back(100 * r.final_metric("test_acc"));
      out.run_test_acc.push_back(test.back());
      val.push_back(100 * r.final_metric("val_acc"));
      train.push_back(100 * r.final_metric("train_acc"));
      if (r.has_metric("val_acc")) {
        best.push_back(100 * r.max_metric("val_acc"));
        best_on.insert("val");
      } else if (r.has_metric("test_acc")) {
        best.push_back(100 * r.max_metric("test_acc"));
        best_on.insert("test");
      }
      seconds += r.train_seconds();
      const double epochs = std::isfinite(r.summary_value("epochs_completed")) ? r.summary_value("epochs_completed")
                                                                                : static_cast<double>(r.epochs.size());
      epoch_seconds.push_back(epochs > 0 ? r.train_seconds() / epochs : NAN);
      for (size_t q = 0; q < report.int8.size(); ++q) {
        auto it = r.deploy.find("int8/" + report.int8[q]);
        out.int8[q].run_acc.push_back(it == r.deploy.end() ? NAN : 100 * it->second.value("int8_acc"));
        int8_drop[q].push_back(it == r.deploy.end() ? NAN : 100 * it->second.value("int8_drop"));
      }
      for (const auto& layer : r.layers)
        for (const auto& c : structure_changes(layer)) {
          if (c.event == StructureChange::kGrow) out.growths += 1;
          if (c.event == StructureChange::kCut) out.cuts += 1;
        }
    }
    out.growths /= static_cast<double>(g.members.size());
    out.cuts /= static_cast<double>(g.members.size());
    out.final_test_acc = make_stat(test);
    out.final_val_acc = make_stat(val);
    out.final_train_acc = make_stat(train);
    out.best_acc = make_stat(best);
    out.epoch_seconds = make_stat(epoch_seconds);
    for (size_t q = 0; q < report.int8.size(); ++q) {
      out.int8[q].acc = make_stat(out.int8[q].run_acc);
      out.int8[q].drop = make_stat(int8_drop[q]);
    }
    out.best_on = join(std::vector<std::string>(best_on.rbegin(), best_on.rend()), "/");  // "val", "test", "val/test"
    out.train_hours = seconds / 3600.0;
    const RunData& first = *completed[g.members[0]];
    out.parameters = first.summary_value("parameters");
    out.parameters_fused = first.summary_value("parameters_fused");
    if (!repeated.empty())
      pooled.push_back("'" + g.label + "' (seed " + join(std::vector<std::string>(repeated.begin(), repeated.end()), ", ") +
                       ")");
    bool plain = true;
    for (size_t m : g.members) plain = plain && completed[m]->strategy() == "none";
    baseline.push_back(plain);
    report.groups.push_back(std::move(out));
  }
  if (!pooled.empty())
    report.warnings.push_back("group" + std::string(pooled.size() > 1 ? "s " : " ") + join(pooled, ", ") +
                              " pool more than one run of the same seed (the same run twice, or runs that differ in a "
                              "key not grouped by); n counts runs, and intervals treat them as independent");
  std::sort(report.excluded.begin(), report.excluded.end(),
            [](const ExcludedRun& a, const ExcludedRun& b) { return a.name < b.name; });
  compare_groups(report, against, baseline);
  return report;
}

std::string format_markdown(const Report& r) {
  std::ostringstream out;
  size_t completed = 0;
  for (const auto& g : r.groups) completed += g.runs.size();
  if (r.groups.empty())
    out << "## Results: no completed run\n";
  else
    out << "## Results: " << completed << " completed run" << (completed == 1 ? "" : "s") << " in " << r.groups.size()
        << " group" << (r.groups.size() == 1 ? "" : "s") << "\n\n";
  const bool val = any_val(r);
  bool changes = false;  // some group's graph grew or was cut (dyrep)
  for (const auto& g : r.groups) changes = changes || g.growths > 0 || g.cuts > 0;
  if (!r.groups.empty()) {
    out << "| method | n | final test acc (%) | " << (val ? "final val acc (%) | " : "") << best_header(r)
        << " | train hours | train s/epoch | parameters | parameters fused |" << (changes ? " growths | cuts |" : "");
    for (const auto& q : r.int8) out << " int8 " << int8_short(q) << " (%) | drop (points) |";
    out << "\n|---|---|---|" << (val ? "---|" : "") << "---|---|---|---|---|" << (changes ? "---|---|" : "");
    for (size_t q = 0; q < r.int8.size(); ++q) out << "---|---|";
    out << "\n";
    const bool mixed = best_header(r) == "best acc (%)";
    for (const auto& g : r.groups) {
      out << "| " << md_cell(g.label) << " | " << g.runs.size() << " | " << mean_std_text(g.final_test_acc) << " | ";
      if (val) out << mean_std_text(g.final_val_acc) << " | ";
      out << mean_std_text(g.best_acc) << (mixed && !g.best_on.empty() ? " (" + g.best_on + ")" : "") << " | "
          << hours_text(g.train_hours) << " | " << fixed(g.epoch_seconds.mean, 1) << " | " << count_text(g.parameters)
          << " | " << count_text(g.parameters_fused) << " |";
      if (changes) out << " " << number_text(g.growths) << " | " << number_text(g.cuts) << " |";
      for (const auto& q : g.int8) out << " " << mean_std_text(q.acc) << " | " << mean_std_text(q.drop) << " |";
      out << "\n";
    }
    out << "\nn = runs in the group; mean ± sample standard deviation over them (\"-\": one run); final = last epoch, "
           "best = highest over epochs; train hours summed over the runs, s/epoch their mean."
        << (changes ? " Growths and cuts: DyRep's graph changes per run, mean over the seeds; parameters as the "
                      "group's first run ended."
                    : "")
        << (r.int8.empty() ? ""
                           : " Int8: post-training quantization of the fused model (sgs quantize; configuration " +
                                 join(r.int8, ", ") +
                                 "), test accuracy and the drop from its fp32 accuracy, over the runs quantized.")
        << "\n";
  }
  if (!r.against.empty()) {
    against_table(out, r, "final test accuracy", [](const ReportGroup& g) -> const Comparison& { return g.against; });
    for (size_t q = 0; q < r.int8.size(); ++q)
      against_table(out, r, "int8 test accuracy (" + r.int8[q] + ")",
                    [q](const ReportGroup& g) -> const Comparison& { return g.int8[q].against; });
  }
  if (!r.excluded.empty()) {
    out << "\n## Not averaged: " << r.excluded.size() << " run" << (r.excluded.size() == 1 ? "" : "s")
        << " not completed\n\n| run | status | epochs | error |\n|---|---|---|---|\n";
    for (const auto& e : r.excluded)
      out << "| " << md_cell(e.name) << " | " << e.status << " | " << e.epochs << " | " << md_cell(e.error) << " |\n";
  }
  return out.str();
}

std::string format_csv(const Report& r) {
  std::ostringstream out;
  std::vector<std::string> header{"status", "group"};
  for (const auto& k : r.keys) header.push_back(k);
  for (const char* h : {"n", "seeds", "final_test_acc_mean", "final_test_acc_std", "final_val_acc_mean",
                        "final_val_acc_std", "best_acc_mean", "best_acc_std", "best_on", "train_hours",
                        "train_seconds_per_epoch", "parameters", "parameters_fused", "epochs", "error", "against",
                        "difference", "ci_low", "ci_high", "p", "p_holm", "test", "test_n", "test_note"})
    header.push_back(h);
  // Per int8 configuration: its accuracy, drop and comparison with the reference.
  const std::vector<std::string> int8_columns{"int8_test_acc", "int8_drop", "int8_difference", "int8_ci_low",
                                              "int8_ci_high",  "int8_p",    "int8_p_holm"};
  for (const auto& q : r.int8)
    for (const auto& h : int8_columns) header.push_back(h + "." + q);
  for (auto& h : header) h = csv_field(h);
  out << join(header, ",") << "\n";
  auto hours = [](double h) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", h);
    return std::string(buf);
  };
  auto std_text = [](const Stat& s) { return s.n() > 1 ? fixed(s.std) : std::string(); };
  auto full = [](double v) {  // unrounded
    if (!std::isfinite(v)) return std::string();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  auto mean_text = [](const Stat& s) { return s.n() > 0 ? fixed(s.mean) : std::string(); };
  for (const auto& g : r.groups) {
    std::vector<std::string> row{to_string(RunStatus::Completed), g.label};
    for (const auto& kv : g.values) row.push_back(kv.second.is_null() ? "" : value_label(kv.second));
    for (const auto& s : {mean_text(g.final_test_acc), std_text(g.final_test_acc), mean_text(g.final_val_acc),
                          std_text(g.final_val_acc), mean_text(g.best_acc), std_text(g.best_acc)})
      row.push_back(s);
    row.insert(row.begin() + 2 + static_cast<long>(r.keys.size()),
               {std::to_string(g.runs.size()), seeds_text(g.seeds, " ")});
    row.push_back(g.best_on);
    row.push_back(hours(g.train_hours));
    row.push_back(full(g.epoch_seconds.mean));
    row.push_back(integer_text(g.parameters));
    row.push_back(integer_text(g.parameters_fused));
    row.push_back("");
    row.push_back("");
    const auto& c = g.against;
    const bool compared = !r.against.empty() && !g.is_reference;
    row.push_back(r.against.empty() ? "" : g.is_reference ? "reference" : r.against);
    for (double v : {c.difference, c.ci_low, c.ci_high, c.p, c.p_holm}) row.push_back(compared ? full(v) : "");
    row.push_back(compared ? c.test : "");
    row.push_back(compared ? std::to_string(c.n) : "");
    row.push_back(compared ? c.note : "");
    for (const auto& q : g.int8) {
      row.push_back(mean_text(q.acc));
      row.push_back(mean_text(q.drop));
      const auto& d = q.against;
      for (double v : {d.difference, d.ci_low, d.ci_high, d.p, d.p_holm}) row.push_back(compared ? full(v) : "");
    }
    for (auto& f : row) f = csv_field(f);
    out << join(row, ",") << "\n";
  }
  for (const auto& e : r.excluded) {
    std::vector<std::string> row{e.status, e.name};
    for (size_t k = 0; k < r.keys.size(); ++k) row.push_back("");
    for (int i = 0; i < 13; ++i) row.push_back("");
    row.push_back(std::to_string(e.epochs));
    row.push_back(e.error);
    for (size_t i = 0; i < 9 + int8_columns.size() * r.int8.size(); ++i) row.push_back("");
    for (auto& f : row) f = csv_field(f);
    out << join(row, ",") << "\n";
  }
  return out.str();
}

Json format_json(const Report& r) {
  auto num = [](double v) { return std::isfinite(v) ? Json(v) : Json(); };
  Json groups = Json::array();
  auto comparison_json = [&](const ReportGroup& g, const Comparison& c) {
    if (g.is_reference || r.against.empty()) return Json();
    return Json{{"difference", num(c.difference)}, {"ci_low", num(c.ci_low)}, {"ci_high", num(c.ci_high)},
                {"t", num(c.t)},                   {"df", num(c.df)},         {"p", num(c.p)},
                {"p_holm", num(c.p_holm)},         {"test", c.test},          {"n", c.n},
                {"n_reference", c.n_reference},    {"note", c.note}};
  };
  for (const auto& g : r.groups) {
    Json keys = Json::object();
    for (const auto& [k, v] : g.values) keys[k] = v;
    Json int8 = Json::object();
    for (size_t q = 0; q < r.int8.size(); ++q)
      int8[r.int8[q]] = Json{{"test_acc", stat_json(g.int8[q].acc)},
                             {"drop", stat_json(g.int8[q].drop)},
                             {"against", comparison_json(g, g.int8[q].against)}};
    groups.push_back(Json{{"label", g.label},
                          {"keys", keys},
                          {"n", g.runs.size()},
                          {"runs", g.runs},
                          {"seeds", g.seeds},
                          {"final_test_acc", stat_json(g.final_test_acc)},
                          {"final_val_acc", stat_json(g.final_val_acc)},
                          {"final_train_acc", stat_json(g.final_train_acc)},
                          {"best_acc", stat_json(g.best_acc)},
                          {"best_on", g.best_on},
                          {"train_hours", g.train_hours},
                          {"parameters", num(g.parameters)},
                          {"parameters_fused", num(g.parameters_fused)},
                          {"growths", g.growths},
                          {"cuts", g.cuts},
                          {"train_seconds_per_epoch", stat_json(g.epoch_seconds)},
                          {"int8", int8},
                          {"against", comparison_json(g, g.against)}});
  }
  Json excluded = Json::array();
  for (const auto& e : r.excluded)
    excluded.push_back(
        Json{{"run", e.name}, {"file", e.file}, {"status", e.status}, {"error", e.error}, {"epochs", e.epochs}});
  return Json{{"accuracy_unit", "percent"}, {"std", "sample (n - 1)"}, {"keys", r.keys}, {"against", r.against}, {"int8", r.int8},
              {"groups", groups},           {"excluded", excluded},      {"warnings", r.warnings}};
}

}  // namespace sgs::analysis
