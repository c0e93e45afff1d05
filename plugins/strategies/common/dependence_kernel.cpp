// The CPU kernel of the dependence measures (float32, contiguous maps); its
// results equal the tensor-op definition in dependence.cpp (tests compare).
#include "dependence_detail.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace sgs::dependence::detail {
namespace {

// ---------------------------------------------------------------------------
// CPU kernel (float32, contiguous maps). Per channel, channels in parallel:
// the ranges (one pass over the values), every value's bin index (one more),
// then the pairs of indices of all displacements counted in one sweep. The
// counts are integers, so the histograms equal a pair-by-pair count exactly.

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
// The vectorised loops also get an AVX2 version, picked at load time (GCC
// leaves bin_values scalar when it targets AVX-512).
#define SGS_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SGS_VECTOR_CLONES
#endif

// What the channels of one map share: its size, the displacements' regions,
// and the core, the part of the map inside every P and Q window (for a 3x3
// conv with padding 1, the unpadded map), as a mask.
struct Sweep {
  int64_t n, c, h, w;
  std::vector<Region> regions;
  bool has_core;
  std::vector<int32_t> core;  // [h * w]: 1 inside the core
  int64_t hw() const { return h * w; }
};

Sweep make_sweep(const torch::Tensor& x, const std::vector<Region>& regions) {
  Sweep s{x.size(0), x.size(1), x.size(2), x.size(3), regions, false, {}};
  int64_t y0 = 0, y1 = s.h, x0 = 0, x1 = s.w;
  for (const auto& r : regions) {
    y0 = std::max({y0, r.y0, r.y0 + r.dy});
    y1 = std::min({y1, r.y0 + r.height(), r.y0 + r.dy + r.height()});
    x0 = std::max({x0, r.x0, r.x0 + r.dx});
    x1 = std::min({x1, r.x0 + r.width(), r.x0 + r.dx + r.width()});
  }
  s.has_core = y1 > y0 && x1 > x0;
  s.core.assign(static_cast<size_t>(s.hw()), 0);
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) s.core[y * s.w + x] = 1;
  return s;
}

// Work items 0..c-1 (channels, blocks of them) handed out one at a time to
// at::get_num_threads() threads: a thread that the system sets aside (other
// work on the cores) then holds up one item, not a fixed share. The threads
// are OpenMP's team, the one LibTorch's own CPU ops use (this file is built
// with OpenMP): right after a tensor op its workers are awake and spinning,
// where freshly started threads would wait for a core behind them.
class ChannelQueue {
 public:
  explicit ChannelQueue(int64_t c) : c_(c) {}
  bool pop(int64_t& ch) { return (ch = next_.fetch_add(1, std::memory_order_relaxed)) < c_; }
  // Runs body() on every thread, each popping items until none is left.
  template <typename Body>
  void run(const Body& body) {
    const int threads = static_cast<int>(std::min<int64_t>(std::max(1, at::get_num_threads()), c_));
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    auto guarded = [&](int t) {
      try {
        body();
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
        next_.store(c_);  // the others stop too
      }
    };
#ifdef _OPENMP
    if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
      guarded(omp_get_thread_num());
    } else {
      guarded(0);
    }
#else
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) workers.emplace_back(guarded, t);
    guarded(0);
    for (auto& w : workers) w.join();
#endif
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }

 private:
  int64_t c_;
  std::atomic<int64_t> next_{0};
};

// A channel's planes lie c * h * w floats apart, too far apart for the
// hardware prefetcher when they are small: ask for plane i ahead of time.
constexpr int64_t kPrefetchPlanes = 4;
inline void prefetch_plane(const float* v, int64_t i, int64_t n, int64_t stride, int64_t hw) {
  if (i >= n) return;
  const char* p = reinterpret_cast<const char*>(v + i * stride);
  const int64_t bytes = hw * static_cast<int64_t>(sizeof(float));
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
}

// Smallest and largest value of n planes of hw floats (plane i at v + i *
// stride), of all of them and of those inside the core: out = {lo, hi, core
// lo, core hi}. x < lo ? x : lo is std::min's rule (a NaN never enters),
// elementwise on vectors of four.
typedef float V4f __attribute__((vector_size(16)));
typedef int32_t V4i __attribute__((vector_size(16)));

