#include "plugins/strategies/dependence.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace sgs::dependence {
namespace {

constexpr double kRangeEpsilon = 1e-12;  // upper range = max + 1e-12, as the public implementation

// The region of pairs for displacement (dy, dx) in an H x W map: P at
// [y0, y1) x [x0, x1), Q at the same region shifted by (dy, dx).
struct Region {
  int64_t y0, y1, x0, x1, dy, dx;
  int64_t height() const { return std::max<int64_t>(0, y1 - y0); }
  int64_t width() const { return std::max<int64_t>(0, x1 - x0); }
};

Region region(const torch::Tensor& x, int64_t dy, int64_t dx) {
  const int64_t h = x.size(2), w = x.size(3);
  return {std::max<int64_t>(0, -dy), h - std::max<int64_t>(0, dy), std::max<int64_t>(0, -dx),
          w - std::max<int64_t>(0, dx), dy, dx};
}

torch::Tensor p_view(const torch::Tensor& x, const Region& r) {
  using torch::indexing::Slice;
  return x.index({Slice(), Slice(), Slice(r.y0, r.y0 + r.height()), Slice(r.x0, r.x0 + r.width())});
}

torch::Tensor q_view(const torch::Tensor& x, const Region& r) {
  using torch::indexing::Slice;
  return x.index({Slice(), Slice(), Slice(r.y0 + r.dy, r.y0 + r.dy + r.height()),
                  Slice(r.x0 + r.dx, r.x0 + r.dx + r.width())});
}

// Per-channel ranges of P and Q and the number of pairs; float64 [C] each.
struct Ranges {
  torch::Tensor p_min, p_max, q_min, q_max, count;
};

Ranges ranges_generic(const torch::Tensor& x, const Region& r, bool diagonal_removal) {
  auto p = p_view(x, r).to(torch::kFloat64), q = q_view(x, r).to(torch::kFloat64);
  const std::vector<int64_t> dims{0, 2, 3};
  if (!diagonal_removal) {
    auto count = torch::full({x.size(1)}, static_cast<double>(x.size(0) * r.height() * r.width()), p.options());
    return {p.amin(dims), p.amax(dims), q.amin(dims), q.amax(dims), count};
  }
  auto keep = p.ne(0).logical_and(q.ne(0));
  const double inf = std::numeric_limits<double>::infinity();
  return {torch::where(keep, p, inf).amin(dims), torch::where(keep, p, -inf).amax(dims),
          torch::where(keep, q, inf).amin(dims), torch::where(keep, q, -inf).amax(dims),
          keep.sum(dims).to(torch::kFloat64)};
}

// CPU: one pass per channel over the strided region, channels in parallel.
Ranges ranges_cpu(const torch::Tensor& x, const Region& r, bool diagonal_removal) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Ranges out{torch::empty({c}, opts), torch::empty({c}, opts), torch::empty({c}, opts), torch::empty({c}, opts),
             torch::empty({c}, opts)};
  const float* data = x.data_ptr<float>();
  double *pmin = out.p_min.data_ptr<double>(), *pmax = out.p_max.data_ptr<double>();
  double *qmin = out.q_min.data_ptr<double>(), *qmax = out.q_max.data_ptr<double>();
  double* count = out.count.data_ptr<double>();
  const int64_t off = r.dy * w + r.dx;
  at::parallel_for(0, c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      float a0 = std::numeric_limits<float>::infinity(), a1 = -a0, b0 = a0, b1 = -a0;
      int64_t k = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float* plane = data + (i * c + ch) * h * w;
        for (int64_t y = r.y0; y < r.y0 + r.height(); ++y) {
          const float* p = plane + y * w + r.x0;
          const float* q = p + off;
          const int64_t len = r.width();
          if (!diagonal_removal) {
            for (int64_t j = 0; j < len; ++j) {
              a0 = std::min(a0, p[j]);
              a1 = std::max(a1, p[j]);
              b0 = std::min(b0, q[j]);
              b1 = std::max(b1, q[j]);
            }
            k += len;
          } else {
            for (int64_t j = 0; j < len; ++j) {
              if (p[j] == 0.0f || q[j] == 0.0f) continue;
              a0 = std::min(a0, p[j]);
              a1 = std::max(a1, p[j]);
              b0 = std::min(b0, q[j]);
              b1 = std::max(b1, q[j]);
              ++k;
            }
          }
        }
      }
      pmin[ch] = a0;
      pmax[ch] = a1;
      qmin[ch] = b0;
      qmax[ch] = b1;
      count[ch] = static_cast<double>(k);
    }
  });
  return out;
}

