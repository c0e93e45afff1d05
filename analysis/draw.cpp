#include "draw.h"

#include <sgs/io.h>
#include <sgs/errors.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sgs::analysis::draw {

namespace {

std::string svg_colour(const cv::Scalar& bgr) {
  char buf[16];
  auto channel = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 255.0))); };
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", channel(bgr[2]), channel(bgr[1]), channel(bgr[0]));
  return buf;
}

std::string svg_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

std::string svg_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

cv::Point rounded(cv::Point2d p) { return {cvRound(p.x), cvRound(p.y)}; }

// The SVG attributes of text as wide as the PNG's Hershey text at `scale`:
// a font size whose cap height matches, stretched to the same length.
std::string svg_text_attributes(const std::string& s, double scale, const cv::Scalar& colour, int thickness) {
  const cv::Size size = text_size(s, scale, thickness);
  return "font-size=\"" + svg_number(size.height / 0.72) + "\" textLength=\"" + svg_number(size.width) +
         "\" lengthAdjust=\"spacingAndGlyphs\" fill=\"" + svg_colour(colour) + "\"" +
         (thickness >= 2 ? " font-weight=\"bold\"" : "");
}

}  // namespace

Canvas::Canvas(cv::Size size) : image_(size, CV_8UC3, kWhite) {}

void Canvas::clip(cv::Rect area) {
  clip_ = area;
  body_ << "<clipPath id=\"c" << ++clips_ << "\"><rect x=\"" << area.x << "\" y=\"" << area.y << "\" width=\""
        << area.width << "\" height=\"" << area.height << "\"/></clipPath>\n";
}

void Canvas::clip_off() { clip_.reset(); }

std::string Canvas::clip_attribute() const {
  return clip_ ? " clip-path=\"url(#c" + std::to_string(clips_) + ")\"" : std::string();
}

void Canvas::line(cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness) {
  if (clip_) {
    cv::Mat part = image_(*clip_);
    const cv::Point2d o(clip_->x, clip_->y);
    cv::line(part, rounded(a - o), rounded(b - o), colour, thickness, cv::LINE_AA);
  } else {
    cv::line(image_, rounded(a), rounded(b), colour, thickness, cv::LINE_AA);
  }
  body_ << "<line x1=\"" << svg_number(a.x) << "\" y1=\"" << svg_number(a.y) << "\" x2=\"" << svg_number(b.x)
        << "\" y2=\"" << svg_number(b.y) << "\" stroke=\"" << svg_colour(colour) << "\" stroke-width=\"" << thickness
        << "\" stroke-linecap=\"round\"" << clip_attribute() << "/>\n";
}

void Canvas::circle(cv::Point2d centre, double radius, const cv::Scalar& colour, bool filled, int thickness) {
  const int r = std::max(1, cvRound(radius));
  if (clip_) {
    cv::Mat part = image_(*clip_);
    cv::circle(part, rounded(centre - cv::Point2d(clip_->x, clip_->y)), r, colour, filled ? cv::FILLED : thickness,
               cv::LINE_AA);
  } else {
    cv::circle(image_, rounded(centre), r, colour, filled ? cv::FILLED : thickness, cv::LINE_AA);
  }
  body_ << "<circle cx=\"" << svg_number(centre.x) << "\" cy=\"" << svg_number(centre.y) << "\" r=\""
        << svg_number(radius) << "\" "
        << (filled ? "fill=\"" + svg_colour(colour) + "\""
                   : "fill=\"none\" stroke=\"" + svg_colour(colour) + "\" stroke-width=\"" + std::to_string(thickness) +
                         "\"")
        << clip_attribute() << "/>\n";
}

void Canvas::fill(cv::Rect r, const cv::Scalar& colour) {
  cv::rectangle(image_, r, colour, cv::FILLED);
  body_ << "<rect x=\"" << r.x << "\" y=\"" << r.y << "\" width=\"" << r.width << "\" height=\"" << r.height
        << "\" fill=\"" << svg_colour(colour) << "\" shape-rendering=\"crispEdges\"/>\n";
}