SGS_VECTOR_CLONES
void channel_min_max(const float* v, int64_t n, int64_t stride, int64_t hw, const int32_t* core, float* out) {
  const float inf = std::numeric_limits<float>::infinity();
  const V4f pinf = {inf, inf, inf, inf}, ninf = -pinf;
  V4f lo[2] = {pinf, pinf}, hi[2] = {ninf, ninf}, core_lo[2] = {pinf, pinf}, core_hi[2] = {ninf, ninf};
  float slo = inf, shi = -inf, score_lo = inf, score_hi = -inf;
  for (int64_t i = 0; i < n; ++i) {
    const float* plane = v + i * stride;
    prefetch_plane(v, i + kPrefetchPlanes, n, stride, hw);
    int64_t j = 0;
    for (; j + 8 <= hw; j += 8) {
      for (int u = 0; u < 2; ++u) {  // two chains per accumulator
        V4f x;
        V4i in;
        std::memcpy(&x, plane + j + 4 * u, sizeof x);
        std::memcpy(&in, core + j + 4 * u, sizeof in);
        lo[u] = x < lo[u] ? x : lo[u];
        hi[u] = hi[u] < x ? x : hi[u];
        const V4f xl = in != 0 ? x : pinf, xh = in != 0 ? x : ninf;
        core_lo[u] = xl < core_lo[u] ? xl : core_lo[u];
        core_hi[u] = core_hi[u] < xh ? xh : core_hi[u];
      }
    }
    for (; j < hw; ++j) {
      const float x = plane[j];
      slo = std::min(slo, x), shi = std::max(shi, x);
      if (core[j] != 0) score_lo = std::min(score_lo, x), score_hi = std::max(score_hi, x);
    }
  }
  for (int u = 0; u < 2; ++u)
    for (int k = 0; k < 4; ++k) {
      slo = std::min(slo, lo[u][k]), shi = std::max(shi, hi[u][k]);
      score_lo = std::min(score_lo, core_lo[u][k]), score_hi = std::max(score_hi, core_hi[u][k]);
    }
  out[0] = slo, out[1] = shi, out[2] = score_lo, out[3] = score_hi;
}

// Ranges of P and Q of one channel over region r, pair by pair: out = {P min,
// P max, Q min, Q max, pairs}.
void exact_ranges(const float* v, int64_t n, int64_t stride, int64_t w, const Region& r, bool diagonal_removal,
                  double* out) {
  float a0 = std::numeric_limits<float>::infinity(), a1 = -a0, b0 = a0, b1 = -a0;
  int64_t k = 0;
  const int64_t off = r.dy * w + r.dx;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = r.y0; y < r.y0 + r.height(); ++y) {
      const float* p = v + i * stride + y * w + r.x0;
      const float* q = p + off;
      for (int64_t j = 0; j < r.width(); ++j) {
        if (diagonal_removal && (p[j] == 0.0f || q[j] == 0.0f)) continue;
        a0 = std::min(a0, p[j]);
        a1 = std::max(a1, p[j]);
        b0 = std::min(b0, q[j]);
        b1 = std::max(b1, q[j]);
        ++k;
      }
    }
  }
  out[0] = a0, out[1] = a1, out[2] = b0, out[3] = b1, out[4] = static_cast<double>(k);
}

// Ranges of every region of channel ch: out[5 k + ...] as exact_ranges. Every
// window holds the core and lies in the map, so where the core's range equals
// the map's (the usual case) it is every window's range: one pass for all.
// Otherwise, and under diagonal removal (where the pairs decide), each
// region is scanned.
void channel_ranges(const float* data, const Sweep& s, int64_t ch, bool diagonal_removal, double* out) {
  const float* v = data + ch * s.hw();
  const int64_t stride = s.c * s.hw();
  if (s.has_core && !diagonal_removal) {
    float mm[4];
    channel_min_max(v, s.n, stride, s.hw(), s.core.data(), mm);
    if (mm[2] == mm[0] && mm[3] == mm[1]) {
      for (size_t k = 0; k < s.regions.size(); ++k) {
        const Region& r = s.regions[k];
        double* e = out + 5 * k;
        e[0] = e[2] = mm[0], e[1] = e[3] = mm[1], e[4] = static_cast<double>(s.n * r.height() * r.width());
      }
      return;
    }
  }
  for (size_t k = 0; k < s.regions.size(); ++k)
    exact_ranges(v, s.n, stride, s.w, s.regions[k], diagonal_removal, out + 5 * k);
}

