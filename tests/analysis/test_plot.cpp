#include <doctest/doctest.h>

#include "analysis/fake_runs.h"
#include "support/support.h"

#include <sgs/errors.h>
#include <sgs/version.h>

#if SGS_WITH_OPENCV
#include "analysis/plot.h"

#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

using namespace sgs;
using namespace sgs::test;
using namespace sgs::analysis;
namespace fs = std::filesystem;

namespace {

const std::vector<FakeLayer> kLayers{{"features.0", 3}, {"features.4", 3}, {"features.8", 3}};

std::vector<std::string> lines(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count_of(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + part.size())) ++n;
  return n;
}

// The SVG drawn beside a PNG: its size, closed elements, and drawn on
// (lines or shapes, and text).
void check_svg(const fs::path& png, cv::Size size) {
  fs::path svg = png;
  svg.replace_extension(".svg");
  REQUIRE(fs::exists(svg));
  const std::string text = read_all(svg);
  CHECK(text.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                       std::to_string(size.width) + "\" height=\"" + std::to_string(size.height) + "\"",
                   0) == 0);
  CHECK(text.size() > 7);
  CHECK(text.substr(text.size() - 7) == "</svg>\n");
  CHECK(count_of(text, "<text ") == count_of(text, "</text>"));
  CHECK(count_of(text, "<text ") > 3);
  CHECK(count_of(text, "<line ") + count_of(text, "<rect ") > 20);
  CHECK(text.find('&') == text.find("&amp;"));  // every & escaped (or none at all)
}

// The PNG's size, that it is drawn on (coloured pixels, not only white),
// and its SVG twin.
cv::Size png_size(const fs::path& file) {
  cv::Mat img = cv::imread(file.string(), cv::IMREAD_COLOR);
  REQUIRE_FALSE(img.empty());
  cv::Mat grey;
  cv::extractChannel(img, grey, 0);
  CHECK(cv::countNonZero(grey < 250) > 500);
  check_svg(file, img.size());
  return img.size();
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// Baseline and MI runs (3 layers, 3 epochs, MI with 3 scaling updates) for seeds 0, 1.
void write_pair(const fs::path& dir) {
  for (int seed = 0; seed < 2; ++seed) {
    FakeRun b{fake_config("none", seed)};
    b.test_acc = {0.5, 0.6, 0.7 + 0.01 * seed};
    b.layers = kLayers;
    write_fake_run(dir / "baseline" / ("seed=" + std::to_string(seed)), b);
    FakeRun s{fake_config("mutual_information", seed)};
    s.test_acc = {0.5, 0.65, 0.75 + 0.01 * seed};
    s.layers = kLayers;
    s.scaling_updates = 3;
    write_fake_run(dir / "mi" / ("seed=" + std::to_string(seed)), s);
  }
}

}  // namespace

TEST_CASE("plot: matrix grid sizes follow the layout") {
  // 3 panels of two 3x3 heatmaps (168 px boxes): 40 + 3 * 372 + 120 wide, 60 + 226 + 20 high.
  CHECK(matrix_grid_size(3, 2, 3) == cv::Size(1276, 306));
  // 13 layers, 4 per row, 4 rows.
  CHECK(matrix_grid_size(13, 2, 3) == cv::Size(40 + 4 * 372 + 120, 60 + 4 * 226 + 20));
  // A 7x7 kernel: cells of 40 px, 280 px boxes.
  CHECK(matrix_grid_size(2, 1, 7) == cv::Size(40 + 2 * 300 + 120, 60 + 338 + 20));
  CHECK(line_chart_size() == cv::Size(1100, 600));
  CHECK(file_part("search/mi/k=5,seed=0") == "search_mi_k5_seed0");
}

TEST_CASE("plot: scaling heatmaps at the first and last update, with their numbers") {
  TempDir dir("plot_scalings");
  write_pair(dir.path());
  auto run = read_run((dir / "mi" / "seed=0" / "run.h5").string());
  run.name = "mi/seed=0";
  auto files = plot_scalings(run, dir.path().string());
  REQUIRE(files.size() == 3);
  CHECK(files[0] == (dir / "scalings_mi_seed0.png").string());
  CHECK(files[1] == (dir / "scalings_mi_seed0.svg").string());
  CHECK(png_size(files[0]) == cv::Size(1276, 306));
  auto csv = lines(files[2]);
  REQUIRE(csv.size() == 1 + 3 * 2 * 9);
  CHECK(csv[0] == "layer,index,which,epoch,row,col,value");
  CHECK(csv[1] == "features.0,0,first,1,0,0,0.6");   // 0.5 + 0.1 * epoch 1
  CHECK(csv[18] == "features.0,0,last,3,2,2,1.6");   // 0.8 + 0.1 * 8
  CHECK(csv[19] == "features.4,1,first,1,0,0,1.6");  // + 1 for layer 1

  auto baseline = read_run((dir / "baseline" / "seed=0" / "run.h5").string());
  CHECK(plot_scalings(baseline, dir.path().string()).empty());

  // One update (a fixed matrix): one heatmap per layer; a 7x7 stem widens every box.
  FakeRun fixed{fake_config("fixed", 0)};
  fixed.test_acc = {0.5};
  fixed.layers = {{"stem", 7}, {"layer1.0", 3}};
  fixed.scaling_updates = 1;
  auto one = read_run(write_fake_run(dir / "fixed", fixed).string());
  one.name = "fixed";
  auto f = plot_scalings(one, dir.path().string());
  REQUIRE(f.size() == 3);
  CHECK(png_size(f[0]) == matrix_grid_size(2, 1, 7));
  CHECK(lines(f[2]).size() == 1 + 49 + 9);
}

