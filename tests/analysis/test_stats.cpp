// sgs report --against: each group's final test accuracy against the
// reference group's, on fabricated run files. The t-tests are checked
// against SciPy's numbers (tests/reference/stats_reference.json, written by
// tests/reference/make_stats_reference.py), Holm's adjustment against a
// worked example.
#include <doctest/doctest.h>

#include "analysis/fake_runs.h"
#include "support/support.h"

#include "analysis/report.h"
#include "analysis/stats.h"

#include <sgs/config.h>
#include <sgs/errors.h>

#include <cmath>

using namespace sgs;
using namespace sgs::test;
using namespace sgs::analysis;

namespace {

const std::string kStatsReference = std::string(SGS_SOURCE_DIR) + "/tests/reference/stats_reference.json";

// Runs of `strategy` with these seeds and final test accuracies (percent).
void write_group(const std::filesystem::path& dir, const std::string& strategy, const std::vector<int64_t>& seeds,
                 const std::vector<double>& acc) {
  for (size_t i = 0; i < seeds.size(); ++i) {
    FakeRun r{fake_config(strategy, seeds[i])};
    r.test_acc = {0.5, acc[i] / 100};
    write_fake_run(dir / strategy / ("seed=" + std::to_string(seeds[i])), r);
  }
}

const ReportGroup& group_of(const Report& r, const std::string& strategy) {
  for (const auto& g : r.groups)
    if (g.label.find(strategy) != std::string::npos) return g;
  FAIL("no group of " << strategy);
  return r.groups.front();
}

}  // namespace

TEST_CASE("stats: paired and Welch t-tests of sgs report --against give SciPy's difference, interval, t, df and p") {
  const Json ref = read_json_file(kStatsReference);
  int checked = 0;
  for (const auto& c : ref.at("cases")) {
    INFO(c.at("name").get<std::string>());
    TempDir dir("stats_case");
    write_group(dir.path(), "mutual_information", c.at("a_seeds").get<std::vector<int64_t>>(),
                c.at("a").get<std::vector<double>>());
    write_group(dir.path(), "none", c.at("b_seeds").get<std::vector<int64_t>>(), c.at("b").get<std::vector<double>>());
    auto report = make_report(find_runs({dir.path().string()}).runs);
    REQUIRE(!report.against.empty());  // the baseline group is the default reference
    CHECK(group_of(report, "none").is_reference);
    const auto& cmp = group_of(report, "mutual_information").against;
    CHECK(cmp.test == c.at("test").get<std::string>());
    auto close = [](double ours, double theirs) { return std::abs(ours - theirs) <= 1e-9 * (1 + std::abs(theirs)); };
    for (const auto& [name, ours] : std::vector<std::pair<std::string, double>>{{"difference", cmp.difference},
                                                                                {"t", cmp.t},
                                                                                {"df", cmp.df},
                                                                                {"p", cmp.p},
                                                                                {"ci_low", cmp.ci_low},
                                                                                {"ci_high", cmp.ci_high}}) {
      INFO(name << ": ours " << ours << ", SciPy " << c.at(name).get<double>());
      CHECK(close(ours, c.at(name).get<double>()));
    }
    CHECK(cmp.p_holm == doctest::Approx(cmp.p));  // one comparison: Holm leaves p as it is
    ++checked;
  }
  CHECK(checked == 4);
}

TEST_CASE("stats: Holm's adjustment on a worked example, untested comparisons left out") {
  Comparison a, b, c, untested;
  a.test = b.test = c.test = "paired t";
  a.p = 0.01;
  b.p = 0.04;
  c.p = 0.03;
  std::vector<Comparison*> family{&a, &b, &c, &untested};
  holm(family);
  // Sorted 0.01, 0.03, 0.04 -> 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04).
  CHECK(a.p_holm == doctest::Approx(0.03));
  CHECK(c.p_holm == doctest::Approx(0.06));
  CHECK(b.p_holm == doctest::Approx(0.06));
  CHECK(std::isnan(untested.p_holm));
  Comparison big;
  big.test = "Welch t";
  big.p = 0.6;
  std::vector<Comparison*> two{&big, &a};
  holm(two);
  CHECK(a.p_holm == doctest::Approx(0.02));   // 2 * 0.01
  CHECK(big.p_holm == doctest::Approx(0.6));  // 1 * 0.6 (not below 0.02)
  Comparison x, y;
  x.test = y.test = "paired t";
  x.p = 0.7;
  y.p = 0.8;
  std::vector<Comparison*> capped{&x, &y};
  holm(capped);
  CHECK(x.p_holm == 1.0);  // min(1, 2 * 0.7)
  CHECK(y.p_holm == 1.0);
}