std::vector<Ranges> ranges_of_sweep(const torch::Tensor& x, const Sweep& s, bool diagonal_removal) {
  const auto m = static_cast<int64_t>(s.regions.size());
  auto all = torch::empty({s.c, m, 5}, torch::kFloat64);  // [channel, region, (P min, P max, Q min, Q max, pairs)]
  double* out = all.data_ptr<double>();
  const float* data = x.data_ptr<float>();
  ChannelQueue queue(s.c);
  queue.run([&] {
    for (int64_t ch; queue.pop(ch);) channel_ranges(data, s, ch, diagonal_removal, out + ch * m * 5);
  });
  std::vector<Ranges> result;
  for (int64_t k = 0; k < m; ++k) {
    auto e = all.select(1, k);
    result.push_back({e.select(1, 0).contiguous(), e.select(1, 1).contiguous(), e.select(1, 2).contiguous(),
                      e.select(1, 3).contiguous(), e.select(1, 4).contiguous()});
  }
  return result;
}

// One channel's binning of P or Q: bin = floor((v - lo) * (bins / (up - lo)))
// for lo <= v < up (up = max + 1e-12), in double, as the public code.
struct Binning {
  double lo, up;
  int64_t bins;
  bool operator==(const Binning& o) const { return lo == o.lo && up == o.up && bins == o.bins; }
};

// Bin indices (uint8) of n planes of hw floats (plane i at v + i * stride, its
// indices at out + i * out_stride): floor(min((v - lo) * scale, bins - 1)) for
// lo <= v < up, else (and for zeros under diagonal removal) the extra index
// `bins`, whose histogram row and column are dropped: the pairs it is in do
// not count. min before the conversion equals min after it (bins - 1 is an
// integer), and an outside value is never converted. No branches, so that it
// vectorises.
SGS_VECTOR_CLONES
void bin_values(const float* __restrict v, int64_t n, int64_t stride, int64_t hw, double lo, double up, double scale,
                int64_t bins, bool diagonal_removal, uint8_t* __restrict out, int64_t out_stride) {
  const double last = static_cast<double>(bins - 1), outside = static_cast<double>(bins);
  for (int64_t i = 0; i < n; ++i) {
    const float* plane = v + i * stride;
    uint8_t* o = out + i * out_stride;
    prefetch_plane(v, i + kPrefetchPlanes, n, stride, hw);
    for (int64_t j = 0; j < hw; ++j) {
      const double d = plane[j];
      const bool inside = (d >= lo) & (d < up) & !(diagonal_removal & (d == 0.0));
      const double t = std::min((d - lo) * scale, last);
      o[j] = static_cast<uint8_t>(static_cast<int32_t>(inside ? t : outside));
    }
  }
}

// A channel's bin indices: its planes, each followed by ry rows of the extra
// index (ry = the largest |dy|), with slack of the extra index before the
// first and after the last. P at position j pairs with Q at j + dy * w + dx.
// A neighbour above or below the map falls in those rows, so its pair lands
// in the dropped row or column. One left or right of the map wraps into the
// row above or below: those pairs (P in the |dx| columns at the edge) are
// counted like the others, then taken back out. The rows between planes are
// swept as P too (their pairs land in the dropped row), so that one sweep
// covers many planes.
struct Layout {
  int64_t h, w, ry, slack;
  int64_t plane() const { return (h + ry) * w; }
  int64_t at(int64_t i) const { return slack + i * plane(); }
  int64_t size(int64_t n) const { return 2 * slack + n * plane(); }
  int64_t span(int64_t planes) const { return (planes - 1) * plane() + h * w; }  // positions from at(i) on
};

