#include "report.h"

#include <sgs/errors.h>
#include <sgs/run_file.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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

std::string fixed2(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
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

bool any_val(const Report& r) {
  return std::any_of(r.groups.begin(), r.groups.end(), [](const ReportGroup& g) { return g.final_val_acc.n() > 0; });
}

}  // namespace

std::string mean_std_text(const Stat& s) {
  if (s.n() == 0) return "-";
  return fixed2(s.mean) + " ± " + (s.n() > 1 ? fixed2(s.std) : std::string("-"));
}

namespace {

// Each group against the reference: paired over the seeds both ran, else
// Welch; Holm over the table's comparisons.
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
  std::map<std::string, double> by_seed;
  std::vector<double> all_ref;
  for (size_t i = 0; i < reference.seeds.size(); ++i) {
    if (!std::isfinite(reference.run_test_acc[i])) continue;
    by_seed.emplace(value_label(reference.seeds[i]), reference.run_test_acc[i]);
    all_ref.push_back(reference.run_test_acc[i]);
  }
  if (all_ref.empty()) {
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
  std::vector<Comparison*> family;
  for (auto& g : report.groups) {
    if (g.is_reference) continue;
    std::vector<double> mine, paired_mine, paired_ref;
    std::set<std::string> used;
    for (size_t i = 0; i < g.seeds.size(); ++i) {
      const double v = g.run_test_acc[i];
      if (!std::isfinite(v)) continue;
      mine.push_back(v);
      const std::string seed = value_label(g.seeds[i]);
      auto it = by_seed.find(seed);
      if (it != by_seed.end() && used.insert(seed).second) {
        paired_mine.push_back(v);
        paired_ref.push_back(it->second);
      }
    }
    if (!paired_mine.empty()) {
      g.against = paired_t(paired_mine, paired_ref);
      if (g.against.tested()) g.against.note = std::to_string(paired_mine.size()) + " shared seeds";
    } else {
      g.against = welch_t(mine, all_ref);
      if (g.against.tested())
        g.against.note = "no shared seed; " + std::to_string(mine.size()) + " vs " + std::to_string(all_ref.size()) + " runs";
    }
    family.push_back(&g.against);
  }
  holm(family);
}

}  // namespace

