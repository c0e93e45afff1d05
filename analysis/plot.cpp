#include "plot.h"

#include "draw.h"
#include "report.h"

#include <sgs/config.h>
#include <sgs/io.h>
#include <sgs/errors.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace sgs::analysis {

namespace {

using draw::Align;

// Matrix grid layout (pixels).
constexpr int kMargin = 20, kTitleBand = 60, kPad = 10, kPanelTitle = 26, kCaption = 22, kGap = 16, kBarBand = 120;
// Line charts.
constexpr int kChartW = 1100, kChartH = 600, kLegendW = 340;
const cv::Rect kChartArea(90, 60, kChartW - 90 - kLegendW - 35, kChartH - 60 - 75);

int cell_size(int64_t max_kernel) { return std::max<int>(40, 168 / static_cast<int>(std::max<int64_t>(1, max_kernel))); }
int box_size(int64_t max_kernel) { return cell_size(max_kernel) * static_cast<int>(std::max<int64_t>(1, max_kernel)); }
int panel_width(size_t per, int box) { return 2 * kPad + static_cast<int>(per) * box + static_cast<int>(per - 1) * kGap; }
int panel_height(int box) { return kPanelTitle + kCaption + box + kPad; }

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string num(double v) {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

void two_line_title(draw::Canvas& img, const std::string& title, const std::string& subtitle) {
  std::string t = title, s = subtitle;
  const double ts = draw::fit(t, img.width() - 2 * kMargin, 0.65, 0.4);
  draw::text(img, t, {img.width() / 2, 26}, ts, draw::kBlack, Align::Centre, Align::End, 2);
  const double ss = draw::fit(s, img.width() - 2 * kMargin, 0.5, 0.35);
  draw::text(img, s, {img.width() / 2, 50}, ss, draw::kBlack, Align::Centre, Align::End);
}

void write_csv(const std::string& path, const std::string& content, std::vector<std::string>& written) {
  write_file_atomically(path, content);
  written.push_back(path);
}

std::string epoch_caption(const std::string& which, int64_t epoch) {
  return which + (epoch <= 0 ? ": at start" : ": after ep. " + std::to_string(epoch));
}

// Runs' final (or all) values of "val_acc" when they all have it, else "test_acc".
std::string eval_metric(const std::vector<const RunData*>& runs, const std::string& what) {
  const bool val = std::all_of(runs.begin(), runs.end(), [&](const RunData* r) { return r->has_metric("val_" + what); });
  return (val ? "val_" : "test_") + what;
}

}  // namespace

std::string file_part(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')
      out += c;
    else if (c == '=')
      continue;
    else if (out.empty() || out.back() != '_')
      out += '_';
  }
  while (!out.empty() && (out.back() == '_' || out.back() == '.')) out.pop_back();
  while (!out.empty() && (out.front() == '_' || out.front() == '.')) out.erase(out.begin());
  return out.empty() ? "run" : out;
}

int matrix_grid_columns(size_t per_panel) { return per_panel >= 2 ? 4 : 6; }

cv::Size matrix_grid_size(size_t panels, size_t per_panel, int64_t max_kernel) {
  per_panel = std::max<size_t>(1, per_panel);
  const int box = box_size(max_kernel);
  const int cols = static_cast<int>(std::max<size_t>(1, std::min<size_t>(panels, matrix_grid_columns(per_panel))));
  const int rows = static_cast<int>((std::max<size_t>(1, panels) + cols - 1) / cols);
  return {2 * kMargin + cols * panel_width(per_panel, box) + kBarBand, kTitleBand + rows * panel_height(box) + kMargin};
}

cv::Size line_chart_size() { return {kChartW, kChartH}; }