void bin_channel(const float* data, const Sweep& s, int64_t ch, const Layout& layout, const Binning& b,
                 bool diagonal_removal, std::vector<uint8_t>& out) {
  const auto outside = static_cast<uint8_t>(b.bins);
  out.resize(static_cast<size_t>(layout.size(s.n)));
  uint8_t* o = out.data();
  // The extra index before plane 0, in the rows after each plane, after the last.
  std::memset(o, outside, static_cast<size_t>(layout.slack));
  for (int64_t i = 0; i < s.n; ++i)
    std::memset(o + layout.at(i) + s.hw(), outside, static_cast<size_t>(layout.ry * s.w));
  std::memset(o + layout.at(s.n), outside, static_cast<size_t>(layout.slack));
  bin_values(data + ch * s.hw(), s.n, s.c * s.hw(), s.hw(), b.lo, b.up, static_cast<double>(b.bins) / (b.up - b.lo),
             b.bins, diagonal_removal, out.data() + layout.at(0), layout.plane());
}

// Pair counters: per displacement, two copies of `cells` uint32 (cell = P * s
// + Q, s = bins + 1), the copy chosen by the position's parity so that runs
// of one cell (zeros) do not make each increment wait for the previous one.
// Copies are summed modulo 2^32, so a pair taken back out from the other copy
// than the one it was counted in leaves the sum exact.
constexpr int64_t kCopies = 2;

// Counts len pairs (p[j], q[j]).
void count_pairs(const uint8_t* p, const uint8_t* q, int64_t len, int64_t s, int64_t cells, uint32_t* cnt) {
  uint32_t* c1 = cnt + cells;
  int64_t j = 0;
  for (; j + 2 <= len; j += 2) {
    ++cnt[p[j] * s + q[j]];
    ++c1[p[j + 1] * s + q[j + 1]];
  }
  if (j < len) ++cnt[p[j] * s + q[j]];
}

// Counts the pairs (idx[j], idx[j + off[k]]) of every displacement k at once,
// where all share one index array and s: each P index is read once. M: the
// number of displacements when known at compile time (4 for 3x3), else 0.
template <int M>
void count_fused(const uint8_t* idx, int64_t len, const int64_t* off, int64_t m, int64_t s, int64_t cells,
                 uint32_t* cnt) {
  if (M > 0) m = M;
  const int64_t stride = kCopies * cells;
  int64_t j = 0;
  for (; j + 2 <= len; j += 2) {
    const int64_t a0 = idx[j] * s, a1 = idx[j + 1] * s + cells;
    for (int64_t k = 0; k < m; ++k) {
      uint32_t* c = cnt + k * stride;
      ++c[a0 + idx[j + off[k]]];
      ++c[a1 + idx[j + 1 + off[k]]];
    }
  }
  if (j < len) {
    const int64_t a0 = idx[j] * s;
    for (int64_t k = 0; k < m; ++k) ++cnt[k * stride + a0 + idx[j + off[k]]];
  }
}

// Four displacements (3x3 kernels) counted as two triples, halving the
// increments: table 0 holds (Q of displacement 0, P, Q of displacement 2),
// table 1 (Q of 1, P, Q of 3), cell (a * s + p) * s + b, uint16, two copies
// each (position parity); the pair tables are their marginals. The cells of
// a block are computed first, vectorised, then counted. Each call covers at
// most kTripleSpan positions, so that no uint16 counter overflows.
constexpr int64_t kTripleSpan = 2 * 65535;
constexpr int64_t kTripleBlock = 256;

SGS_VECTOR_CLONES
void count_triples(const uint8_t* __restrict idx, int64_t len, const int64_t* off, int64_t s, uint16_t* __restrict t) {
  const int64_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], sss = s * s * s;
  const auto s16 = static_cast<uint16_t>(s), ss16 = static_cast<uint16_t>(s * s);
  uint16_t* t0 = t;            // copies at t0, t0 + sss
  uint16_t* t1 = t + 2 * sss;  // copies at t1, t1 + sss
  alignas(64) uint16_t c0[kTripleBlock], c1[kTripleBlock];
  for (int64_t j0 = 0; j0 < len; j0 += kTripleBlock) {
    const int64_t nb = std::min(kTripleBlock, len - j0);
    const uint8_t* p = idx + j0;
    for (int64_t j = 0; j < nb; ++j) {
      const auto a = static_cast<uint16_t>(p[j] * s16);
      c0[j] = static_cast<uint16_t>(static_cast<uint16_t>(p[j + o0] * ss16) + a + p[j + o2]);
      c1[j] = static_cast<uint16_t>(static_cast<uint16_t>(p[j + o1] * ss16) + a + p[j + o3]);
    }
    int64_t j = 0;
    for (; j + 2 <= nb; j += 2) {
      ++t0[c0[j]];
      ++t1[c1[j]];
      ++t0[sss + c0[j + 1]];
      ++t1[sss + c1[j + 1]];
    }
    if (j < nb) ++t0[c0[j]], ++t1[c1[j]];
  }
}