bool use_cpu_kernel(const torch::Tensor& x, bool generic) {
  return !generic && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous();
}

Ranges reduced_ranges(const torch::Tensor& x, const Region& r, bool diagonal_removal, bool generic,
                      Communicator* comm) {
  Ranges rg = use_cpu_kernel(x, generic) ? ranges_cpu(x, r, diagonal_removal) : ranges_generic(x, r, diagonal_removal);
  if (comm != nullptr && comm->world_size() > 1) {
    comm->all_reduce(rg.p_min, ReduceOp::Min);
    comm->all_reduce(rg.q_min, ReduceOp::Min);
    comm->all_reduce(rg.p_max, ReduceOp::Max);
    comm->all_reduce(rg.q_max, ReduceOp::Max);
    comm->all_reduce(rg.count, ReduceOp::Sum);
  }
  return rg;
}

// Sturges' rule per channel: 1 + ceil(log2 n); 1 where there are no pairs.
torch::Tensor sturges_bins(const torch::Tensor& count) {
  return torch::where(count > 0, 1 + torch::ceil(torch::log2(count.clamp_min(1))), torch::ones_like(count))
      .to(torch::kInt64);
}

torch::Tensor histograms_generic(const torch::Tensor& x, const Region& r, const Ranges& rg, const torch::Tensor& bins,
                                 int64_t max_bins, bool diagonal_removal) {
  const int64_t c = x.size(1);
  auto p = p_view(x, r).to(torch::kFloat64), q = q_view(x, r).to(torch::kFloat64);
  auto shape = std::vector<int64_t>{1, c, 1, 1};
  auto b = bins.to(x.device(), torch::kFloat64).view(shape);
  auto bin_of = [&](const torch::Tensor& v, const torch::Tensor& lo, const torch::Tensor& hi,
                    torch::Tensor& inside) {
    auto lo4 = lo.to(x.device()).view(shape), up4 = (hi.to(x.device()) + kRangeEpsilon).view(shape);
    inside = inside.logical_and(v.ge(lo4)).logical_and(v.lt(up4));
    return torch::floor((v - lo4) * (b / (up4 - lo4))).clamp(0, static_cast<double>(max_bins - 1)).to(torch::kInt64);
  };
  auto inside = torch::ones(p.sizes(), torch::TensorOptions(x.device()).dtype(torch::kBool));
  if (diagonal_removal) inside = p.ne(0).logical_and(q.ne(0));
  auto pi = bin_of(p, rg.p_min, rg.p_max, inside);
  auto qi = bin_of(q, rg.q_min, rg.q_max, inside);
  auto channel = torch::arange(c, torch::TensorOptions(x.device()).dtype(torch::kInt64)).view(shape);
  auto joint = (channel * max_bins + pi) * max_bins + qi;
  auto weights = inside.to(torch::kFloat64);
  return torch::bincount(joint.flatten(), weights.flatten(), c * max_bins * max_bins)
      .view({c, max_bins, max_bins});
}