void write_matrix_figure(const std::string& out_dir, const std::string& base, const std::string& title,
                         const std::string& colour_label, const std::vector<MatrixPanel>& panels,
                         const std::vector<MatrixRow>& rows, std::vector<std::string>& written) {
  size_t per = 1;
  int64_t max_kernel = 1;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& p : panels) {
    per = std::max(per, p.matrices.size());
    for (const auto& [caption, m] : p.matrices) {
      max_kernel = std::max({max_kernel, m.rows, m.cols});
      for (double v : m.values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  draw::widen(lo, hi);
  const cv::Size size = matrix_grid_size(panels.size(), per, max_kernel);
  draw::Canvas img(size);
  const auto newline = title.find('\n');
  two_line_title(img, title.substr(0, newline), newline == std::string::npos ? "" : title.substr(newline + 1));
  const int box = box_size(max_kernel), pw = panel_width(per, box), ph = panel_height(box);
  const int cols = static_cast<int>(std::min<size_t>(panels.size(), matrix_grid_columns(per)));
  for (size_t i = 0; i < panels.size(); ++i) {
    const int px = kMargin + static_cast<int>(i % cols) * pw, py = kTitleBand + static_cast<int>(i / cols) * ph;
    std::string t = panels[i].title;
    const double ts = draw::fit(t, pw - 2 * kPad, 0.55, 0.35);
    draw::text(img, t, {px + pw / 2, py + kPanelTitle - 8}, ts, draw::kBlack, Align::Centre, Align::End);
    for (size_t j = 0; j < panels[i].matrices.size(); ++j) {
      const auto& [caption, m] = panels[i].matrices[j];
      const int bx = px + kPad + static_cast<int>(j) * (box + kGap), by = py + kPanelTitle + kCaption;
      std::string c = caption;
      const double cs = draw::fit(c, box, 0.45, 0.35);
      draw::text(img, c, {bx + box / 2, by - 6}, cs, draw::kBlack, Align::Centre, Align::End);
      const int cell = box / static_cast<int>(std::max<int64_t>({1, m.rows, m.cols}));
      const int w = cell * static_cast<int>(m.cols), h = cell * static_cast<int>(m.rows);
      draw::heatmap(img, cv::Rect(bx + (box - w) / 2, by + (box - h) / 2, w, h), m, lo, hi);
    }
  }
  const int grid_rows = static_cast<int>((panels.size() + cols - 1) / cols);
  const cv::Rect bar(size.width - kBarBand + 14, kTitleBand + kPanelTitle + kCaption, 22,
                     grid_rows * ph - kPanelTitle - kCaption - kPad);
  draw::colour_bar(img, bar, lo, hi, colour_label);
  const std::string stem = (fs::path(out_dir) / base).string();
  img.save(stem, written);
  std::ostringstream csv;
  csv << "layer,index,which,epoch,row,col,value\n";
  for (const auto& r : rows)
    csv << csv_field(r.layer) << "," << r.index << "," << csv_field(r.which) << "," << r.epoch << "," << r.row << ","
        << r.col << "," << num(r.value) << "\n";
  write_csv(stem + ".csv", csv.str(), written);
}

namespace {
void add_rows(std::vector<MatrixRow>& rows, const LayerData& layer, const std::string& which, int64_t epoch,
              const Matrix& m) {
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) rows.push_back({layer.name, which, layer.index, epoch, r, c, m.at(r, c)});
}
std::string kernel_text(const LayerData& l) {
  return l.name + " (" + std::to_string(l.kernel[0]) + "x" + std::to_string(l.kernel[1]) + ")";
}
}  // namespace

std::vector<std::string> plot_scalings(const RunData& run, const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<MatrixPanel> panels;
  std::vector<MatrixRow> rows;
  bool several = false;
  for (const auto& l : run.layers) {
    const LayerScalings g = layer_scalings(l);
    if (g.scaling.empty()) continue;
    MatrixPanel p{kernel_text(l), {}};
    const size_t last = g.scaling.size() - 1;
    const std::string first_name = last > 0 ? "first" : "update";
    p.matrices.emplace_back(epoch_caption(first_name, g.epoch[0]), g.scaling[0]);
    add_rows(rows, l, "first", g.epoch[0], g.scaling[0]);
    if (last > 0) {
      several = true;
      p.matrices.emplace_back(epoch_caption("last", g.epoch[last]), g.scaling[last]);
      add_rows(rows, l, "last", g.epoch[last], g.scaling[last]);
    }
    panels.push_back(std::move(p));
  }
  if (panels.empty()) return written;
  const std::string title = std::string("Spatial gradient scaling G_l") +
                            (several ? " at the first and the last update" : "") + "\n" + run.name + " (" +
                            run.strategy() + ")";
  write_matrix_figure(out_dir, "scalings_" + file_part(run.name), title, "scaling", panels, rows, written);
  return written;
}

std::vector<std::string> plot_kernel_magnitude(const RunData& run, const RunData* baseline,
                                               const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<MatrixPanel> panels;
  std::vector<MatrixRow> rows;
  const std::string mine = run.strategy() == "none" ? "without SGS" : run.has_scalings() ? "with SGS" : run.strategy();
  for (const auto& l : run.layers) {
    if (l.kernel_magnitude.empty()) continue;
    MatrixPanel p{kernel_text(l), {}};
    if (baseline != nullptr) {
      for (const auto& b : baseline->layers)
        if (b.name == l.name && !b.kernel_magnitude.empty()) {
          const auto epoch = static_cast<int64_t>(b.kernel_magnitude.size()) - 1;
          p.matrices.emplace_back("without SGS", b.kernel_magnitude.back());
          add_rows(rows, b, "without SGS", epoch, b.kernel_magnitude.back());
        }
    }
    const auto epoch = static_cast<int64_t>(l.kernel_magnitude.size()) - 1;
    p.matrices.emplace_back(mine, l.kernel_magnitude.back());
    add_rows(rows, l, mine, epoch, l.kernel_magnitude.back());
    panels.push_back(std::move(p));
  }
  if (panels.empty()) return written;
  int64_t epochs = 0;
  for (const auto& l : run.layers) epochs = std::max(epochs, static_cast<int64_t>(l.kernel_magnitude.size()) - 1);
  std::string subtitle = run.name + " (" + run.strategy() + ", epoch " + std::to_string(epochs) + ")";
  if (baseline != nullptr) subtitle += " vs " + baseline->name + " (" + baseline->strategy() + ")";
  write_matrix_figure(out_dir, "kernel_magnitude_" + file_part(run.name),
                      "Kernel magnitude after the last epoch (mean |W| over channels / its mean)\n" + subtitle,
                      "kernel magnitude", panels, rows, written);
  return written;
}

// RepOpt's per-channel scales (table "repopt"; docs/run_file.md), averaged
// over the output channels, per 3x3 layer in network order: at the first
// row (dashed) and the last (solid). A target run has one row: the scales
// it trained with.
std::vector<std::string> plot_repopt_scales(const RunData& run, const std::string& out_dir) {
  std::vector<std::string> written;
  struct Row {
    std::string layer;
    int64_t index = 0, epoch = 0;
    std::string which;
    double conv = NAN, one = NAN, identity = NAN;
  };
  std::vector<Row> rows;
  auto mean_of = [](const RunColumn& c, int64_t r) {
    const int64_t n = c.shape.size() == 2 ? c.shape[1] : 0;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += c.values[static_cast<size_t>(r * n + i)];
    return n > 0 ? sum / static_cast<double>(n) : NAN;
  };
  int64_t position = 0;
  for (const auto& l : run.layers) {
    auto conv = l.columns.find("scale_conv"), one = l.columns.find("scale_1x1"), id = l.columns.find("scale_identity"),
         ep = l.columns.find("scales_epoch");
    if (conv == l.columns.end() || one == l.columns.end() || id == l.columns.end() || ep == l.columns.end() ||
        conv->second.rows() == 0 || conv->second.rows() != ep->second.rows())
      continue;
    ++position;
    const int64_t last = conv->second.rows() - 1;
    for (const auto& [which, r] : {std::pair<std::string, int64_t>{"first", 0}, {"last", last}}) {
      if (which == "last" && r == 0) continue;
      rows.push_back({l.name, position, static_cast<int64_t>(ep->second.value(r)), which, mean_of(conv->second, r),
                      mean_of(one->second, r), mean_of(id->second, r)});
    }
  }
  if (rows.empty()) return written;
  const bool both = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.which == "last"; });
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : rows)
    for (double v : {r.conv, r.one, r.identity})
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  draw::Canvas img(line_chart_size());
  draw::Axes axes;
  axes.area = kChartArea;
  axes.fit_x(1, static_cast<double>(position), /*integers=*/true);
  axes.x0 = 0.5;
  axes.x1 = static_cast<double>(position) + 0.5;
  axes.fit_y(std::min(lo, 0.0), hi);
  axes.draw(img, "RepOpt scales per 3x3 layer, mean over channels: " + run.name, "layer (network order)",
            "scale (dashed: at the start)");
  std::vector<draw::LegendEntry> entries;
  size_t colour = 0;
  for (const auto& [name, field] : {std::pair<std::string, double Row::*>{"s_conv (3x3)", &Row::conv},
                                    {"s_1x1", &Row::one}, {"s_identity", &Row::identity}}) {
    const auto c = draw::palette(colour++);
    // With a first and a last row: the first dashed, the last solid; one row alone: solid.
    for (const std::string which : {"first", "last"}) {
      std::vector<double> x, y;
      int64_t epoch = 0;
      for (const auto& r : rows)
        if (r.which == which && std::isfinite(r.*field)) {
          x.push_back(static_cast<double>(r.index));
          y.push_back(r.*field);
          epoch = r.epoch;
        }
      if (x.empty()) continue;
      const bool dashed = both && which == "first";
      draw::polyline(img, axes, x, y, c, 2, dashed, true);
      entries.push_back({name + ", " + epoch_caption(which, epoch), c, dashed, true});
    }
  }
  draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
  const std::string stem = (fs::path(out_dir) / ("repopt_scales_" + file_part(run.name))).string();
  img.save(stem, written);
  std::ostringstream csv;
  csv << "layer,index,which,scales_epoch,scale_conv_mean,scale_1x1_mean,scale_identity_mean\n";
  for (const auto& r : rows)
    csv << csv_field(r.layer) << "," << r.index << "," << r.which << "," << r.epoch << "," << num(r.conv) << ","
        << num(r.one) << "," << num(r.identity) << "\n";
  write_csv(stem + ".csv", csv.str(), written);
  return written;
}

