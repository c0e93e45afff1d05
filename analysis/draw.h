// Small drawing kit for the figures of `sgs plot`: text, axes with ticks,
// lines (solid or dashed), heatmaps with a colour bar, legends. Every figure
// is drawn on a Canvas, which renders each call twice: into an OpenCV image
// (PNG) and as SVG elements (vector graphics, for papers). White
// background, BGR colours, anti-aliased Hershey text in the PNG; the SVG's
// text is a sans-serif font stretched to the same width.
#pragma once

#include "runs.h"

#include <opencv2/core.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace sgs::analysis::draw {

class Canvas {
 public:
  explicit Canvas(cv::Size size);
  int width() const { return image_.cols; }
  int height() const { return image_.rows; }
  const cv::Mat& image() const { return image_; }

  // Lines and markers drawn until clip_off() are cut at `area`'s edges.
  void clip(cv::Rect area);
  void clip_off();

  void line(cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness);
  // A filled disc, or with `filled` false a ring of width `thickness`.
  void circle(cv::Point2d centre, double radius, const cv::Scalar& colour, bool filled = true, int thickness = 1);
  void fill(cv::Rect r, const cv::Scalar& colour);
  void frame(cv::Rect r, const cv::Scalar& colour, int thickness = 1);
  // `s` with its baseline's left end at `origin`, at a Hershey scale;
  // thickness 2 is bold.
  void put_text(const std::string& s, cv::Point origin, double scale, const cv::Scalar& colour, int thickness = 1);
  // Turned 90 degrees counter-clockwise, centred on `centre`.
  void put_vertical_text(const std::string& s, cv::Point centre, double scale, const cv::Scalar& colour);

  // Writes <stem>.png and <stem>.svg (each through a temporary file and a
  // rename), appending both paths to `written`; throws DataError.
  void save(const std::string& stem, std::vector<std::string>& written) const;
  std::string svg() const;

 private:
  std::string clip_attribute() const;
  cv::Mat image_;
  std::ostringstream body_;         // the SVG elements so far
  std::optional<cv::Rect> clip_;    // the active clip rectangle
  int clips_ = 0;                   // clip paths defined
};

const cv::Scalar kWhite(255, 255, 255), kBlack(0, 0, 0), kGrey(160, 160, 160), kLightGrey(225, 225, 225);
constexpr int kFont = 0;  // cv::FONT_HERSHEY_SIMPLEX

// Categorical colours (Tableau 10), cycling.
cv::Scalar palette(size_t i);
// Viridis at t in [0, 1].
cv::Scalar colormap(double t);

enum class Align { Start, Centre, End };
cv::Size text_size(const std::string& text, double scale, int thickness = 1);
// `at` is the anchor: horizontally start/centre/end, vertically the text's top/middle/bottom.
void text(Canvas& img, const std::string& s, cv::Point at, double scale, const cv::Scalar& colour,
          Align h = Align::Start, Align v = Align::End, int thickness = 1);
// Text turned 90 degrees counter-clockwise, centred on `centre`.
void vertical_text(Canvas& img, const std::string& s, cv::Point centre, double scale, const cv::Scalar& colour);
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
  void draw(Canvas& img, const std::string& title, const std::string& xlabel, const std::string& ylabel) const;
};

// A polyline in data coordinates; NaN points break it.
void polyline(Canvas& img, const Axes& axes, const std::vector<double>& x, const std::vector<double>& y,
              const cv::Scalar& colour, int thickness, bool dashed, bool markers);
void dashed_line(Canvas& img, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness);

// A matrix as coloured cells with the value written in each; lo..hi maps to the colour map.
void heatmap(Canvas& img, cv::Rect box, const Matrix& m, double lo, double hi);
// A vertical colour bar with tick values and a label.
void colour_bar(Canvas& img, cv::Rect bar, double lo, double hi, const std::string& label);

struct LegendEntry {
  std::string label;
  cv::Scalar colour;
  bool dashed = false;
  bool marker = false;
  bool line = true;     // false: the marker alone
  bool hollow = false;  // the marker as a ring
};
// Entries stacked from `top_left`, a long label on two lines, shortened to
// `width` pixels; entries below the image's bottom become "... and N more".
void legend(Canvas& img, cv::Point top_left, int width, const std::vector<LegendEntry>& entries);

// Makes [lo, hi] a non-empty finite range (widened around lo when lo == hi).
void widen(double& lo, double& hi);

// An error bar from a to b (vertical or horizontal) with caps `cap` pixels
// long at both ends, in data coordinates of `axes`, clipped to them.
void error_bar(Canvas& img, const Axes& axes, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int cap = 6);

}  // namespace sgs::analysis::draw
