#include <doctest/doctest.h>

#include "analysis/fake_runs.h"
#include "support/support.h"

#include "analysis/report.h"

#include <sgs/errors.h>

#include <cmath>
#include <fstream>
#include <sstream>

using namespace sgs;
using namespace sgs::test;
using namespace sgs::analysis;

namespace {

// 3 seeds x {none, mutual_information}, one failed and one running MI run.
// Final test accuracies: none 90, 91, 95 (mean 92, sample std sqrt(7));
// MI 93, 94, 92 (mean 93, std 1). The best epoch is 1 point above the final.
void write_suite(const std::filesystem::path& dir) {
  const double none[] = {0.90, 0.91, 0.95}, mi[] = {0.93, 0.94, 0.92};
  for (int seed = 0; seed < 3; ++seed) {
    FakeRun b{fake_config("none", seed)};
    b.test_acc = {0.5, none[seed] + 0.01, none[seed]};
    if (seed == 1) b.config["threads"] = 2;  // run-specific: does not split the group
    write_fake_run(dir / "baseline" / ("seed=" + std::to_string(seed)), b);
    FakeRun s{fake_config("mutual_information", seed)};
    s.test_acc = {0.5, mi[seed] + 0.01, mi[seed]};
    s.parameters_fused = 900;
    write_fake_run(dir / "mi" / ("seed=" + std::to_string(seed)), s);
  }
  FakeRun failed{fake_config("mutual_information", 3)};
  failed.test_acc = {0.10};
  failed.status = "failed";
  failed.error = "dataset: boom | bang";
  write_fake_run(dir / "mi" / "seed=3", failed);
  FakeRun running{fake_config("mutual_information", 4)};
  running.test_acc = {0.05};
  running.status = "running";
  write_fake_run(dir / "mi" / "seed=4", running);
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\n') {
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  return rows;
}

size_t column(const std::vector<std::string>& header, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  FAIL("no column " << name);
  return 0;
}

}  // namespace

TEST_CASE("report: runs differing only by seed are grouped, mean and sample std, unfinished runs apart") {
  TempDir dir("report_group");
  write_suite(dir.path());
  auto found = find_runs({dir.path().string()});
  REQUIRE(found.runs.size() == 8);
  CHECK(found.warnings.empty());
  CHECK(found.runs[0].name == "baseline/seed=0");
  auto report = make_report(found.runs);
  // strategy.k is implied by the strategy's name (one value, its default, absent from "none"): not a column.
  CHECK(report.keys == std::vector<std::string>{"strategy.name"});
  REQUIRE(report.groups.size() == 2);
  const auto& mi = report.groups[0];
  const auto& none = report.groups[1];
  CHECK(mi.label == "strategy=mutual_information");
  CHECK(none.label == "strategy=none");
  CHECK(none.runs == std::vector<std::string>{"baseline/seed=0", "baseline/seed=1", "baseline/seed=2"});
  CHECK(mi.final_test_acc.n() == 3);  // the failed (10 %) and running (5 %) runs are not averaged in
  CHECK(mi.final_test_acc.mean == doctest::Approx(93.0));
  CHECK(mi.final_test_acc.std == doctest::Approx(1.0));
  CHECK(none.final_test_acc.mean == doctest::Approx(92.0));
  CHECK(none.final_test_acc.std == doctest::Approx(std::sqrt(7.0)));
  CHECK(none.best_acc.mean == doctest::Approx(93.0));
  CHECK(none.best_on == "test");
  CHECK(none.train_hours == doctest::Approx(3 * 360 / 3600.0));
  CHECK(none.parameters == 1000);
  CHECK(mi.parameters_fused == 900);
  REQUIRE(report.excluded.size() == 2);
  CHECK(report.excluded[0].name == "mi/seed=3");
  CHECK(report.excluded[0].status == "failed");
  CHECK(report.excluded[0].error == "dataset: boom | bang");
  CHECK(report.excluded[1].status == "running");
  CHECK(report.excluded[1].epochs == 1);

  const std::string md = format_markdown(report);
  CHECK(md.find("| strategy=mutual_information | 3 | 93.00 ± 1.00 | 94.00 ± 1.00 |") != std::string::npos);
  CHECK(md.find("| strategy=none | 3 | 92.00 ± 2.65 | 93.00 ± 2.65 |") != std::string::npos);
  CHECK(md.find("best test acc (%)") != std::string::npos);
  CHECK(md.find("## Not averaged: 2 runs not completed") != std::string::npos);
  CHECK(md.find("| mi/seed=3 | failed | 1 | dataset: boom \\| bang |") != std::string::npos);
  CHECK(md.find("| mi/seed=4 | running | 1 |") != std::string::npos);
}