// Adds the marginals of a triple table T[a][p][b] to two pair tables:
// first[p][a] += sum over b, second[p][b] += sum over a.
void add_marginals(const uint16_t* t, int64_t s, uint32_t* first, uint32_t* second) {
  for (int64_t a = 0; a < s; ++a)
    for (int64_t p = 0; p < s; ++p) {
      const uint16_t* row = t + (a * s + p) * s;
      uint32_t* dst = second + p * s;
      uint32_t sum = 0;
      for (int64_t b = 0; b < s; ++b) sum += row[b], dst[b] += row[b];
      first[p * s + a] += sum;
    }
}

// Takes back out the pairs whose Q wrapped around a row end, in n planes
// `plane` apart: for each displacement k with dx != 0, P in the dx columns at
// the right edge (dx > 0) or the -dx at the left (dx < 0); p[k] and q[k] its
// index arrays (Q already offset), cnt[k] its counters.
void uncount_wrapped(const std::vector<const uint8_t*>& p, const std::vector<const uint8_t*>& q,
                     const std::vector<uint32_t*>& cnt, const std::vector<Region>& regions, int64_t n, int64_t plane,
                     int64_t h, int64_t w, const std::vector<int64_t>& s) {
  struct Column {
    const uint8_t *p, *q;
    uint32_t* cnt;
    int64_t s;
  };
  std::vector<Column> columns;  // one per wrapped column of each displacement
  for (size_t k = 0; k < regions.size(); ++k) {
    const int64_t dx = regions[k].dx;
    if (p[k] == nullptr || dx == 0) continue;
    for (int64_t x = dx > 0 ? w - dx : 0; x < (dx > 0 ? w : -dx); ++x)
      columns.push_back({p[k] + x, q[k] + x, cnt[k], s[k]});
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y) {
      const int64_t at = i * plane + y * w;
      for (const auto& c : columns) --c.cnt[c.p[at] * c.s + c.q[at]];
    }
}