TEST_CASE("plot: make_plots draws what the runs support: kernel magnitudes beside the baseline, curves") {
  TempDir dir("plot_all");
  write_pair(dir / "runs");
  FakeRun running{fake_config("mutual_information", 2)};  // scalings and curves so far; no kernel magnitudes
  running.test_acc = {0.5};
  running.layers = kLayers;
  running.scaling_updates = 1;
  running.status = "running";
  write_fake_run(dir / "runs" / "mi" / "seed=2", running);
  auto found = find_runs({(dir / "runs").string()});
  REQUIRE(found.runs.size() == 5);
  auto files = make_plots(found.runs, (dir / "out").string());
  std::set<std::string> expected;
  for (const char* stem : {"scalings_mi_seed0", "scalings_mi_seed1", "scalings_mi_seed2", "kernel_magnitude_mi_seed0",
                           "kernel_magnitude_mi_seed1", "curves_loss", "curves_accuracy", "accuracy_difference",
                           "accuracy_vs_cost"})
    for (const char* ext : {".png", ".svg", ".csv"}) expected.insert(std::string(stem) + ext);
  CHECK(names_in(dir / "out") == expected);  // no temporary files left, no accuracy_vs_k (one k)
  CHECK(files.size() == expected.size());
  // The difference from the baseline group, as sgs report --against computes it.
  CHECK(png_size(dir / "out" / "accuracy_difference.png") == cv::Size(1100, 600));
  auto diff = lines(dir / "out" / "accuracy_difference.csv");
  REQUIRE(diff.size() == 2);
  CHECK(diff[0] == "method,against,difference,ci_low,ci_high,p,p_holm,test,n,note");
  CHECK(diff[1].rfind("strategy=mutual_information,strategy=none,", 0) == 0);

  // Fig. 6: the baseline of the same seed on the left, the SGS run on the right, after epoch 3.
  CHECK(png_size(dir / "out" / "kernel_magnitude_mi_seed1.png") == matrix_grid_size(3, 2, 3));
  auto km = lines(dir / "out" / "kernel_magnitude_mi_seed1.csv");
  REQUIRE(km.size() == 1 + 3 * 2 * 9);
  CHECK(km[1] == "features.0,0,without SGS,3,0,0,1.6");
  CHECK(km[10] == "features.0,0,with SGS,3,0,0,1.6");

  for (const char* name : {"curves_loss.png", "curves_accuracy.png"})
    CHECK(png_size(dir / "out" / name) == cv::Size(1100, 600));
  auto acc = lines(dir / "out" / "curves_accuracy.csv");
  CHECK(acc.size() == 1 + 4 * 2 * 3 + 2);  // 4 runs x (test, train) x 3 epochs, the running run's epoch
  CHECK(acc[0] == "run,group,metric,epoch,value");
  CHECK(acc[1] == "baseline/seed=0,strategy=none,test_acc,1,50");
  CHECK(std::count(acc.begin(), acc.end(), "mi/seed=1,strategy=mutual_information,test_acc,3,76") == 1);

  // Without an SGS run, the baseline's kernel magnitudes stand alone.
  auto solo = make_plots({found.runs[0]}, (dir / "solo").string());
  std::set<std::string> solo_files;
  for (const char* stem : {"kernel_magnitude_baseline_seed0", "curves_loss", "curves_accuracy"})
    for (const char* ext : {".png", ".svg", ".csv"}) solo_files.insert(std::string(stem) + ext);
  CHECK(names_in(dir / "solo") == solo_files);
  CHECK(png_size(dir / "solo" / "kernel_magnitude_baseline_seed0.png") == matrix_grid_size(3, 1, 3));
}