std::vector<std::string> plot_accuracy_vs_k(const std::vector<RunData>& runs, const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<const RunData*> with_k, baselines;
  std::set<double> ks;
  for (const auto& r : runs) {
    if (!r.completed()) continue;
    const auto flat = flatten_config(r.config);
    auto it = flat.find("strategy.k");
    if (it != flat.end() && it->second.is_number()) {
      with_k.push_back(&r);
      ks.insert(it->second.get<double>());
    } else if (r.strategy() == "none") {
      baselines.push_back(&r);
    }
  }
  if (ks.size() < 2) return written;
  struct Point {
    double k;
    Stat stat;
  };
  struct Series {
    std::string label, metric;
    std::vector<Point> points;  // by k
    Stat baseline;              // for a baseline series (no points)
  };
  std::vector<Series> series, base_series;
  const auto grouping = group_runs(with_k, {}, {"strategy.k"});
  for (const auto& g : grouping.groups) {
    std::vector<const RunData*> members;
    for (size_t i : g.members) members.push_back(with_k[i]);
    const std::string strategy = "strategy=" + members[0]->strategy();
    const bool named = g.label.rfind(strategy, 0) == 0;
    Series s{named ? g.label : strategy + ", " + g.label, eval_metric(members, "acc"), {}, {}};
    std::map<double, std::vector<double>> by_k;
    for (const auto* r : members)
      by_k[r->config["strategy"]["k"].get<double>()].push_back(100 * r->final_metric(s.metric));
    for (const auto& [k, values] : by_k) s.points.push_back({k, make_stat(values)});
    series.push_back(std::move(s));
  }
  if (!baselines.empty()) {
    const auto bg = group_runs(baselines);
    for (const auto& g : bg.groups) {
      std::vector<const RunData*> members;
      for (size_t i : g.members) members.push_back(baselines[i]);
      const std::string runs_text = " (" + std::to_string(members.size()) + " run" + (members.size() == 1 ? "" : "s") + ")";
      Series s{(bg.groups.size() == 1 ? std::string("baseline") : "baseline: " + g.label) + runs_text,
               eval_metric(members, "acc"), {}, {}};
      std::vector<double> values;
      for (const auto* r : members) values.push_back(100 * r->final_metric(s.metric));
      s.baseline = make_stat(values);
      if (s.baseline.n() > 0) base_series.push_back(std::move(s));
    }
  }
  std::set<std::string> metrics;
  double lo = INFINITY, hi = -INFINITY;
  auto extend = [&](const Stat& st) {
    if (st.n() == 0) return;
    const double d = std::isfinite(st.std) ? st.std : 0;
    lo = std::min(lo, st.mean - d);
    hi = std::max(hi, st.mean + d);
  };
  for (const auto& s : series) {
    metrics.insert(s.metric);
    for (const auto& p : s.points) extend(p.stat);
  }
  for (const auto& s : base_series) {
    metrics.insert(s.metric);
    extend(s.baseline);
  }
  const bool mixed = metrics.size() > 1;
  auto legend_label = [&](const Series& s) {
    return mixed ? s.label + (s.metric == "val_acc" ? " (val)" : " (test)") : s.label;
  };
  const bool integer_k =
      std::all_of(ks.begin(), ks.end(), [](double k) { return std::abs(k - std::round(k)) < 1e-9; });
  draw::Canvas img(line_chart_size());
  draw::Axes axes;
  axes.area = kChartArea;
  axes.fit_x(*ks.begin(), *ks.rbegin(), integer_k);
  axes.fit_y(lo, hi);
  const std::string ylabel = mixed ? "final accuracy (%)" : *metrics.begin() == "val_acc" ? "final val accuracy (%)"
                                                                                          : "final test accuracy (%)";
  axes.draw(img, "Accuracy vs k (mean +/- sample std over seeds)", "k", ylabel);
  std::vector<draw::LegendEntry> entries;
  size_t colour = 0;
  for (const auto& s : series) {
    const auto c = draw::palette(colour++);
    std::vector<double> x, y;
    for (const auto& p : s.points) {
      x.push_back(p.k);
      y.push_back(p.stat.mean);
      if (p.stat.n() > 1)
        draw::error_bar(img, axes, {p.k, p.stat.mean - p.stat.std}, {p.k, p.stat.mean + p.stat.std}, c);
    }
    draw::polyline(img, axes, x, y, c, 2, false, true);
    entries.push_back({legend_label(s), c, false, true});
  }
  for (const auto& s : base_series) {
    const auto c = draw::palette(colour++);
    draw::polyline(img, axes, {axes.x0, axes.x1}, {s.baseline.mean, s.baseline.mean}, c, 2, true, false);
    entries.push_back({legend_label(s), c, true, false});
  }
  draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
  const std::string stem = (fs::path(out_dir) / "accuracy_vs_k").string();
  img.save(stem, written);
  std::ostringstream csv;
  csv << "series,k,metric,n,mean,std\n";
  for (const auto& s : series)
    for (const auto& p : s.points)
      csv << csv_field(s.label) << "," << num(p.k) << "," << s.metric << "," << p.stat.n() << "," << num(p.stat.mean)
          << "," << num(p.stat.std) << "\n";
  for (const auto& s : base_series)
    csv << csv_field(s.label) << ",," << s.metric << "," << s.baseline.n() << "," << num(s.baseline.mean) << ","
        << num(s.baseline.std) << "\n";
  write_csv(stem + ".csv", csv.str(), written);
  return written;
}