void Canvas::frame(cv::Rect r, const cv::Scalar& colour, int thickness) {
  cv::rectangle(image_, r, colour, thickness);
  // OpenCV strokes the pixels from tl to br - 1: centre the SVG stroke on them.
  body_ << "<rect x=\"" << svg_number(r.x + 0.5) << "\" y=\"" << svg_number(r.y + 0.5) << "\" width=\""
        << r.width - 1 << "\" height=\"" << r.height - 1 << "\" fill=\"none\" stroke=\"" << svg_colour(colour)
        << "\" stroke-width=\"" << thickness << "\"/>\n";
}

void Canvas::put_text(const std::string& s, cv::Point origin, double scale, const cv::Scalar& colour, int thickness) {
  cv::putText(image_, s, origin, kFont, scale, colour, thickness, cv::LINE_AA);
  body_ << "<text x=\"" << origin.x << "\" y=\"" << origin.y << "\" " << svg_text_attributes(s, scale, colour, thickness)
        << ">" << svg_escape(s) << "</text>\n";
}

void Canvas::put_vertical_text(const std::string& s, cv::Point centre, double scale, const cv::Scalar& colour) {
  const auto size = text_size(s, scale);
  cv::Mat strip(size.height + 8, size.width + 4, image_.type(), kWhite);
  cv::putText(strip, s, {2, 4 + size.height}, kFont, scale, colour, 1, cv::LINE_AA);
  cv::Mat turned;
  cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
  cv::Rect where(centre.x - turned.cols / 2, centre.y - turned.rows / 2, turned.cols, turned.rows);
  where &= cv::Rect(0, 0, image_.cols, image_.rows);
  if (where.area() > 0) {
    cv::Mat mask;
    cv::Mat part = turned(cv::Rect(where.x - (centre.x - turned.cols / 2), where.y - (centre.y - turned.rows / 2),
                                   where.width, where.height));
    cv::inRange(part, kWhite, kWhite, mask);
    cv::bitwise_not(mask, mask);
    part.copyTo(image_(where), mask);
  }
  body_ << "<text x=\"" << centre.x << "\" y=\"" << centre.y + size.height / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 "
        << centre.x << " " << centre.y << ")\" " << svg_text_attributes(s, scale, colour, 1) << ">" << svg_escape(s)
        << "</text>\n";
}

std::string Canvas::svg() const {
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width()
      << "\" height=\"" << height() << "\" viewBox=\"0 0 " << width() << " " << height()
      << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"" << width() << "\" height=\""
      << height() << "\" fill=\"#ffffff\"/>\n"
      << body_.str() << "</svg>\n";
  return out.str();
}

void Canvas::save(const std::string& stem, std::vector<std::string>& written) const {
  std::vector<uchar> buf;
  if (!cv::imencode(".png", image_, buf)) throw DataError(stem + ".png: cannot encode the PNG");
  write_file_atomically(stem + ".png", std::string(buf.begin(), buf.end()));
  written.push_back(stem + ".png");
  write_file_atomically(stem + ".svg", svg());
  written.push_back(stem + ".svg");
}