Report make_report(const std::vector<RunData>& runs, const std::vector<std::string>& by, const std::string& against,
                   const std::string& int8) {
  Report report;
  report.int8 = int8;
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
    std::vector<double> test, val, train, best, int8_acc, int8_drop;
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
      auto q = r.deploy.find("int8/" + int8);
      if (q != r.deploy.end()) {
        int8_acc.push_back(100 * q->second.value("int8_acc"));
        int8_drop.push_back(100 * q->second.value("int8_drop"));
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
    out.int8_test_acc = make_stat(int8_acc);
    out.int8_drop = make_stat(int8_drop);
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
  bool int8 = false;     // some group's runs were quantized
  for (const auto& g : r.groups) {
    changes = changes || g.growths > 0 || g.cuts > 0;
    int8 = int8 || g.int8_test_acc.n() > 0;
  }
  if (!r.groups.empty()) {
    out << "| method | n | final test acc (%) | " << (val ? "final val acc (%) | " : "") << best_header(r)
        << " | train hours | parameters | parameters fused |" << (changes ? " growths | cuts |" : "")
        << (int8 ? " int8 test acc (%) | int8 drop (points) |" : "") << "\n";
    out << "|---|---|---|" << (val ? "---|" : "") << "---|---|---|---|" << (changes ? "---|---|" : "")
        << (int8 ? "---|---|" : "") << "\n";
    const bool mixed = best_header(r) == "best acc (%)";
    for (const auto& g : r.groups) {
      out << "| " << md_cell(g.label) << " | " << g.runs.size() << " | " << mean_std_text(g.final_test_acc) << " | ";
      if (val) out << mean_std_text(g.final_val_acc) << " | ";
      out << mean_std_text(g.best_acc) << (mixed && !g.best_on.empty() ? " (" + g.best_on + ")" : "") << " | "
          << hours_text(g.train_hours) << " | " << count_text(g.parameters) << " | " << count_text(g.parameters_fused)
          << " |";
      if (changes) out << " " << number_text(g.growths) << " | " << number_text(g.cuts) << " |";
      if (int8) out << " " << mean_std_text(g.int8_test_acc) << " | " << mean_std_text(g.int8_drop) << " |";
      out << "\n";
    }
    out << "\nn = runs in the group; mean ± sample standard deviation over them (\"-\": one run); final = last epoch, "
           "best = highest over epochs; train hours summed over the runs."
        << (changes ? " Growths and cuts: DyRep's graph changes per run, mean over the seeds; parameters as the "
                      "group's first run ended."
                    : "")
        << (int8 ? " Int8: post-training quantization (sgs quantize, configuration " + r.int8 +
                       "), the drop from the fp32 model in percentage points, over the runs quantized."
                 : "")
        << "\n";
  }
  if (!r.against.empty()) {
    size_t tests = 0;
    for (const auto& g : r.groups) tests += g.against.tested() ? 1 : 0;
    out << "\n## Against " << md_cell(r.against)
        << ": final test accuracy, difference in percentage points\n\n"
           "| method | difference | 95 % interval | p | p (Holm) | test |\n|---|---|---|---|---|---|\n";
    for (const auto& g : r.groups) {
      if (g.is_reference) continue;
      const auto& c = g.against;
      out << "| " << md_cell(g.label) << " | " << signed2(c.difference) << " | "
          << (c.tested() ? "[" + signed2(c.ci_low) + ", " + signed2(c.ci_high) + "]" : "-") << " | "
          << p_text(c.p) << " | " << p_text(c.p_holm) << " | " << (c.tested() ? c.test + ", " : "") << md_cell(c.note)
          << " |\n";
    }
    out << "\nTwo-sided t-tests: paired over the seeds both groups ran (the same seed gives the same initial "
           "weights, data order and augmentation), Welch's where they share none; p (Holm) adjusted over the "
        << tests << " test" << (tests == 1 ? "" : "s") << " of this table.\n";
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
                        "final_val_acc_std", "best_acc_mean", "best_acc_std", "best_on", "train_hours", "parameters",
                        "parameters_fused", "epochs", "error", "against", "difference", "ci_low", "ci_high", "p",
                        "p_holm", "test", "test_n", "test_note", "int8_test_acc", "int8_drop"})
    header.push_back(h);
  for (auto& h : header) h = csv_field(h);
  out << join(header, ",") << "\n";
  auto hours = [](double h) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", h);
    return std::string(buf);
  };
  auto std_text = [](const Stat& s) { return s.n() > 1 ? fixed2(s.std) : std::string(); };
  auto full = [](double v) {  // unrounded
    if (!std::isfinite(v)) return std::string();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  auto mean_text = [](const Stat& s) { return s.n() > 0 ? fixed2(s.mean) : std::string(); };
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
    row.push_back(mean_text(g.int8_test_acc));
    row.push_back(mean_text(g.int8_drop));
    for (auto& f : row) f = csv_field(f);
    out << join(row, ",") << "\n";
  }
  for (const auto& e : r.excluded) {
    std::vector<std::string> row{e.status, e.name};
    for (size_t k = 0; k < r.keys.size(); ++k) row.push_back("");
    for (int i = 0; i < 12; ++i) row.push_back("");
    row.push_back(std::to_string(e.epochs));
    row.push_back(e.error);
    for (int i = 0; i < 11; ++i) row.push_back("");
    for (auto& f : row) f = csv_field(f);
    out << join(row, ",") << "\n";
  }
  return out.str();
}

Json format_json(const Report& r) {
  auto num = [](double v) { return std::isfinite(v) ? Json(v) : Json(); };
  Json groups = Json::array();
  for (const auto& g : r.groups) {
    Json keys = Json::object();
    for (const auto& [k, v] : g.values) keys[k] = v;
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
                          {"int8_test_acc", stat_json(g.int8_test_acc)},
                          {"int8_drop", stat_json(g.int8_drop)},
                          {"against", g.is_reference || r.against.empty()
                                          ? Json()
                                          : Json{{"difference", num(g.against.difference)},
                                                 {"ci_low", num(g.against.ci_low)},
                                                 {"ci_high", num(g.against.ci_high)},
                                                 {"t", num(g.against.t)},
                                                 {"df", num(g.against.df)},
                                                 {"p", num(g.against.p)},
                                                 {"p_holm", num(g.against.p_holm)},
                                                 {"test", g.against.test},
                                                 {"n", g.against.n},
                                                 {"n_reference", g.against.n_reference},
                                                 {"note", g.against.note}}}});
  }
  Json excluded = Json::array();
  for (const auto& e : r.excluded)
    excluded.push_back(
        Json{{"run", e.name}, {"file", e.file}, {"status", e.status}, {"error", e.error}, {"epochs", e.epochs}});
  return Json{{"accuracy_unit", "percent"}, {"std", "sample (n - 1)"}, {"keys", r.keys}, {"against", r.against}, {"int8", r.int8},
              {"groups", groups},           {"excluded", excluded},      {"warnings", r.warnings}};
}

}  // namespace sgs::analysis