// The joint histograms [C, max_bins[k], max_bins[k]] of every region. `rg`:
// the ranges, already reduced over ranks; null: each channel's own ranges,
// found here while its values are in cache (one process, no diagonal
// removal: then `bins` does not depend on the values).
std::vector<torch::Tensor> histograms_of_sweep(const torch::Tensor& x, const Sweep& sw, const std::vector<Ranges>* rg,
                                          const std::vector<torch::Tensor>& bins,
                                          const std::vector<int64_t>& max_bins, bool diagonal_removal) {
  const int64_t n = sw.n, c = sw.c, h = sw.h, w = sw.w;
  const auto m = static_cast<int64_t>(sw.regions.size());
  std::vector<torch::Tensor> out;
  std::vector<double*> hist;
  std::vector<const int64_t*> nb;
  std::vector<int64_t> off(m);
  std::vector<bool> empty(m);
  bool any_empty = false;
  Layout layout{h, w, 0, 0};
  int64_t rx = 0;
  for (int64_t k = 0; k < m; ++k) {
    const Region& r = sw.regions[k];
    TORCH_CHECK(max_bins[k] < 255, "dependence: ", max_bins[k], " bins exceed the CPU kernel's 254");
    out.push_back(torch::empty({c, max_bins[k], max_bins[k]}, torch::kFloat64));  // every cell written below
    hist.push_back(out.back().data_ptr<double>());
    nb.push_back(bins[k].data_ptr<int64_t>());
    empty[k] = r.height() == 0 || r.width() == 0;  // |d| beyond the map: no pairs
    any_empty = any_empty || empty[k];
    if (empty[k]) continue;
    off[k] = r.dy * w + r.dx;
    layout.ry = std::max(layout.ry, std::abs(r.dy));
    rx = std::max(rx, std::abs(r.dx));
  }
  layout.slack = layout.ry * w + rx;
  const float* data = x.data_ptr<float>();
  // uint32 counters are flushed into double totals before they could overflow.
  const int64_t flush_planes = std::max<int64_t>(
      1, static_cast<int64_t>(std::numeric_limits<uint32_t>::max()) / std::max<int64_t>(1, layout.plane()));
  ChannelQueue queue(c);
  queue.run([&] {
    std::vector<double> ranges(static_cast<size_t>(5 * m));
    std::vector<Binning> binnings;
    std::vector<std::vector<uint8_t>> indices;
    std::vector<int64_t> p_of(m), q_of(m), s(m), cells(m), start(m);
    std::vector<const uint8_t*> p_at(m), q_at(m);
    std::vector<uint32_t*> cnt_at(m);
    std::vector<uint32_t> counts;
    std::vector<uint16_t> triples;
    std::vector<double> totals;
    auto binning_of = [&](const Binning& b) {
      for (size_t i = 0; i < binnings.size(); ++i)
        if (binnings[i] == b) return static_cast<int64_t>(i);
      binnings.push_back(b);
      return static_cast<int64_t>(binnings.size() - 1);
    };
    for (int64_t ch; queue.pop(ch);) {
      if (rg == nullptr) {
        channel_ranges(data, sw, ch, diagonal_removal, ranges.data());
      } else {
        for (int64_t k = 0; k < m; ++k) {
          const Ranges& r = (*rg)[k];
          ranges[5 * k] = r.p_min.data_ptr<double>()[ch], ranges[5 * k + 1] = r.p_max.data_ptr<double>()[ch];
          ranges[5 * k + 2] = r.q_min.data_ptr<double>()[ch], ranges[5 * k + 3] = r.q_max.data_ptr<double>()[ch];
        }
      }
      binnings.clear();
      int64_t total_cells = 0;
      bool fused = !any_empty;
      for (int64_t k = 0; k < m; ++k) {
        const double* e = ranges.data() + 5 * k;
        p_of[k] = binning_of({e[0], e[1] + kRangeEpsilon, nb[k][ch]});
        q_of[k] = binning_of({e[2], e[3] + kRangeEpsilon, nb[k][ch]});
        s[k] = nb[k][ch] + 1, cells[k] = s[k] * s[k];
        start[k] = total_cells;
        total_cells += kCopies * cells[k];
        fused = fused && p_of[k] == 0 && q_of[k] == 0;  // one binning: one index array and one s
      }
      if (indices.size() < binnings.size()) indices.resize(binnings.size());
      for (size_t i = 0; i < binnings.size(); ++i)
        bin_channel(data, sw, ch, layout, binnings[i], diagonal_removal, indices[i]);
      counts.assign(static_cast<size_t>(total_cells), 0);
      totals.assign(static_cast<size_t>(total_cells), 0.0);
      auto flush = [&] {
        for (int64_t k = 0; k < m; ++k) {
          const uint32_t* c0 = counts.data() + start[k];
          double* t = totals.data() + start[k];
          for (int64_t e = 0; e < cells[k]; ++e) t[e] += static_cast<uint32_t>(c0[e] + c0[cells[k] + e]);
        }
        std::fill(counts.begin(), counts.end(), 0);
      };
      for (int64_t i0 = 0; i0 < n; i0 += flush_planes) {
        const int64_t planes = std::min(flush_planes, n - i0), len = layout.span(planes);
        if (fused) {
          const uint8_t* idx = indices[0].data() + layout.at(i0);
          const int64_t sss = s[0] * s[0] * s[0];
          // Triples pay where the span is long against their tables' size.
          if (m == 4 && s[0] <= 25 && len >= 2 * sss) {
            triples.resize(static_cast<size_t>(4 * sss));
            for (int64_t j0 = 0; j0 < len; j0 += kTripleSpan) {
              std::fill(triples.begin(), triples.end(), 0);
              count_triples(idx + j0, std::min(kTripleSpan, len - j0), off.data(), s[0], triples.data());
              for (int64_t copy = 0; copy < kCopies; ++copy) {
                add_marginals(triples.data() + copy * sss, s[0], counts.data() + start[0], counts.data() + start[2]);
                add_marginals(triples.data() + (2 + copy) * sss, s[0], counts.data() + start[1],
                              counts.data() + start[3]);
              }
            }
          } else if (m == 4) {
            count_fused<4>(idx, len, off.data(), m, s[0], cells[0], counts.data());
          } else {
            count_fused<0>(idx, len, off.data(), m, s[0], cells[0], counts.data());
          }
        }
        for (int64_t k = 0; k < m; ++k) {
          p_at[k] = q_at[k] = nullptr;
          if (empty[k]) continue;
          p_at[k] = indices[p_of[k]].data() + layout.at(i0);
          q_at[k] = indices[q_of[k]].data() + layout.at(i0) + off[k];
          cnt_at[k] = counts.data() + start[k];
          if (!fused) count_pairs(p_at[k], q_at[k], len, s[k], cells[k], cnt_at[k]);
        }
        uncount_wrapped(p_at, q_at, cnt_at, sw.regions, planes, layout.plane(), h, w, s);
        flush();
      }
      for (int64_t k = 0; k < m; ++k) {
        const int64_t bb = nb[k][ch], mb = max_bins[k];
        const double* t = totals.data() + start[k];
        double* dst = hist[k] + ch * mb * mb;
        for (int64_t a = 0; a < mb; ++a)
          for (int64_t b = 0; b < mb; ++b) dst[a * mb + b] = a < bb && b < bb ? t[a * s[k] + b] : 0.0;
      }
    }
  });
  return out;
}

}  // namespace