cv::Scalar palette(size_t i) {
  static const int rgb[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                                 {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  const auto& c = rgb[i % 10];
  return cv::Scalar(c[2], c[1], c[0]);
}

cv::Scalar colormap(double t) {
  static const cv::Mat lut = [] {
    cv::Mat ramp(256, 1, CV_8UC1);
    for (int i = 0; i < 256; ++i) ramp.at<uchar>(i) = static_cast<uchar>(i);
    cv::Mat out;
    cv::applyColorMap(ramp, out, cv::COLORMAP_VIRIDIS);
    return out;
  }();
  if (!std::isfinite(t)) return kLightGrey;
  const int i = static_cast<int>(std::lround(std::clamp(t, 0.0, 1.0) * 255));
  const auto& c = lut.at<cv::Vec3b>(i);
  return cv::Scalar(c[0], c[1], c[2]);
}

cv::Size text_size(const std::string& s, double scale, int thickness) {
  int baseline = 0;
  return cv::getTextSize(s, kFont, scale, thickness, &baseline);
}

void text(Canvas& img, const std::string& s, cv::Point at, double scale, const cv::Scalar& colour, Align h, Align v,
          int thickness) {
  const auto size = text_size(s, scale, thickness);
  int x = at.x, y = at.y;
  if (h == Align::Centre) x -= size.width / 2;
  if (h == Align::End) x -= size.width;
  if (v == Align::Start) y += size.height;
  if (v == Align::Centre) y += size.height / 2;
  img.put_text(s, {x, y}, scale, colour, thickness);
}

void vertical_text(Canvas& img, const std::string& s, cv::Point centre, double scale, const cv::Scalar& colour) {
  img.put_vertical_text(s, centre, scale, colour);
}

double fit(std::string& s, int width, double scale, double min_scale) {
  for (double k = scale; k >= min_scale - 1e-9; k -= 0.05)
    if (text_size(s, k).width <= width) return k;
  while (s.size() > 3 && text_size(s + "...", min_scale).width > width) s.pop_back();
  s += "...";
  return min_scale;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  widen(lo, hi);
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string tick_label(double v, double step) {
  int decimals = 0;
  if (step > 0 && step < 1) {
    decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    const double scaled = step * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) > 1e-6) ++decimals;  // 0.25 -> 2 decimals
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < step * 1e-9 ? 0.0 : v);
  return buf;
}

void widen(double& lo, double& hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(lo))) {
    const double d = std::max(0.5, std::abs(lo) * 0.05);
    lo -= d;
    hi += d;
  }
}

cv::Point2d Axes::map(double x, double y) const {
  return {area.x + (x - x0) / (x1 - x0) * area.width, area.y + area.height - (y - y0) / (y1 - y0) * area.height};
}

void Axes::fit_x(double lo, double hi, bool integers) {
  widen(lo, hi);
  const double pad = std::max(0.03 * (hi - lo), integers ? 0.3 : 0.0);
  x0 = lo - pad;
  x1 = hi + pad;
  xticks.clear();
  for (double t : nice_ticks(lo, hi, 8))
    if (!integers || std::abs(t - std::round(t)) < 1e-9) xticks.push_back(t);
  if (integers && xticks.empty())
    for (double t = std::ceil(lo); t <= hi; t += 1) xticks.push_back(t);
}

void Axes::fit_y(double lo, double hi) {
  widen(lo, hi);
  const double pad = 0.05 * (hi - lo);
  y0 = lo - pad;
  y1 = hi + pad;
  yticks = nice_ticks(y0, y1, 6);
}

void Axes::draw(Canvas& img, const std::string& title, const std::string& xlabel, const std::string& ylabel) const {
  const double tick_scale = 0.45;
  auto step = [](const std::vector<double>& t) { return t.size() > 1 ? t[1] - t[0] : 1.0; };
  for (double t : xticks) {
    const int x = static_cast<int>(std::lround(map(t, y0).x));
    if (x < area.x || x > area.br().x) continue;
    img.line(cv::Point(x, area.y), cv::Point(x, area.br().y), kLightGrey, 1);
    img.line(cv::Point(x, area.br().y), cv::Point(x, area.br().y + 5), kBlack, 1);
    text(img, tick_label(t, step(xticks)), {x, area.br().y + 9}, tick_scale, kBlack, Align::Centre, Align::Start);
  }
  for (double t : yticks) {
    const int y = static_cast<int>(std::lround(map(x0, t).y));
    if (y < area.y || y > area.br().y) continue;
    img.line(cv::Point(area.x, y), cv::Point(area.br().x, y), kLightGrey, 1);
    img.line(cv::Point(area.x - 5, y), cv::Point(area.x, y), kBlack, 1);
    text(img, tick_label(t, step(yticks)), {area.x - 9, y}, tick_scale, kBlack, Align::End, Align::Centre);
  }
  img.frame(area, kBlack, 1);
  std::string t = title;
  const double ts = fit(t, img.width() - 20, 0.65, 0.45);
  text(img, t, {area.x + area.width / 2, area.y - 16}, ts, kBlack, Align::Centre, Align::End, 2);
  text(img, xlabel, {area.x + area.width / 2, area.br().y + 40}, 0.55, kBlack, Align::Centre, Align::Start);
  vertical_text(img, ylabel, {area.x - 62, area.y + area.height / 2}, 0.55, kBlack);
}