std::vector<std::string> plot_curves(const std::vector<RunData>& runs, const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<const RunData*> with_epochs;
  for (const auto& r : runs)
    if (!r.epochs.empty()) with_epochs.push_back(&r);
  if (with_epochs.empty()) return written;
  const auto grouping = group_runs(with_epochs);
  std::vector<size_t> group_of(with_epochs.size());
  for (size_t g = 0; g < grouping.groups.size(); ++g)
    for (size_t i : grouping.groups[g].members) group_of[i] = g;
  int64_t max_epoch = 1, min_epoch = 1;
  for (const auto* r : with_epochs) {
    max_epoch = std::max(max_epoch, *std::max_element(r->epochs.begin(), r->epochs.end()));
    min_epoch = std::min(min_epoch, *std::min_element(r->epochs.begin(), r->epochs.end()));
  }
  const bool markers = max_epoch <= 30;
  for (const std::string what : {"loss", "accuracy"}) {
    const std::string suffix = what == "loss" ? "loss" : "acc";
    const double unit = what == "loss" ? 1.0 : 100.0;
    std::set<std::string> eval_kinds;
    double lo = INFINITY, hi = -INFINITY;
    struct Line {
      size_t run;
      std::string metric;
      bool dashed;
    };
    std::vector<Line> lines;
    for (size_t i = 0; i < with_epochs.size(); ++i) {
      const auto* r = with_epochs[i];
      const std::string eval = r->has_metric("val_" + suffix) ? "val_" + suffix : "test_" + suffix;
      for (const auto& [metric, dashed] : {std::pair<std::string, bool>{eval, false}, {"train_" + suffix, true}}) {
        if (!r->has_metric(metric)) continue;
        if (!dashed) eval_kinds.insert(metric.substr(0, metric.find('_')));
        lines.push_back({i, metric, dashed});
        for (double v : r->metrics.at(metric))
          if (std::isfinite(v)) lo = std::min(lo, unit * v), hi = std::max(hi, unit * v);
      }
    }
    if (lines.empty()) continue;
    draw::Canvas img(line_chart_size());
    draw::Axes axes;
    axes.area = kChartArea;
    axes.fit_x(static_cast<double>(min_epoch), static_cast<double>(max_epoch), true);
    axes.fit_y(lo, hi);
    const std::string eval_name = join(std::vector<std::string>(eval_kinds.rbegin(), eval_kinds.rend()), " or ");
    const std::string title = what == "loss" ? "Loss per epoch" : "Accuracy per epoch";
    axes.draw(img, title + " (" + std::to_string(with_epochs.size()) + " run" + (with_epochs.size() == 1 ? "" : "s") + ")",
              "epoch", what == "loss" ? "loss" : "accuracy (%)");
    std::ostringstream csv;
    csv << "run,group,metric,epoch,value\n";
    for (const auto& line : lines) {
      const auto* r = with_epochs[line.run];
      std::vector<double> x, y;
      for (size_t e = 0; e < r->epochs.size(); ++e) {
        x.push_back(static_cast<double>(r->epochs[e]));
        y.push_back(unit * r->metrics.at(line.metric)[e]);
        csv << csv_field(r->name) << "," << csv_field(grouping.groups[group_of[line.run]].label) << "," << line.metric
            << "," << r->epochs[e] << "," << num(y.back()) << "\n";
      }
      draw::polyline(img, axes, x, y, draw::palette(group_of[line.run]), 2, line.dashed, markers);
    }
    std::vector<draw::LegendEntry> entries;
    entries.push_back({eval_name + " (solid)", draw::kBlack, false, false});
    entries.push_back({"train (dashed)", draw::kBlack, true, false});
    for (size_t g = 0; g < grouping.groups.size(); ++g) {
      const size_t n = grouping.groups[g].members.size();
      entries.push_back({grouping.groups[g].label + (n > 1 ? " (" + std::to_string(n) + " runs)" : ""),
                         draw::palette(g), false, markers});
    }
    draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
    const std::string stem = (fs::path(out_dir) / ("curves_" + what)).string();
    img.save(stem, written);
    write_csv(stem + ".csv", csv.str(), written);
  }
  return written;
}

