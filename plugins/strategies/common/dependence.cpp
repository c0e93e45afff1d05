#include "dependence.h"
#include "dependence_detail.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace sgs::dependence {

using namespace detail;

namespace {



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
    auto index = torch::floor((v - lo4) * (b / (up4 - lo4))).clamp(0, static_cast<double>(max_bins - 1));
    // Values left out weigh 0; their index must still be a bin: a channel with
    // no value in range (a dead channel under diagonal removal) has the empty
    // range [inf, -inf] and NaN indices, which no integer cast may see.
    return torch::where(inside, index, torch::zeros_like(index)).to(torch::kInt64);
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

bool use_cpu_kernel(const torch::Tensor& x, bool generic) {
  return !generic && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous();
}


std::vector<Ranges> reduced_ranges(const torch::Tensor& x, const std::vector<Region>& regions, bool diagonal_removal,
                                   bool generic, Communicator* comm) {
  std::vector<Ranges> all;
  if (use_cpu_kernel(x, generic)) {
    all = ranges_cpu(x, regions, diagonal_removal);
  } else {
    for (const auto& r : regions) all.push_back(ranges_generic(x, r, diagonal_removal));
  }
  if (comm != nullptr && comm->world_size() > 1) {
    for (auto& rg : all) {
      comm->all_reduce(rg.p_min, ReduceOp::Min);
      comm->all_reduce(rg.q_min, ReduceOp::Min);
      comm->all_reduce(rg.p_max, ReduceOp::Max);
      comm->all_reduce(rg.q_max, ReduceOp::Max);
      comm->all_reduce(rg.count, ReduceOp::Sum);
    }
  }
  return all;
}

// Entropy in bits of each row of `counts` [C, K] (zero cells skipped).
torch::Tensor entropy_bits(const torch::Tensor& counts) {
  auto total = counts.sum(1, /*keepdim=*/true);
  auto p = counts / total;
  auto terms = torch::where(p > 0, p * torch::log2(p), torch::zeros_like(p));
  return -terms.sum(1);
}

// NMI per channel from joint histograms [C, B, B]: (H(P) + H(Q) - H(P,Q)) / H(P,Q).
}  // namespace

torch::Tensor detail::nmi(torch::Tensor hist, bool diagonal_removal) {
  if (diagonal_removal) hist = hist * (1 - torch::eye(hist.size(1), hist.options()));
  const int64_t c = hist.size(0);
  auto h_p = entropy_bits(hist.sum(2));
  auto h_q = entropy_bits(hist.sum(1));
  auto h_pq = entropy_bits(hist.reshape({c, -1}));
  return (h_p + h_q - h_pq) / h_pq;
}

namespace {

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


// The joint histograms [C, B, B] of displacements ds, reduced over ranks.
std::vector<torch::Tensor> joint_histograms_of(const torch::Tensor& x,
                                               const std::vector<std::pair<int64_t, int64_t>>& ds,
                                               bool diagonal_removal, bool generic, Communicator* comm) {
  std::vector<Region> regions;
  for (const auto& [dy, dx] : ds) regions.push_back(region(x, dy, dx));
  const bool cpu = use_cpu_kernel(x, generic);
  // One process without diagonal removal: the pair counts, hence the bins, do
  // not depend on the values, and the CPU kernel finds each channel's ranges
  // itself while the channel is in cache.
  const bool local = cpu && !diagonal_removal && (comm == nullptr || comm->world_size() == 1);
  std::vector<Ranges> rg;
  std::vector<torch::Tensor> bins;
  std::vector<int64_t> max_bins;
  if (!local) rg = reduced_ranges(x, regions, diagonal_removal, generic, comm);
  for (size_t k = 0; k < regions.size(); ++k) {
    auto count = local ? torch::full({x.size(1)}, static_cast<double>(x.size(0) * regions[k].height() *
                                                                      regions[k].width()),
                                     torch::kFloat64)
                       : rg[k].count;
    bins.push_back(sturges_bins(count));
    max_bins.push_back(bins.back().max().item<int64_t>());
  }
  std::vector<torch::Tensor> hist;
  if (cpu) {
    hist = histograms_cpu(x, regions, local ? nullptr : &rg, bins, max_bins, diagonal_removal);
  } else {
    for (size_t k = 0; k < regions.size(); ++k)
      hist.push_back(histograms_generic(x, regions[k], rg[k], bins[k].to(x.device()), max_bins[k], diagonal_removal));
  }
  if (comm != nullptr && comm->world_size() > 1)
    for (auto& h : hist) comm->all_reduce(h, ReduceOp::Sum);
  return hist;
}

}  // namespace

torch::Tensor k_transform(const torch::Tensor& s, double k) { return k * s / ((k - 1) * s + 1); }

torch::Tensor joint_histograms(const torch::Tensor& padded, int64_t dy, int64_t dx, bool diagonal_removal,
                               bool generic_kernel, Communicator* comm) {
  return joint_histograms_of(padded, {{dy, dx}}, diagonal_removal, generic_kernel, comm)[0];
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
  per_channel.index_put_({Slice(), ch, cw}, 1.0);
  // One displacement per pair {d, -d}; the histograms of all of them in one call.
  struct Entry {
    int64_t i, j, mi, mj;
    bool mirrored;
  };
  std::vector<Entry> entries;
  std::vector<std::pair<int64_t, int64_t>> ds;
  std::vector<std::vector<bool>> done(kh, std::vector<bool>(kw, false));
  done[ch][cw] = true;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      if (done[i][j]) continue;
      const int64_t mi = 2 * ch - i, mj = 2 * cw - j;  // the mirrored position (-d)
      const bool mirrored = mi >= 0 && mi < kh && mj >= 0 && mj < kw;
      entries.push_back({i, j, mi, mj, mirrored});
      ds.emplace_back((i - ch) * spec.dilation[0], (j - cw) * spec.dilation[1]);
      done[i][j] = true;
      if (mirrored) done[mi][mj] = true;
    }
  }
  std::vector<torch::Tensor> values(entries.size());
  if (options.measure == Measure::MutualInformation) {
    auto hist = joint_histograms_of(x, ds, options.diagonal_removal, options.generic_kernel, comm);
    if (hist.empty() || !hist[0].device().is_cpu()) {
      for (size_t e = 0; e < hist.size(); ++e) values[e] = nmi(hist[e], options.diagonal_removal);
    } else {
      values = nmi_cpu(hist, options.diagonal_removal);
    }
  }
  for (size_t e = 0; e < entries.size(); ++e) {
    const Entry& en = entries[e];
    torch::Tensor value = options.measure == Measure::MutualInformation
                              ? values[e]
                              : pearson(x, region(x, ds[e].first, ds[e].second), options.diagonal_removal, comm);
    if (options.diagonal_removal) value = torch::nan_to_num(value, 0.0, 0.0, 0.0);
    per_channel.index_put_({Slice(), en.i, en.j}, value);
    if (en.mirrored) per_channel.index_put_({Slice(), en.mi, en.mj}, value);
  }
  Result out;
  out.per_channel = per_channel;
  out.dependence = torch::nanmean(per_channel, 0);
  auto g = torch::nanmean(k_transform(per_channel, options.k), 0);
  out.scaling = g / g.mean();
  return out;
}

}  // namespace sgs::dependence