TEST_CASE("report: csv and json carry the same numbers") {
  TempDir dir("report_formats");
  write_suite(dir.path());
  auto report = make_report(find_runs({dir.path().string()}).runs);

  auto rows = parse_csv(format_csv(report));
  REQUIRE(rows.size() == 1 + 2 + 2);
  const auto& h = rows[0];
  for (const auto& r : rows) CHECK(r.size() == h.size());
  CHECK(h[0] == "status");
  CHECK(h[2] == "strategy.name");
  CHECK(h[3] == "n");
  CHECK(rows[1][column(h, "group")] == "strategy=mutual_information");
  CHECK(rows[1][column(h, "strategy.name")] == "mutual_information");
  CHECK(rows[2][column(h, "n")] == "3");
  CHECK(rows[2][column(h, "seeds")] == "0 1 2");
  CHECK(rows[2][column(h, "final_test_acc_mean")] == "92.00");
  CHECK(rows[2][column(h, "final_test_acc_std")] == "2.65");
  CHECK(rows[2][column(h, "final_val_acc_mean")] == "");
  CHECK(rows[2][column(h, "best_on")] == "test");
  CHECK(rows[2][column(h, "parameters")] == "1000");
  CHECK(rows[3][column(h, "status")] == "failed");
  CHECK(rows[3][column(h, "error")] == "dataset: boom | bang");
  CHECK(rows[4][column(h, "status")] == "running");
  CHECK(rows[4][column(h, "epochs")] == "1");

  auto json = Json::parse(format_json(report).dump());
  REQUIRE(json["groups"].size() == 2);
  const auto& none = json["groups"][1];
  CHECK(none["label"] == "strategy=none");
  CHECK(none["n"] == 3);
  CHECK(none["final_test_acc"]["mean"].get<double>() == doctest::Approx(92.0));
  CHECK(none["final_test_acc"]["std"].get<double>() == doctest::Approx(std::sqrt(7.0)));
  CHECK(none["final_test_acc"]["values"].size() == 3);
  CHECK(none["final_val_acc"]["mean"].is_null());
  CHECK(none["keys"]["strategy.name"] == "none");
  CHECK(json["groups"][0]["keys"]["strategy.name"] == "mutual_information");
  REQUIRE(json["excluded"].size() == 2);
  CHECK(json["excluded"][0]["status"] == "failed");
  CHECK(json["accuracy_unit"] == "percent");
}

TEST_CASE("report: --by groups by the given keys, one seed has no std") {
  TempDir dir("report_by");
  for (double k : {3.0, 5.0})
    for (int seed = 0; seed < 2; ++seed) {
      FakeRun r{fake_config("mutual_information", seed, k)};
      r.test_acc = {0.8 + 0.01 * k + 0.01 * seed};
      r.val_acc = {0.7 + 0.01 * k};
      write_fake_run(dir / ("k=" + std::to_string(static_cast<int>(k)) + ",seed=" + std::to_string(seed)), r);
    }
  FakeRun lr{fake_config("mutual_information", 0, 3)};
  lr.config["optimizer"]["lr"] = 0.1;
  lr.test_acc = {0.5};
  write_fake_run(dir / "lr", lr);
  auto runs = find_runs({dir.path().string()}).runs;

  auto by_default = make_report(runs);
  CHECK(by_default.keys == std::vector<std::string>{"optimizer.lr", "strategy.k"});
  REQUIRE(by_default.groups.size() == 3);
  CHECK(by_default.groups[0].label == "lr=0.05, k=3");
  CHECK(by_default.groups[1].label == "lr=0.05, k=5");
  CHECK(by_default.groups[2].label == "lr=0.1, k=3");
  CHECK(by_default.groups[0].best_on == "val");
  CHECK(by_default.groups[2].best_on == "test");  // the lr run has no val split
  CHECK(by_default.groups[0].final_val_acc.mean == doctest::Approx(73.0));
  CHECK(mean_std_text(by_default.groups[2].final_test_acc) == "50.00 ± -");
  CHECK(std::isnan(by_default.groups[2].final_test_acc.std));
  const auto md = format_markdown(by_default);
  CHECK(md.find("final val acc (%) | best acc (%) |") != std::string::npos);
  CHECK(md.find("| lr=0.1, k=3 | 1 | 50.00 ± - | - | 50.00 ± - (test) |") != std::string::npos);

  auto by_k = make_report(runs, {"strategy.k"});
  REQUIRE(by_k.groups.size() == 2);
  CHECK(by_k.groups[0].label == "k=3");
  CHECK(by_k.groups[0].runs.size() == 3);
  CHECK(by_k.groups[1].final_test_acc.mean == doctest::Approx(85.5));
  CHECK(by_k.groups[1].final_test_acc.std == doctest::Approx(std::sqrt(0.5)));

  auto by_name = make_report(runs, {"strategy.name", "strategy.k"});
  CHECK(by_name.groups[1].label == "strategy=mutual_information, k=5");

  try {
    make_report(runs, {"strategy.kk"});
    FAIL("no error for an unknown --by key");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).rfind("--by: no run has the config key 'strategy.kk'; did you mean 'strategy.k'", 0) == 0);
  }
}