torch::Tensor histograms_cpu(const torch::Tensor& x, const Region& r, const Ranges& rg, const torch::Tensor& bins,
                             int64_t max_bins, bool diagonal_removal) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto out = torch::zeros({c, max_bins, max_bins}, torch::kFloat64);
  const float* data = x.data_ptr<float>();
  double* hist = out.data_ptr<double>();
  const double *pmin = rg.p_min.data_ptr<double>(), *pmax = rg.p_max.data_ptr<double>();
  const double *qmin = rg.q_min.data_ptr<double>(), *qmax = rg.q_max.data_ptr<double>();
  const int64_t* nb = bins.data_ptr<int64_t>();
  const int64_t off = r.dy * w + r.dx;
  at::parallel_for(0, c, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> counts;
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t bb = nb[ch];
      const double p_lo = pmin[ch], p_up = pmax[ch] + kRangeEpsilon, p_scale = bb / (p_up - p_lo);
      const double q_lo = qmin[ch], q_up = qmax[ch] + kRangeEpsilon, q_scale = bb / (q_up - q_lo);
      counts.assign(static_cast<size_t>(bb * bb), 0);
      for (int64_t i = 0; i < n; ++i) {
        const float* plane = data + (i * c + ch) * h * w;
        for (int64_t y = r.y0; y < r.y0 + r.height(); ++y) {
          const float* p = plane + y * w + r.x0;
          const float* q = p + off;
          for (int64_t j = 0; j < r.width(); ++j) {
            const double pv = p[j], qv = q[j];
            if (diagonal_removal && (pv == 0.0 || qv == 0.0)) continue;
            if (!(pv >= p_lo && pv < p_up && qv >= q_lo && qv < q_up)) continue;
            const auto pi = std::min<int64_t>(static_cast<int64_t>((pv - p_lo) * p_scale), bb - 1);
            const auto qi = std::min<int64_t>(static_cast<int64_t>((qv - q_lo) * q_scale), bb - 1);
            ++counts[static_cast<size_t>(pi * bb + qi)];
          }
        }
      }
      double* dst = hist + ch * max_bins * max_bins;
      for (int64_t a = 0; a < bb; ++a)
        for (int64_t b = 0; b < bb; ++b) dst[a * max_bins + b] = static_cast<double>(counts[a * bb + b]);
    }
  });
  return out;
}

// Entropy in bits of each row of `counts` [C, K] (zero cells skipped).
torch::Tensor entropy_bits(const torch::Tensor& counts) {
  auto total = counts.sum(1, /*keepdim=*/true);
  auto p = counts / total;
  auto terms = torch::where(p > 0, p * torch::log2(p), torch::zeros_like(p));
  return -terms.sum(1);
}

// NMI per channel from joint histograms [C, B, B]: (H(P) + H(Q) - H(P,Q)) / H(P,Q).
torch::Tensor nmi(torch::Tensor hist, bool diagonal_removal) {
  if (diagonal_removal) hist = hist * (1 - torch::eye(hist.size(1), hist.options()));
  const int64_t c = hist.size(0);
  auto h_p = entropy_bits(hist.sum(2));
  auto h_q = entropy_bits(hist.sum(1));
  auto h_pq = entropy_bits(hist.reshape({c, -1}));
  return (h_p + h_q - h_pq) / h_pq;
}

torch::Tensor pearson(const torch::Tensor& x, const Region& r, bool diagonal_removal, Communicator* comm) {
  auto p = p_view(x, r).to(torch::kFloat64), q = q_view(x, r).to(torch::kFloat64);
  const std::vector<int64_t> dims{0, 2, 3};
  torch::Tensor n;
  if (diagonal_removal) {
    auto keep = p.ne(0).logical_and(q.ne(0)).to(torch::kFloat64);
    p = p * keep;
    q = q * keep;
    n = keep.sum(dims);
  } else {
    n = torch::full({x.size(1)}, static_cast<double>(x.size(0) * r.height() * r.width()), p.options());
  }
  // Sums are reduced over ranks before the statistics are formed.
  auto sums = torch::stack({n, p.sum(dims), q.sum(dims), (p * p).sum(dims), (q * q).sum(dims), (p * q).sum(dims)});
  if (comm != nullptr && comm->world_size() > 1) comm->all_reduce(sums, ReduceOp::Sum);
  auto cnt = sums[0], mp = sums[1] / cnt, mq = sums[2] / cnt;
  auto var_p = sums[3] / cnt - mp * mp, var_q = sums[4] / cnt - mq * mq;
  auto cov = sums[5] / cnt - mp * mq;
  auto denom = torch::sqrt(var_p * var_q);
  // A constant channel (zero variance) is undefined: NaN, left out of the mean.
  auto corr = torch::where(denom > 0, cov / denom, torch::full_like(cov, NAN));
  return corr.clamp_min(0);  // clamp keeps NaN
}

}  // namespace