std::vector<Ranges> ranges_cpu(const torch::Tensor& x, const std::vector<Region>& regions, bool diagonal_removal) {
  return ranges_of_sweep(x, make_sweep(x, regions), diagonal_removal);
}

std::vector<torch::Tensor> histograms_cpu(const torch::Tensor& x, const std::vector<Region>& regions,
                                          const std::vector<Ranges>* rg, const std::vector<torch::Tensor>& bins,
                                          const std::vector<int64_t>& max_bins, bool diagonal_removal) {
  return histograms_of_sweep(x, make_sweep(x, regions), rg, bins, max_bins, diagonal_removal);
}

// nmi of each histogram [C, B, B] on CPU, in blocks of channels on the
// kernel's threads (one block with one thread). A block is small enough for
// every tensor op to run serially (under ATen's grain size, 32768), so no
// OpenMP team is woken (on shared cores each one waits for every thread), and
// holds a multiple of 8 channels, so that each element takes the same path
// through the ops' vectorised loops (vector body or scalar tail) as in one
// serial pass over all channels: the values are those of nmi() on the whole
// tensor with one thread.
std::vector<torch::Tensor> nmi_cpu(const std::vector<torch::Tensor>& hist, bool diagonal_removal) {
  struct Block {
    size_t e;
    int64_t c0, k;
  };
  std::vector<Block> blocks;
  std::vector<torch::Tensor> out;
  for (size_t e = 0; e < hist.size(); ++e) {
    const int64_t c = hist[e].size(0), cells = std::max<int64_t>(1, hist[e].size(1) * hist[e].size(2));
    const int64_t k = at::get_num_threads() == 1 ? c : std::max<int64_t>(8, (30000 / cells) / 8 * 8);
    for (int64_t c0 = 0; c0 < c; c0 += k) blocks.push_back({e, c0, std::min(k, c - c0)});
    out.push_back(torch::empty({c}, hist[e].options()));
  }
  ChannelQueue queue(static_cast<int64_t>(blocks.size()));
  queue.run([&] {
    torch::NoGradGuard no_grad;
    for (int64_t b; queue.pop(b);) {
      const Block& bl = blocks[b];
      out[bl.e].narrow(0, bl.c0, bl.k).copy_(nmi(hist[bl.e].narrow(0, bl.c0, bl.k), diagonal_removal));
    }
  });
  return out;
}

}  // namespace sgs::dependence::detail
