// `sgs plot`: the paper's figures from run.h5 files, each as PNG (drawn with
// OpenCV) and SVG (vector graphics, from the same drawing calls), and a CSV
// of the plotted numbers (same basename):
//   scalings_<run>.png          per-layer scaling G_l at the first and the last update (Figs. 4, 5)
//   kernel_magnitude_<run>.png  per-layer kernel magnitude after the last epoch of a completed
//                               run, beside a baseline run's when the inputs hold one (Fig. 6)
//   accuracy_vs_k.png           accuracy against strategy.k, mean ± std over seeds (Fig. 8)
//   accuracy_difference.png     each group's final test accuracy minus the baseline group's, with
//                               its 95 % interval (sgs report --against's numbers), zero marked
//   accuracy_vs_cost.png        each group's final test accuracy against its training seconds per
//                               epoch, mean and 95 % interval both ways
//   fp32_vs_int8.png            each group's int8 test accuracy against its fp32 one, mean and 95 %
//                               interval both ways, one point per int8 configuration recorded
//   curves_loss.png, curves_accuracy.png   training curves of every run
//   int8_sqnr.png               per quantized layer, the SQNR of its int8 weights and inputs (sgs
//                               quantize's record of one int8 configuration), a line per run
//   int8_weight_range.png       per quantized layer, the widest output channel's weight range over
//                               the median channel's (what per-tensor int8 scales lose), a line
//                               per run; the CSV holds every channel's min and max
// Only the figures the runs support are made.
#pragma once

#include "report.h"
#include "runs.h"

#include <sgs/config.h>

#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace sgs::analysis {

// Layout of the matrix grids (scalings, kernel magnitudes): a panel per
// layer holding `per_panel` heatmaps of `max_kernel` cells a side, in rows of
// matrix_grid_columns(per_panel) panels, a colour bar on the right.
int matrix_grid_columns(size_t per_panel);
cv::Size matrix_grid_size(size_t panels, size_t per_panel, int64_t max_kernel);
// Every line chart (curves, accuracy vs k) has this size.
cv::Size line_chart_size();

struct MatrixPanel {
  std::string title;                                    // the layer
  std::vector<std::pair<std::string, Matrix>> matrices;  // (caption, matrix), one or two
};
struct MatrixRow {  // one CSV row
  std::string layer, which;
  int64_t index = 0, epoch = 0, row = 0, col = 0;
  double value = 0;
};
// Draws the grid (one colour scale for all panels) and writes DIR/<base>.png and .csv.
void write_matrix_figure(const std::string& out_dir, const std::string& base, const std::string& title,
                         const std::string& colour_label, const std::vector<MatrixPanel>& panels,
                         const std::vector<MatrixRow>& rows, std::vector<std::string>& written);

// Each returns the files it wrote (PNG, SVG, then CSV), none when the runs do not support the figure.
std::vector<std::string> plot_scalings(const RunData& run, const std::string& out_dir);
// `baseline`: a run without SGS to show beside `run`, or null.
std::vector<std::string> plot_kernel_magnitude(const RunData& run, const RunData* baseline,
                                               const std::string& out_dir);
std::vector<std::string> plot_accuracy_vs_k(const std::vector<RunData>& runs, const std::string& out_dir);
std::vector<std::string> plot_curves(const std::vector<RunData>& runs, const std::string& out_dir);
// From the runs' report (make_report with its defaults):
// against the reference group (the baseline, strategy none); none when there is no such group;
std::vector<std::string> plot_differences(const Report& report, const std::string& out_dir);
// two groups or more with training time and test accuracy;
std::vector<std::string> plot_accuracy_vs_cost(const Report& report, const std::string& out_dir);
// groups with int8 records (sgs quantize), every configuration recorded.
std::vector<std::string> plot_fp32_vs_int8(const Report& report, const std::string& out_dir);

// The runs' records /deploy/int8/<int8> (sgs quantize).
std::vector<std::string> plot_int8(const std::vector<RunData>& runs, const std::string& out_dir,
                                   const std::string& int8 = kDefaultInt8);

// All of the above for the runs given (creates out_dir). Throws DataError when
// no figure can be made.
std::vector<std::string> make_plots(const std::vector<RunData>& runs, const std::string& out_dir,
                                    const std::string& int8 = kDefaultInt8);

// A run name as a file name part: "search/mi/k=5,seed=0" -> "search_mi_k5_seed0".
std::string file_part(const std::string& name);

}  // namespace sgs::analysis