torch::Tensor k_transform(const torch::Tensor& s, double k) { return k * s / ((k - 1) * s + 1); }

torch::Tensor joint_histograms(const torch::Tensor& padded, int64_t dy, int64_t dx, bool diagonal_removal,
                               bool generic_kernel, Communicator* comm) {
  const Region r = region(padded, dy, dx);
  Ranges rg = reduced_ranges(padded, r, diagonal_removal, generic_kernel, comm);
  auto bins = sturges_bins(rg.count);
  const int64_t max_bins = bins.max().item<int64_t>();
  auto hist = use_cpu_kernel(padded, generic_kernel)
                  ? histograms_cpu(padded, r, rg, bins, max_bins, diagonal_removal)
                  : histograms_generic(padded, r, rg, bins.to(padded.device()), max_bins, diagonal_removal);
  if (comm != nullptr && comm->world_size() > 1) comm->all_reduce(hist, ReduceOp::Sum);
  return hist;
}

Result compute(const torch::Tensor& padded, const ConvSpec& spec, const Options& options, Communicator* comm) {
  TORCH_CHECK(padded.dim() == 4, "dependence: expected a feature map [N, C, H, W], got ", padded.sizes());
  torch::NoGradGuard no_grad;
  auto x = padded.detach();
  if (use_cpu_kernel(x.contiguous(), options.generic_kernel)) x = x.contiguous();
  const int64_t c = x.size(1), kh = spec.kernel[0], kw = spec.kernel[1];
  const int64_t ch = kh / 2, cw = kw / 2;
  auto per_channel = torch::full({c, kh, kw}, NAN, torch::TensorOptions(x.device()).dtype(torch::kFloat64));
  using torch::indexing::Slice;
  std::vector<std::vector<bool>> done(kh, std::vector<bool>(kw, false));
  per_channel.index_put_({Slice(), ch, cw}, 1.0);
  done[ch][cw] = true;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      if (done[i][j]) continue;
      const int64_t mi = 2 * ch - i, mj = 2 * cw - j;  // the mirrored position (-d)
      const bool mirrored = mi >= 0 && mi < kh && mj >= 0 && mj < kw;
      const int64_t dy = (i - ch) * spec.dilation[0], dx = (j - cw) * spec.dilation[1];
      torch::Tensor value;
      const Region r = region(x, dy, dx);
      if (options.measure == Measure::MutualInformation) {
        value = nmi(joint_histograms(x, dy, dx, options.diagonal_removal, options.generic_kernel, comm),
                    options.diagonal_removal);
      } else {
        value = pearson(x, r, options.diagonal_removal, comm);
      }
      if (options.diagonal_removal) value = torch::nan_to_num(value, 0.0, 0.0, 0.0);
      per_channel.index_put_({Slice(), i, j}, value);
      done[i][j] = true;
      if (mirrored) {
        per_channel.index_put_({Slice(), mi, mj}, value);
        done[mi][mj] = true;
      }
    }
  }
  Result out;
  out.per_channel = per_channel;
  out.dependence = torch::nanmean(per_channel, 0);
  auto g = torch::nanmean(k_transform(per_channel, options.k), 0);
  out.scaling = g / g.mean();
  return out;
}

}  // namespace sgs::dependence