std::vector<std::string> plot_differences(const Report& report, const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<const ReportGroup*> shown;
  for (const auto& g : report.groups)
    if (!g.is_reference && std::isfinite(g.against.difference)) shown.push_back(&g);
  if (report.against.empty() || shown.empty()) return written;
  double lo = 0, hi = 0;  // the zero line always in view
  for (const auto* g : shown) {
    const auto& c = g->against;
    lo = std::min({lo, c.difference, c.tested() ? c.ci_low : c.difference});
    hi = std::max({hi, c.difference, c.tested() ? c.ci_high : c.difference});
  }
  draw::Canvas img(line_chart_size());
  draw::Axes axes;
  axes.area = kChartArea;
  axes.fit_x(1, static_cast<double>(shown.size()), /*integers=*/true);
  axes.x0 = 0.5;
  axes.x1 = static_cast<double>(shown.size()) + 0.5;
  axes.fit_y(lo, hi);
  axes.draw(img, "Final test accuracy minus " + report.against + " (95 % interval)", "method (legend)",
            "difference (percentage points)");
  draw::polyline(img, axes, {axes.x0, axes.x1}, {0.0, 0.0}, draw::kBlack, 1, true, false);
  std::vector<draw::LegendEntry> entries;
  char buf[160];
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto& c = shown[i]->against;
    const auto colour = draw::palette(i);
    const double x = static_cast<double>(i + 1);
    if (c.tested()) {
      draw::error_bar(img, axes, {x, c.ci_low}, {x, c.ci_high}, colour, 8);
      std::snprintf(buf, sizeof buf, "%zu %s: %+.2f [%+.2f, %+.2f], p %.2g (Holm %.2g)", i + 1, shown[i]->label.c_str(),
                    c.difference, c.ci_low, c.ci_high, c.p, c.p_holm);
    } else {
      std::snprintf(buf, sizeof buf, "%zu %s: %+.2f (%s)", i + 1, shown[i]->label.c_str(), c.difference,
                    c.note.c_str());
    }
    draw::polyline(img, axes, {x}, {c.difference}, colour, 2, false, true);
    entries.push_back({buf, colour, false, true});
  }
  draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
  const std::string stem = (fs::path(out_dir) / "accuracy_difference").string();
  img.save(stem, written);
  std::ostringstream csv;
  csv << "method,against,difference,ci_low,ci_high,p,p_holm,test,n,note\n";
  for (const auto* g : shown) {
    const auto& c = g->against;
    csv << csv_field(g->label) << "," << csv_field(report.against) << "," << num(c.difference) << "," << num(c.ci_low)
        << "," << num(c.ci_high) << "," << num(c.p) << "," << num(c.p_holm) << "," << c.test << "," << c.n << ","
        << csv_field(c.note) << "\n";
  }
  write_csv(stem + ".csv", csv.str(), written);
  return written;
}