void dashed_line(Canvas& img, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int thickness) {
  const double dash = 8, gap = 5;
  const double len = std::hypot(b.x - a.x, b.y - a.y);
  if (len < 1e-9) return;
  const cv::Point2d dir = (b - a) * (1.0 / len);
  for (double s = 0; s < len; s += dash + gap) {
    const cv::Point2d p = a + dir * s, q = a + dir * std::min(len, s + dash);
    img.line(p, q, colour, thickness);
  }
}

void polyline(Canvas& img, const Axes& axes, const std::vector<double>& x, const std::vector<double>& y,
              const cv::Scalar& colour, int thickness, bool dashed, bool markers) {
  img.clip(axes.area);  // lines stay inside the axes
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    const cv::Point2d p = axes.map(x[i], y[i]);
    if (markers) img.circle(p, thickness + 2, colour);
    if (i + 1 < x.size() && std::isfinite(x[i + 1]) && std::isfinite(y[i + 1])) {
      const cv::Point2d q = axes.map(x[i + 1], y[i + 1]);
      if (dashed)
        dashed_line(img, p, q, colour, thickness);
      else
        img.line(p, q, colour, thickness);
    }
  }
  img.clip_off();
}

void error_bar(Canvas& img, const Axes& axes, cv::Point2d a, cv::Point2d b, const cv::Scalar& colour, int cap) {
  img.clip(axes.area);
  const cv::Point2d p = axes.map(a.x, a.y), q = axes.map(b.x, b.y);
  img.line(p, q, colour, 2);
  // Caps across the bar.
  const cv::Point2d d = q - p;
  const double len = std::hypot(d.x, d.y);
  const cv::Point2d across = len > 0 ? cv::Point2d(-d.y / len, d.x / len) * static_cast<double>(cap) : cv::Point2d(cap, 0);
  for (const auto& e : {p, q}) img.line(e - across, e + across, colour, 2);
  img.clip_off();
}

namespace {
std::string cell_text(double v) {
  char buf[32];
  if (!std::isfinite(v))
    return "nan";
  else if (std::abs(v) < 10)
    std::snprintf(buf, sizeof buf, "%.2f", v);
  else if (std::abs(v) < 100)
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}
}  // namespace

void heatmap(Canvas& img, cv::Rect box, const Matrix& m, double lo, double hi) {
  if (m.rows <= 0 || m.cols <= 0) return;
  const int cw = box.width / static_cast<int>(m.cols), ch = box.height / static_cast<int>(m.rows);
  // One text scale for the whole matrix: the largest at which every value fits its cell.
  double scale = 0.55;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) {
      std::string s = cell_text(m.at(r, c));
      scale = std::min(scale, fit(s, cw - 6, scale, 0.3));
    }
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) {
      const double v = m.at(r, c);
      const cv::Rect cell(box.x + static_cast<int>(c) * cw, box.y + static_cast<int>(r) * ch, cw, ch);
      const cv::Scalar colour = colormap((v - lo) / (hi - lo));
      img.fill(cell, colour);
      img.frame(cell, kWhite, 1);
      // Dark text on light cells (viridis is light at the top of its range).
      const double luminance = (0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]) / 255;
      text(img, cell_text(v), {cell.x + cw / 2, cell.y + ch / 2}, scale, luminance > 0.5 ? kBlack : kWhite,
           Align::Centre, Align::Centre);
    }
}