TEST_CASE("plot: accuracy vs k, mean and std over seeds (val accuracy of search runs), baseline apart") {
  TempDir dir("plot_k");
  const double val[2][3] = {{0.70, 0.72, 0.74}, {0.80, 0.78, 0.76}};  // per seed, for k = 2, 3, 4
  for (int seed = 0; seed < 2; ++seed) {
    for (int k = 2; k <= 4; ++k) {
      FakeRun r{fake_config("mutual_information", seed, k)};
      r.test_acc = {0.5, 0.6};
      r.val_acc = {0.5, val[seed][k - 2]};
      write_fake_run(dir / "search" / ("k=" + std::to_string(k) + ",seed=" + std::to_string(seed)), r);
    }
    FakeRun b{fake_config("none", seed)};
    b.test_acc = {0.5, 0.6};
    b.val_acc = {0.5, 0.70 + 0.02 * seed};
    write_fake_run(dir / "baseline" / ("seed=" + std::to_string(seed)), b);
  }
  FakeRun running{fake_config("mutual_information", 5, 7)};  // not completed: not on the curve
  running.test_acc = {0.1};
  running.val_acc = {0.1};
  running.status = "running";
  write_fake_run(dir / "search" / "k=7,seed=5", running);

  auto runs = find_runs({dir.path().string()}).runs;
  make_plots(runs, (dir / "out").string());
  CHECK(png_size(dir / "out" / "accuracy_vs_k.png") == cv::Size(1100, 600));
  auto csv = lines(dir / "out" / "accuracy_vs_k.csv");
  REQUIRE(csv.size() == 1 + 3 + 1);
  CHECK(csv[0] == "series,k,metric,n,mean,std");
  CHECK(csv[1] == "strategy=mutual_information,2,val_acc,2,75,7.071067812");
  CHECK(csv[2] == "strategy=mutual_information,3,val_acc,2,75,4.242640687");
  CHECK(csv[3] == "strategy=mutual_information,4,val_acc,2,75,1.414213562");
  CHECK(csv[4] == "baseline (2 runs),,val_acc,2,71,1.414213562");
}

TEST_CASE("plot: the CLI lists the files, a path without runs is one line and exit 2") {
  TempDir dir("plot_cli");
  write_pair(dir / "runs");
  auto out = run_sgs("plot " + (dir / "runs" / "mi" / "seed=0").string() + " --out " + (dir / "out").string(),
                     dir.path());
  CHECK(out.exit_code == 0);
  std::string listed;
  for (const char* stem : {"scalings_seed0", "kernel_magnitude_seed0", "curves_loss", "curves_accuracy"})
    for (const char* ext : {".png", ".svg", ".csv"}) listed += (dir / "out" / (std::string(stem) + ext)).string() + "\n";
  CHECK(out.out == listed);
  fs::create_directories(dir / "empty");
  auto empty = run_sgs("plot " + (dir / "empty").string() + " --out " + (dir / "out2").string(), dir.path());
  CHECK(empty.exit_code == 2);
  CHECK(empty.err == "sgs: error: " + (dir / "empty").string() + ": no run.h5 found\n");
  CHECK_FALSE(fs::exists(dir / "out2"));
  auto no_out = run_sgs("plot " + (dir / "runs").string(), dir.path());
  CHECK(no_out.exit_code == 2);
  CHECK(no_out.err.find("--out") != std::string::npos);
  CHECK_THROWS_AS(find_runs({(dir / "empty").string()}), ConfigError);
}

TEST_CASE("plot: a chart with more groups than its legend holds") {
  TempDir dir("plot_many");
  for (int i = 0; i < 30; ++i) {
    FakeRun r{fake_config("none", 0)};
    r.config["optimizer"]["lr"] = 0.01 * (i + 1);
    r.test_acc = {0.5, 0.5 + 0.01 * i};
    write_fake_run(dir / "runs" / ("lr" + std::to_string(i)), r);
  }
  auto files = make_plots(find_runs({(dir / "runs").string()}).runs, (dir / "out").string());
  std::set<std::string> expected;
  for (const char* stem : {"curves_loss", "curves_accuracy", "accuracy_vs_cost"})
    for (const char* ext : {".png", ".svg", ".csv"}) expected.insert(std::string(stem) + ext);
  CHECK(names_in(dir / "out") == expected);
  CHECK(png_size(dir / "out" / "curves_loss.png") == line_chart_size());
  CHECK(lines(dir / "out" / "curves_loss.csv").size() == 1 + 30 * 2 * 2);
}