namespace {

// A group's mean with its 95 % interval (NaN half width for one run).
struct Estimate {
  double mean = NAN, half = NAN;
  double lo() const { return std::isfinite(half) ? mean - half : mean; }
  double hi() const { return std::isfinite(half) ? mean + half : mean; }
};
Estimate estimate(const Stat& s) { return {s.mean, mean_interval_half_width(s.values)}; }

std::string estimate_text(const Estimate& e, const char* format) {
  char a[64], b[64];
  std::snprintf(a, sizeof a, format, e.mean);
  if (!std::isfinite(e.half)) return a;
  std::snprintf(b, sizeof b, format, e.half);
  return std::string(a) + " +/- " + b;
}

// One point per group with error bars both ways; `x`, `y` give each point.
struct ScatterPoint {
  std::string label;
  Estimate x, y;
  size_t colour = 0;
  bool hollow = false;
};
void scatter(draw::Canvas& img, const draw::Axes& axes, const std::vector<ScatterPoint>& points) {
  for (const auto& p : points) {
    const auto c = draw::palette(p.colour);
    if (std::isfinite(p.y.half)) draw::error_bar(img, axes, {p.x.mean, p.y.lo()}, {p.x.mean, p.y.hi()}, c, 5);
    if (std::isfinite(p.x.half)) draw::error_bar(img, axes, {p.x.lo(), p.y.mean}, {p.x.hi(), p.y.mean}, c, 5);
    img.clip(axes.area);
    img.circle(axes.map(p.x.mean, p.y.mean), p.hollow ? 6 : 5, c, !p.hollow, 2);
    img.clip_off();
  }
}

}  // namespace

std::vector<std::string> plot_accuracy_vs_cost(const Report& report, const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<ScatterPoint> points;
  std::vector<const ReportGroup*> groups;
  for (const auto& g : report.groups) {
    if (g.final_test_acc.n() == 0 || g.epoch_seconds.n() == 0) continue;
    points.push_back({g.label, estimate(g.epoch_seconds), estimate(g.final_test_acc), points.size(), false});
    groups.push_back(&g);
  }
  if (points.size() < 2) return written;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& p : points) {
    x_lo = std::min(x_lo, p.x.lo()), x_hi = std::max(x_hi, p.x.hi());
    y_lo = std::min(y_lo, p.y.lo()), y_hi = std::max(y_hi, p.y.hi());
  }
  draw::Canvas img(line_chart_size());
  draw::Axes axes;
  axes.area = kChartArea;
  axes.fit_x(std::min(0.0, x_lo), x_hi);
  axes.fit_y(y_lo, y_hi);
  axes.draw(img, "Final test accuracy vs training time per epoch (mean, 95 % interval)",
            "training seconds per epoch (train_seconds / epochs)", "final test accuracy (%)");
  scatter(img, axes, points);
  std::vector<draw::LegendEntry> entries;
  for (const auto& p : points)
    entries.push_back({p.label + ": " + estimate_text(p.y, "%.2f") + " %, " + estimate_text(p.x, "%.1f") + " s",
                       draw::palette(p.colour), false, true, false});
  draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
  const std::string stem = (fs::path(out_dir) / "accuracy_vs_cost").string();
  img.save(stem, written);
  std::ostringstream csv;
  csv << "method,n,final_test_acc_mean,final_test_acc_ci_half,epoch_seconds_mean,epoch_seconds_ci_half,train_hours\n";
  for (size_t i = 0; i < points.size(); ++i)
    csv << csv_field(points[i].label) << "," << groups[i]->runs.size() << "," << num(points[i].y.mean) << ","
        << num(points[i].y.half) << "," << num(points[i].x.mean) << "," << num(points[i].x.half) << ","
        << num(groups[i]->train_hours) << "\n";
  write_csv(stem + ".csv", csv.str(), written);
  return written;
}

