// Small drawing kit on OpenCV for the figures of `sgs plot`: text, axes with
// ticks, lines (solid or dashed), heatmaps with a colour bar, legends. White
// background, BGR colours, anti-aliased Hershey text.
#pragma once

#include "runs.h"

#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace sgs::analysis::draw {

const cv::Scalar kWhite(255, 255, 255), kBlack(0, 0, 0), kGrey(160, 160, 160), kLightGrey(225, 225, 225);
constexpr int kFont = 0;  // cv::FONT_HERSHEY_SIMPLEX

// Categorical colours (Tableau 10), cycling.
cv::Scalar palette(size_t i);
// Viridis at t in [0, 1].
cv::Scalar colormap(double t);

enum class Align { Start, Centre, End };
cv::Size text_size(const std::string& text, double scale, int thickness = 1);
// `at` is the anchor: horizontally start/centre/end, vertically the text's top/middle/bottom.
void text(cv::Mat& img, const std::string& s, cv::Point at, double scale, const cv::Scalar& colour,
          Align h = Align::Start, Align v = Align::End, int thickness = 1);
// Text turned 90 degrees counter-clockwise, centred on `centre`.
void vertical_text(cv::Mat& img, const std::string& s, cv::Point centre, double scale, const cv::Scalar& colour);
// The largest scale in [min_scale, scale] at which `s` fits `width`; `s` is
// shortened with "..." when even min_scale is too large.
double fit(std::string& s, int width, double scale, double min_scale = 0.35);

// About `target` round tick values covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
std::string tick_label(double v, double step);

// A rectangle of the image mapped to data coordinates.
struct Axes {
  cv::Rect area;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  std::vector<double> xticks, yticks;
  cv::Point2d map(double x, double y) const;
  // Fits the ranges to the data (with a margin) and picks round ticks.
  void fit_x(double lo, double hi, bool integers = false);
  void fit_y(double lo, double hi);
  // Grid, frame, ticks with labels, axis labels and the title above.
  void draw(cv::Mat& img, const std::string& title, const std::string& xlabel, const std::string& ylabel) const;
};

// A polyline in data coordinates; NaN points break it.
void polyline(cv::Mat& img, const Axes& axes, const std::vector<double>& x, const std::vector<double>& y,
              const cv::Scalar& colour, int thickness, bool dashed, bool markers);
void dashed_line(cv::Mat& img, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness);

// A matrix as coloured cells with the value written in each; lo..hi maps to the colour map.
void heatmap(cv::Mat& img, cv::Rect box, const Matrix& m, double lo, double hi);
// A vertical colour bar with tick values and a label.
void colour_bar(cv::Mat& img, cv::Rect bar, double lo, double hi, const std::string& label);

struct LegendEntry {
  std::string label;
  cv::Scalar colour;
  bool dashed = false;
  bool marker = false;
};
// Entries stacked from `top_left`, a long label on two lines, shortened to
// `width` pixels; entries below the image's bottom become "... and N more".
void legend(cv::Mat& img, cv::Point top_left, int width, const std::vector<LegendEntry>& entries);

// Makes [lo, hi] a non-empty finite range (widened around lo when lo == hi).
void widen(double& lo, double& hi);

// PNG written through a temporary file and a rename; throws DataError.
void save_png(const cv::Mat& img, const std::string& path);

}  // namespace sgs::analysis::draw