TEST_CASE("stats: sgs report --against in md, csv and json, a one-seed group, unshared seeds, a missing group") {
  TempDir dir("stats_report");
  write_group(dir.path(), "none", {0, 1, 2}, {90, 91, 95});
  write_group(dir.path(), "mutual_information", {0, 1, 2}, {93, 94, 92});
  write_group(dir.path(), "acb", {0}, {92});          // one seed, shared: a difference, no interval
  write_group(dir.path(), "dbb", {7, 8}, {91, 92.5});  // no shared seed: Welch
  auto report = make_report(find_runs({dir.path().string()}).runs);
  const auto& mi = group_of(report, "mutual_information").against;
  CHECK(mi.test == "paired t");
  CHECK(mi.note == "3 shared seeds");
  CHECK(mi.difference == doctest::Approx(1.0));
  const auto& acb = group_of(report, "acb").against;
  CHECK_FALSE(acb.tested());
  CHECK(acb.difference == doctest::Approx(2.0));
  CHECK(acb.note == "one shared seed: no interval");
  CHECK(std::isnan(acb.p_holm));
  const auto& dbb = group_of(report, "dbb").against;
  CHECK(dbb.test == "Welch t");
  CHECK(dbb.note == "no shared seed; 2 vs 3 runs");
  // Holm over the two tests.
  CHECK(std::min(mi.p_holm, dbb.p_holm) == doctest::Approx(std::min(1.0, 2 * std::min(mi.p, dbb.p))));

  auto md = run_sgs("report " + dir.path().string(), dir.path());
  REQUIRE(md.exit_code == 0);
  INFO(md.out);
  CHECK(md.out.find("## Against strategy=none") != std::string::npos);
  CHECK(md.out.find("| +1.00 | [") != std::string::npos);
  CHECK(md.out.find("| +2.00 | - | - | - | one shared seed: no interval |") != std::string::npos);
  CHECK(md.out.find("Welch t, no shared seed; 2 vs 3 runs") != std::string::npos);
  auto csv = run_sgs("report " + dir.path().string() + " --format csv", dir.path());
  REQUIRE(csv.exit_code == 0);
  CHECK(csv.out.find(",reference,") != std::string::npos);
  char p[64];
  std::snprintf(p, sizeof p, "%.17g", mi.p);
  CHECK(csv.out.find(p) != std::string::npos);  // unrounded
  auto json = run_sgs("report " + dir.path().string() + " --format json", dir.path());
  REQUIRE(json.exit_code == 0);
  const Json j = Json::parse(json.out);
  CHECK(j.at("against") == "strategy=none");
  bool found = false;
  for (const auto& g : j.at("groups"))
    if (g.at("label").get<std::string>().find("mutual_information") != std::string::npos) {
      CHECK(g.at("against").at("p").get<double>() == doctest::Approx(mi.p));
      CHECK(g.at("against").at("test") == "paired t");
      found = true;
    }
  CHECK(found);

  // Another reference by its label; one that does not exist is refused, naming the groups.
  auto other = run_sgs("report " + dir.path().string() + " --against strategy=dbb", dir.path());
  CHECK(other.exit_code == 0);
  CHECK(other.out.find("## Against strategy=dbb") != std::string::npos);
  auto missing = run_sgs("report " + dir.path().string() + " --against nosuch", dir.path());
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("--against: no group is labelled 'nosuch'") != std::string::npos);
  CHECK(missing.err.find("'strategy=none'") != std::string::npos);
}

TEST_CASE("stats: without a baseline group and without --against, no comparison is made") {
  TempDir dir("stats_none");
  write_group(dir.path(), "acb", {0, 1}, {90, 91});
  write_group(dir.path(), "dbb", {0, 1}, {91, 92});
  auto report = make_report(find_runs({dir.path().string()}).runs);
  CHECK(report.against.empty());
  CHECK(format_markdown(report).find("## Against") == std::string::npos);
}