std::vector<std::string> plot_fp32_vs_int8(const Report& report, const std::string& out_dir) {
  std::vector<std::string> written;
  std::vector<ScatterPoint> points;
  std::vector<std::pair<const ReportGroup*, size_t>> sources;  // group, configuration
  for (size_t gi = 0; gi < report.groups.size(); ++gi) {
    const auto& g = report.groups[gi];
    for (size_t q = 0; q < g.int8.size(); ++q) {
      if (g.int8[q].acc.n() == 0) continue;
      // fp32: the final test accuracy of the runs that were quantized.
      std::vector<double> fp32;
      for (size_t i = 0; i < g.seeds.size(); ++i)
        if (std::isfinite(g.int8[q].run_acc[i])) fp32.push_back(g.run_test_acc[i]);
      points.push_back({g.label + ", " + report.int8[q], estimate(make_stat(fp32)), estimate(g.int8[q].acc), gi, q > 0});
      sources.push_back({&g, q});
    }
  }
  if (points.empty()) return written;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& p : points)
    lo = std::min({lo, p.x.lo(), p.y.lo()}), hi = std::max({hi, p.x.hi(), p.y.hi()});
  draw::Canvas img(line_chart_size());
  draw::Axes axes;
  axes.area = kChartArea;
  axes.fit_x(lo, hi);
  axes.fit_y(lo, hi);
  axes.draw(img, "Int8 vs fp32 test accuracy of the fused model (mean, 95 % interval)", "fp32 test accuracy (%)",
            "int8 test accuracy (%)");
  draw::polyline(img, axes, {axes.x0, axes.x1}, {axes.x0, axes.x1}, draw::kGrey, 1, true, false);  // no loss
  scatter(img, axes, points);
  std::vector<draw::LegendEntry> entries;
  for (size_t q = 0; q < report.int8.size() && q < 2; ++q)
    entries.push_back({report.int8[q] + (q == 0 ? " (filled)" : " (hollow)"), draw::kBlack, false, true, false, q > 0});
  if (report.int8.size() > 2) entries.back().label = "others (hollow)";
  entries.push_back({"dashed: int8 = fp32", draw::kGrey, true, false});
  std::set<size_t> named;
  for (const auto& [g, q] : sources) {
    const size_t colour = static_cast<size_t>(g - report.groups.data());
    if (!named.insert(colour).second) continue;
    std::string text = g->label + ":";
    for (size_t k = 0; k < g->int8.size(); ++k)
      if (g->int8[k].acc.n() > 0) text += " " + estimate_text(estimate(g->int8[k].acc), "%.2f");
    entries.push_back({text, draw::palette(colour), false, true, false});
  }
  draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
  const std::string stem = (fs::path(out_dir) / "fp32_vs_int8").string();
  img.save(stem, written);
  std::ostringstream csv;
  csv << "method,configuration,n,fp32_test_acc_mean,fp32_test_acc_ci_half,int8_test_acc_mean,int8_test_acc_ci_half,"
         "int8_drop_mean\n";
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& [g, q] = sources[i];
    csv << csv_field(g->label) << "," << report.int8[q] << "," << g->int8[q].acc.n() << "," << num(points[i].x.mean)
        << "," << num(points[i].x.half) << "," << num(points[i].y.mean) << "," << num(points[i].y.half) << ","
        << num(g->int8[q].drop.mean) << "\n";
  }
  write_csv(stem + ".csv", csv.str(), written);
  return written;
}

std::vector<std::string> plot_int8(const std::vector<RunData>& runs, const std::string& out_dir,
                                   const std::string& int8) {
  std::vector<std::string> written;
  std::vector<std::pair<const RunData*, const DeployRecord*>> shown;
  for (const auto& r : runs) {
    auto it = r.deploy.find("int8/" + int8);
    if (it != r.deploy.end() && !it->second.layers.empty()) shown.push_back({&r, &it->second});
  }
  if (shown.empty()) return written;
  size_t layers = 0;
  for (const auto& s : shown) layers = std::max(layers, s.second->layers.size());
  auto finite_or_nan = [](double v) { return std::isfinite(v) ? v : NAN; };
  auto label = [](const RunData& r, const DeployRecord& q) {
    char buf[96];
    std::snprintf(buf, sizeof buf, " (int8 %.2f %%, drop %+.2f)", 100 * q.value("int8_acc"), 100 * q.value("int8_drop"));
    return r.name + buf;
  };
  auto chart = [&](const std::string& stem, const std::string& title, const std::string& ylabel,
                   const std::vector<std::vector<double>>& solid, const std::vector<std::vector<double>>& dashed,
                   const std::vector<draw::LegendEntry>& kinds) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto* lines : {&solid, &dashed})
      for (const auto& line : *lines)
        for (double v : line)
          if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!std::isfinite(lo)) return;
    draw::Canvas img(line_chart_size());
    draw::Axes axes;
    axes.area = kChartArea;
    axes.fit_x(0, static_cast<double>(layers - 1), true);
    axes.fit_y(lo, hi);
    axes.draw(img, title, "quantized layer (graph order; names in the CSV)", ylabel);
    std::vector<draw::LegendEntry> entries = kinds;
    for (size_t i = 0; i < shown.size(); ++i) {
      std::vector<double> x;
      for (size_t l = 0; l < shown[i].second->layers.size(); ++l) x.push_back(static_cast<double>(l));
      draw::polyline(img, axes, x, solid[i], draw::palette(i), 2, false, true);
      if (!dashed.empty()) draw::polyline(img, axes, x, dashed[i], draw::palette(i), 2, true, true);
      entries.push_back({label(*shown[i].first, *shown[i].second), draw::palette(i), false, true});
    }
    draw::legend(img, {kChartArea.br().x + 25, kChartArea.y}, kLegendW, entries);
    img.save((fs::path(out_dir) / stem).string(), written);
  };
  // SQNR of weights (solid) and inputs (dashed).
  std::vector<std::vector<double>> weights(shown.size()), inputs(shown.size()), spread(shown.size());
  std::ostringstream sqnr_csv, range_csv;
  sqnr_csv << "run,configuration,index,layer,weight_sqnr_db,input_sqnr_db,input_lo,input_hi\n";
  range_csv << "run,configuration,index,layer,channel,weight_min,weight_max\n";
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto& name = shown[i].first->name;
    for (const auto& l : shown[i].second->layers) {
      weights[i].push_back(finite_or_nan(l.values.count("weight_sqnr_db") ? l.values.at("weight_sqnr_db") : NAN));
      inputs[i].push_back(finite_or_nan(l.values.count("activation_sqnr_db") ? l.values.at("activation_sqnr_db") : NAN));
      sqnr_csv << csv_field(name) << "," << int8 << "," << l.index << "," << csv_field(l.name) << ","
               << num(weights[i].back()) << "," << num(inputs[i].back()) << ","
               << num(l.values.count("input_lo") ? l.values.at("input_lo") : NAN) << ","
               << num(l.values.count("input_hi") ? l.values.at("input_hi") : NAN) << "\n";
      auto mn = l.columns.find("weight_min"), mx = l.columns.find("weight_max");
      if (mn == l.columns.end() || mx == l.columns.end() || mn->second.values.size() != mx->second.values.size()) {
        spread[i].push_back(NAN);
        continue;
      }
      std::vector<double> span;
      for (size_t c = 0; c < mn->second.values.size(); ++c) {
        const double a = mn->second.values[c], b = mx->second.values[c];
        span.push_back(std::max(std::abs(a), std::abs(b)));
        range_csv << csv_field(name) << "," << int8 << "," << l.index << "," << csv_field(l.name) << "," << c << ","
                  << num(a) << "," << num(b) << "\n";
      }
      std::vector<double> sorted = span;
      std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2), sorted.end());
      const double median = sorted[sorted.size() / 2];
      const double widest = *std::max_element(span.begin(), span.end());
      spread[i].push_back(median > 0 ? widest / median : NAN);
    }
  }
  chart("int8_sqnr", "Int8 SQNR per layer (" + int8 + ")", "SQNR (dB)", weights, inputs,
        {{"weights (solid)", draw::kBlack, false, false}, {"inputs (dashed)", draw::kBlack, true, false}});
  write_csv((fs::path(out_dir) / "int8_sqnr.csv").string(), sqnr_csv.str(), written);
  chart("int8_weight_range", "Weight range per output channel: widest channel / median channel",
        "max |w| of the widest channel / median", spread, {}, {});
  write_csv((fs::path(out_dir) / "int8_weight_range.csv").string(), range_csv.str(), written);
  return written;
}