TEST_CASE("report: the CLI prints md, csv and json, bad input is one line and exit 2") {
  TempDir dir("report_cli");
  write_suite(dir / "suite");
  std::filesystem::create_directories(dir / "empty");
  std::filesystem::create_directories(dir / "suite" / "broken");
  { std::ofstream(dir / "suite" / "broken" / "run.h5", std::ios::binary) << "not hdf5"; }

  auto out = run_sgs("report " + (dir / "suite").string(), dir.path());
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("| strategy=none | 3 | 92.00 ± 2.65 |") != std::string::npos);
  CHECK(out.err.find("warning: " + (dir / "suite" / "broken" / "run.h5").string()) != std::string::npos);

  auto json = run_sgs("report " + (dir / "suite").string() + " --format json", dir.path());
  REQUIRE(json.exit_code == 0);
  CHECK(Json::parse(json.out)["groups"].size() == 2);

  auto csv = run_sgs("report " + (dir / "suite").string() + " --format csv --by strategy.name", dir.path());
  REQUIRE(csv.exit_code == 0);
  CHECK(parse_csv(csv.out)[0][2] == "strategy.name");

  auto missing = run_sgs("report " + (dir / "nowhere").string(), dir.path());
  CHECK(missing.exit_code == 2);
  CHECK(missing.err == "sgs: error: " + (dir / "nowhere").string() + ": no such file or directory\n");
  auto empty = run_sgs("report " + (dir / "suite").string() + " " + (dir / "empty").string(), dir.path());
  CHECK(empty.exit_code == 2);
  CHECK(empty.err == "sgs: error: " + (dir / "empty").string() + ": no run.h5 found\n");
  auto format = run_sgs("report " + (dir / "suite").string() + " --format xml", dir.path());
  CHECK(format.exit_code == 2);
  CHECK(format.err == "sgs: error: --format: expected md, csv or json, got 'xml'\n");
  auto by = run_sgs("report " + (dir / "suite").string() + " --by strategy.nam", dir.path());
  CHECK(by.exit_code == 2);
  CHECK(by.err.find("did you mean 'strategy.name'") != std::string::npos);
}

TEST_CASE("report: a plugin's key away from its default is shown even with one value (a search's choice)") {
  TempDir dir("report_choice");
  for (int seed = 0; seed < 2; ++seed) {
    FakeRun b{fake_config("none", seed)};
    b.test_acc = {0.5, 0.9};
    write_fake_run(dir.path() / "baseline" / ("seed=" + std::to_string(seed)), b);
    FakeRun s{fake_config("mutual_information", seed, 3)};  // the default k is 5
    s.test_acc = {0.5, 0.91};
    write_fake_run(dir.path() / "mi" / ("seed=" + std::to_string(seed)), s);
  }
  auto report = make_report(find_runs({dir.path().string()}).runs);
  CHECK(report.keys == std::vector<std::string>{"strategy.name", "strategy.k"});
  REQUIRE(report.groups.size() == 2);
  CHECK(report.groups[0].label == "strategy=mutual_information, k=3");
  CHECK(report.groups[1].label == "strategy=none");
}