void colour_bar(Canvas& img, cv::Rect bar, double lo, double hi, const std::string& label) {
  for (int y = 0; y < bar.height; ++y) {
    const double t = 1.0 - static_cast<double>(y) / std::max(1, bar.height - 1);
    img.fill(cv::Rect(bar.x, bar.y + y, bar.width, 1), colormap(t));
  }
  img.frame(bar, kBlack, 1);
  const auto ticks = nice_ticks(lo, hi, 5);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0;
  int widest = 0;
  for (double t : ticks) {
    if (t < lo - 1e-12 || t > hi + 1e-12) continue;
    const int y = bar.br().y - 1 - static_cast<int>(std::lround((t - lo) / (hi - lo) * (bar.height - 1)));
    img.line(cv::Point(bar.br().x, y), cv::Point(bar.br().x + 5, y), kBlack, 1);
    const std::string s = tick_label(t, step);
    widest = std::max(widest, text_size(s, 0.45).width);
    text(img, s, {bar.br().x + 8, y}, 0.45, kBlack, Align::Start, Align::Centre);
  }
  vertical_text(img, label, {bar.br().x + 8 + widest + 16, bar.y + bar.height / 2}, 0.5, kBlack);
}

void legend(Canvas& img, cv::Point top_left, int width, const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return;
  const int row = 22, sample = 30, avail = width - sample - 24;
  const double scale = 0.45;
  // A label too long for one line breaks after its last space that fits; the rest is shortened if need be.
  std::vector<std::vector<std::string>> lines;
  int rows = 0;
  for (const auto& e : entries) {
    std::vector<std::string> l{e.label};
    if (text_size(e.label, scale).width > avail) {
      size_t cut = std::string::npos;
      for (size_t i = e.label.find(' '); i != std::string::npos; i = e.label.find(' ', i + 1))
        if (text_size(e.label.substr(0, i), scale).width <= avail) cut = i;
      if (cut != std::string::npos) l = {e.label.substr(0, cut), e.label.substr(cut + 1)};
    }
    rows += static_cast<int>(l.size());
    lines.push_back(std::move(l));
  }
  // What does not fit above the image's bottom is summed up in a last line.
  const int max_rows = (img.height() - top_left.y - 10) / row;
  size_t shown = entries.size();
  if (rows > max_rows) {
    rows = 1;
    for (shown = 0; shown < entries.size() && rows + static_cast<int>(lines[shown].size()) <= max_rows; ++shown)
      rows += static_cast<int>(lines[shown].size());
  }
  const cv::Rect frame(top_left.x, top_left.y, width, row * rows + 10);
  img.fill(frame, kWhite);
  img.frame(frame, kGrey, 1);
  int y = top_left.y + 5 + row / 2;
  for (size_t i = 0; i < shown; ++i) {
    const auto& e = entries[i];
    const cv::Point a(top_left.x + 8, y), b(top_left.x + 8 + sample, y);
    if (e.line && e.dashed)
      dashed_line(img, a, b, e.colour, 2);
    else if (e.line)
      img.line(a, b, e.colour, 2);
    if (e.marker) img.circle(cv::Point2d(a + b) * 0.5, e.hollow ? 5 : 4, e.colour, !e.hollow, 2);
    for (auto s : lines[i]) {
      const double k = fit(s, avail, scale, 0.35);
      text(img, s, {b.x + 8, y}, k, kBlack, Align::Start, Align::Centre);
      y += row;
    }
  }
  if (shown < entries.size())
    text(img, "... and " + std::to_string(entries.size() - shown) + " more", {top_left.x + 8, y}, scale, kBlack,
         Align::Start, Align::Centre);
}

}  // namespace sgs::analysis::draw