std::vector<std::string> make_plots(const std::vector<RunData>& runs, const std::string& out_dir,
                                    const std::string& int8) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir)) throw DataError(out_dir + ": cannot create the output directory");
  std::vector<std::string> written;
  auto add = [&](std::vector<std::string> files) { written.insert(written.end(), files.begin(), files.end()); };
  for (const auto& r : runs) {
    if (r.has_scalings()) add(plot_scalings(r, out_dir));
    add(plot_repopt_scales(r, out_dir));
  }
  // Kernel magnitudes: every run beside the baseline most like it (same layers; same seed and config first).
  auto has_magnitudes = [](const RunData& r) {
    return std::any_of(r.layers.begin(), r.layers.end(), [](const LayerData& l) { return !l.kernel_magnitude.empty(); });
  };
  auto layer_names = [](const RunData& r) {
    std::vector<std::string> names;
    for (const auto& l : r.layers) names.push_back(l.name);
    return names;
  };
  auto without = [](const RunData& r) {  // the config but for the strategy and the run-specific keys
    auto flat = flatten_config(r.config);
    const auto specific = run_specific_keys(r.config);
    for (auto it = flat.begin(); it != flat.end();)
      it = it->first.rfind("strategy", 0) == 0 || specific.count(it->first) ? flat.erase(it) : std::next(it);
    return flat;
  };
  std::vector<const RunData*> baselines, others;  // completed runs only: the trained kernels
  for (const auto& r : runs)
    if (r.completed() && has_magnitudes(r)) (r.strategy() == "none" ? baselines : others).push_back(&r);
  std::set<const RunData*> paired;
  for (const auto* r : others) {
    const RunData* best = nullptr;
    int best_score = -1;
    for (const auto* b : baselines) {
      if (layer_names(*b) != layer_names(*r)) continue;
      const int score = 2 * (without(*b) == without(*r)) + (b->config.value("seed", Json()) == r->config.value("seed", Json()));
      if (score > best_score) best = b, best_score = score;
    }
    if (best != nullptr) paired.insert(best);
    add(plot_kernel_magnitude(*r, best, out_dir));
  }
  for (const auto* b : baselines)
    if (!paired.count(b)) add(plot_kernel_magnitude(*b, nullptr, out_dir));
  add(plot_accuracy_vs_k(runs, out_dir));
  const Report report = make_report(runs);  // the groups of the three figures below
  add(plot_differences(report, out_dir));
  add(plot_accuracy_vs_cost(report, out_dir));
  add(plot_fp32_vs_int8(report, out_dir));
  add(plot_curves(runs, out_dir));
  add(plot_int8(runs, out_dir, int8));
  if (written.empty()) throw DataError("nothing to plot: the runs have no finished epoch, scaling or kernel magnitude");
  return written;
}

}  // namespace sgs::analysis