TEST_CASE("report: a run recorded before a key existed groups with later runs that have it at its default") {
  TempDir dir("report_new_key");
  for (int seed = 0; seed < 2; ++seed) {
    FakeRun old_run{fake_config("none", seed)};  // as an earlier build recorded it: no precision, no memory_format
    old_run.test_acc = {0.5, 0.9};
    write_fake_run(dir.path() / "old" / ("seed=" + std::to_string(seed)), old_run);
    FakeRun new_run{fake_config("none", seed + 2)};
    new_run.config["precision"] = "fp32";  // the defaults, written out as this build records them
    new_run.config["memory_format"] = "contiguous";
    new_run.test_acc = {0.5, 0.92};
    write_fake_run(dir.path() / "new" / ("seed=" + std::to_string(seed)), new_run);
    FakeRun bf16{fake_config("none", seed)};
    bf16.config["precision"] = "bf16";
    bf16.test_acc = {0.5, 0.91};
    write_fake_run(dir.path() / "bf16" / ("seed=" + std::to_string(seed)), bf16);
  }
  auto report = make_report(find_runs({dir.path().string()}).runs);
  CHECK(report.keys == std::vector<std::string>{"precision"});
  REQUIRE(report.groups.size() == 2);
  CHECK(report.groups[0].label == "precision=bf16");
  CHECK(report.groups[1].label == "precision=fp32");
  CHECK(report.groups[1].final_test_acc.n() == 4);
}

