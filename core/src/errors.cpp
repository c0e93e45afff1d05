#include <sgs/errors.h>


#include <algorithm>

namespace sgs {
namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::vector<std::string> close_matches(const std::string& name,
                                       const std::vector<std::string>& known,
                                       std::size_t max_results) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const auto& k : known) {
    std::size_t d = edit_distance(name, k);
    // Close: at most a third of the longer name differs, or one is a prefix.
    std::size_t limit = std::max<std::size_t>(2, std::max(name.size(), k.size()) / 3);
    bool prefix = name.size() >= 3 && k.rfind(name, 0) == 0;
    if (d <= limit || prefix) scored.emplace_back(prefix ? 0 : d, k);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (const auto& s : scored) {
    if (out.size() == max_results) break;
    out.push_back(s.second);
  }
  return out;
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& known) {
  auto matches = close_matches(name, known);
  if (matches.empty()) return "";
  std::string s = "; did you mean ";
  for (std::size_t i = 0; i < matches.size(); ++i) {
    if (i) s += i + 1 == matches.size() ? " or " : ", ";
    s += "'" + matches[i] + "'";
  }
  return s + "?";
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
  return s;
}

std::string error_message(const std::exception& e) {
  std::string text = e.what();
  // LibTorch's errors (c10::Error) append "Exception raised from ..." and a
  // backtrace to their message; keep what precedes them.
  auto cut = text.find("\nException raised from");
  if (cut != std::string::npos) text.resize(cut);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += "; ";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace sgs