TEST_CASE("plot: accuracy vs training cost and int8 vs fp32, group means with 95 % intervals, PNG and SVG") {
  TempDir dir("plot_cost_int8");
  // Three seeds of a baseline and of RepVGG, quantized per channel; RepVGG's per tensor too.
  const double fp32[2][3] = {{0.90, 0.91, 0.92}, {0.91, 0.93, 0.92}};
  const double int8[2][3] = {{0.89, 0.90, 0.91}, {0.90, 0.91, 0.93}};
  for (int m = 0; m < 2; ++m)
    for (int seed = 0; seed < 3; ++seed) {
      FakeRun r{fake_config(m == 0 ? "none" : "repvgg", seed)};
      r.test_acc = {0.5, 0.6, fp32[m][seed]};
      r.train_seconds = (m == 0 ? 30 : 60) + 3 * seed;  // 3 epochs: 10, 11, 12 s (baseline), 20, 21, 22 s
      r.int8_acc["per-channel_symmetric_minmax"] = int8[m][seed];
      if (m == 1) r.int8_acc["per-tensor_symmetric_minmax"] = 0.5;
      write_fake_run(dir / "runs" / (m == 0 ? "baseline" : "repvgg") / ("seed=" + std::to_string(seed)), r);
    }
  auto runs = find_runs({(dir / "runs").string()}).runs;
  const auto files = make_plots(runs, (dir / "out").string());
  for (const char* name : {"accuracy_vs_cost.png", "fp32_vs_int8.png"}) {
    CHECK(std::count(files.begin(), files.end(), (dir / "out" / name).string()) == 1);
    CHECK(png_size(dir / "out" / name) == line_chart_size());
  }
  // t_{0.975, 2} = 4.302652730, times the standard error (std 1 / sqrt 3).
  const double half = 4.302652730 / std::sqrt(3.0);
  auto cost = lines(dir / "out" / "accuracy_vs_cost.csv");
  REQUIRE(cost.size() == 3);
  CHECK(cost[0] ==
        "method,n,final_test_acc_mean,final_test_acc_ci_half,epoch_seconds_mean,epoch_seconds_ci_half,train_hours");
  CHECK(cost[1].rfind("strategy=none,3,91,", 0) == 0);
  CHECK(cost[2].rfind("strategy=repvgg,3,92,", 0) == 0);
  auto field = [](const std::string& line, size_t i) {
    std::stringstream in(line);
    std::string f;
    for (size_t k = 0; k <= i; ++k) std::getline(in, f, ',');
    return std::stod(f);
  };
  CHECK(field(cost[1], 3) == doctest::Approx(half).epsilon(1e-8));  // accuracies 90, 91, 92: std 1
  CHECK(field(cost[1], 4) == doctest::Approx(11.0));
  CHECK(field(cost[2], 4) == doctest::Approx(21.0));
  CHECK(field(cost[2], 5) == doctest::Approx(half).epsilon(1e-8));

  auto q = lines(dir / "out" / "fp32_vs_int8.csv");
  REQUIRE(q.size() == 4);  // baseline per channel, RepVGG per channel and per tensor
  CHECK(q[0] == "method,configuration,n,fp32_test_acc_mean,fp32_test_acc_ci_half,int8_test_acc_mean,"
                "int8_test_acc_ci_half,int8_drop_mean");
  CHECK(q[1].rfind("strategy=none,per-channel_symmetric_minmax,3,91,", 0) == 0);
  CHECK(field(q[1], 5) == doctest::Approx(90.0));
  CHECK(field(q[1], 6) == doctest::Approx(half).epsilon(1e-8));
  CHECK(q[3].rfind("strategy=repvgg,per-tensor_symmetric_minmax,3,92,", 0) == 0);
  CHECK(field(q[3], 5) == doctest::Approx(50.0));
  // The SVG carries the figure's text.
  const std::string svg = read_all(dir / "out" / "fp32_vs_int8.svg");
  CHECK(svg.find(">Int8 vs fp32 test accuracy of the fused model (mean, 95 % interval)</text>") != std::string::npos);
  CHECK(count_of(svg, "<circle ") >= 3);
}

#else

using namespace sgs::test;
namespace fs = std::filesystem;

TEST_CASE("plot: a build without OpenCV refuses sgs plot in one line naming OpenCV, exit 2") {
  TempDir dir("plot_without_opencv");
  FakeRun run{fake_config("none", 0)};
  run.test_acc = {0.5, 0.6};
  write_fake_run(dir / "run", run);
  auto out = run_sgs("plot " + (dir / "run").string() + " --out " + (dir / "out").string(), dir.path());
  CHECK(out.exit_code == 2);
  CHECK(out.err == "sgs: error: sgs plot needs OpenCV, which this build was configured without (SGS_WITH_OPENCV)\n");
  CHECK(out.out.empty());
  CHECK_FALSE(fs::exists(dir / "out"));
}

TEST_CASE("plot: figures as PNG and CSV (needs OpenCV)") {
  SGS_SKIP("this build was configured without OpenCV (SGS_WITH_OPENCV)");
}

#endif  // SGS_WITH_OPENCV