TEST_CASE("report: int8 accuracy in every configuration recorded, against the baseline, paired, Holm per table") {
  TempDir dir("report_int8");
  // Final test accuracy and per-channel int8 accuracy per seed; per-tensor only for seeds 0 and 1.
  const double none[] = {0.90, 0.91, 0.95}, mi[] = {0.93, 0.94, 0.92}, acb[] = {0.92, 0.925, 0.955};
  const double none8[] = {0.89, 0.905, 0.94}, mi8[] = {0.925, 0.93, 0.915}, acb8[] = {0.80, 0.85, 0.83};
  auto write = [&](const std::string& strategy, const double* acc, const double* acc8, int seed) {
    FakeRun r{fake_config(strategy, seed)};
    r.test_acc = {0.5, acc[seed]};
    r.train_seconds = 100 + 10 * seed;  // 2 epochs: 50, 55, 60 s per epoch
    r.int8_acc["per-channel_symmetric_minmax"] = acc8[seed];
    if (seed < 2) r.int8_acc["per-tensor_symmetric_minmax"] = acc8[seed] - 0.1;
    write_fake_run(dir / strategy / ("seed=" + std::to_string(seed)), r);
  };
  for (int seed = 0; seed < 3; ++seed) {
    write("none", none, none8, seed);
    write("mutual_information", mi, mi8, seed);
    write("acb", acb, acb8, seed);
  }
  const auto runs = find_runs({dir.path().string()}).runs;
  auto report = make_report(runs);
  REQUIRE(report.int8 == std::vector<std::string>{"per-channel_symmetric_minmax", "per-tensor_symmetric_minmax"});
  REQUIRE(report.groups.size() == 3);
  CHECK(report.against == "strategy=none");
  auto percent = [](const double* v, double shift = 0) {
    return std::vector<double>{100 * (v[0] + shift), 100 * (v[1] + shift), 100 * (v[2] + shift)};
  };
  const ReportGroup* g_mi = nullptr;
  const ReportGroup* g_acb = nullptr;
  for (const auto& g : report.groups) {
    if (g.label == "strategy=mutual_information") g_mi = &g;
    if (g.label == "strategy=acb") g_acb = &g;
    CHECK(g.epoch_seconds.mean == doctest::Approx(55.0));
  }
  REQUIRE(g_mi != nullptr);
  REQUIRE(g_acb != nullptr);
  REQUIRE(g_mi->int8.size() == 2);
  CHECK(g_mi->int8[0].acc.mean == doctest::Approx((92.5 + 93 + 91.5) / 3));
  CHECK(g_mi->int8[0].drop.mean == doctest::Approx((0.5 + 1 + 0.5) / 3));
  CHECK(g_mi->int8[1].acc.n() == 2);
  // Each int8 family: paired over the seeds, Holm over its own two tests.
  for (size_t q = 0; q < 2; ++q) {
    const size_t n = q == 0 ? 3 : 2;
    const double shift = q == 0 ? 0 : -0.1;
    auto cut = [n](std::vector<double> v) { return std::vector<double>(v.begin(), v.begin() + static_cast<long>(n)); };
    Comparison mi_c = paired_t(cut(percent(mi8, shift)), cut(percent(none8, shift)));
    Comparison acb_c = paired_t(cut(percent(acb8, shift)), cut(percent(none8, shift)));
    std::vector<Comparison*> family{&mi_c, &acb_c};
    holm(family);
    CHECK(g_mi->int8[q].against.test == "paired t");
    CHECK(g_mi->int8[q].against.n == static_cast<int64_t>(n));
    CHECK(g_mi->int8[q].against.difference == doctest::Approx(mi_c.difference));
    CHECK(g_mi->int8[q].against.ci_low == doctest::Approx(mi_c.ci_low));
    CHECK(g_mi->int8[q].against.p == doctest::Approx(mi_c.p));
    CHECK(g_mi->int8[q].against.p_holm == doctest::Approx(mi_c.p_holm));
    CHECK(g_acb->int8[q].against.p_holm == doctest::Approx(acb_c.p_holm));
  }
  // The fp32 family is its own.
  Comparison fp32 = paired_t(percent(mi), percent(none));
  CHECK(g_mi->against.difference == doctest::Approx(fp32.difference));

  const std::string md = format_markdown(report);
  CHECK(md.find("| int8 per-channel (%) | drop (points) | int8 per-tensor (%) | drop (points) |") != std::string::npos);
  CHECK(md.find("## Against strategy=none: int8 test accuracy (per-channel_symmetric_minmax), difference") !=
        std::string::npos);
  CHECK(md.find("## Against strategy=none: int8 test accuracy (per-tensor_symmetric_minmax), difference") !=
        std::string::npos);
  CHECK(md.find("train s/epoch") != std::string::npos);

  auto rows = parse_csv(format_csv(report));
  const auto& h = rows[0];
  for (const auto& r : rows) CHECK(r.size() == h.size());
  size_t mi_row = 0;
  for (size_t i = 1; i < rows.size(); ++i)
    if (rows[i][column(h, "group")] == "strategy=mutual_information") mi_row = i;
  REQUIRE(mi_row > 0);
  CHECK(std::stod(rows[mi_row][column(h, "int8_difference.per-channel_symmetric_minmax")]) ==
        doctest::Approx(g_mi->int8[0].against.difference));
  CHECK(std::stod(rows[mi_row][column(h, "train_seconds_per_epoch")]) == doctest::Approx(55.0));
  auto json = Json::parse(format_json(report).dump());
  CHECK(json["groups"][1]["int8"]["per-tensor_symmetric_minmax"]["test_acc"]["n"] == 2);

  // Asked for one configuration: only its columns; one no run recorded: refused, naming those recorded.
  auto one = make_report(runs, {}, "", {"per-tensor_symmetric_minmax"});
  CHECK(one.int8.size() == 1);
  CHECK(format_markdown(one).find("per-channel") == std::string::npos);
  CHECK_THROWS_WITH_AS(make_report(runs, {}, "", {"per-channel_asymmetric_mse"}),
                       "--int8: no completed run has a record of 'per-channel_asymmetric_mse' (sgs quantize writes "
                       "them); recorded: per-channel_symmetric_minmax, per-tensor_symmetric_minmax",
                       ConfigError);
  // A reference that was not quantized: no int8 test, and the table says why.
  for (int seed = 0; seed < 3; ++seed) {
    FakeRun r{fake_config("repvgg", seed)};
    r.test_acc = {0.5, 0.9};
    write_fake_run(dir / "repvgg" / ("seed=" + std::to_string(seed)), r);
  }
  auto plain = make_report(find_runs({dir.path().string()}).runs, {}, "strategy=repvgg");
  REQUIRE(plain.groups.size() == 4);
  for (const auto& g : plain.groups) {
    CHECK_FALSE(g.int8[0].against.tested());
    if (!g.is_reference) CHECK(g.int8[0].against.note == "'strategy=repvgg' was not quantized");
  }
}
