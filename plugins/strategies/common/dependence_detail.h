// The dependence measures' two implementations share these (dependence.cpp:
// the definition in tensor ops, the one CUDA runs; dependence_kernel.cpp: the
// CPU kernel). Not an interface: the public one is dependence.h.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sgs::dependence::detail {

constexpr double kRangeEpsilon = 1e-12;  // upper range = max + 1e-12, as the public implementation

// The region of pairs for displacement (dy, dx) in an H x W map: P at
// [y0, y1) x [x0, x1), Q at the same region shifted by (dy, dx).
struct Region {
  int64_t y0, y1, x0, x1, dy, dx;
  int64_t height() const { return std::max<int64_t>(0, y1 - y0); }
  int64_t width() const { return std::max<int64_t>(0, x1 - x0); }
};

// Per-channel ranges of P and Q and the number of pairs; float64 [C] each.
struct Ranges {
  torch::Tensor p_min, p_max, q_min, q_max, count;
};

// Normalised mutual information of each channel's joint histogram [C, B, B].
torch::Tensor nmi(torch::Tensor hist, bool diagonal_removal);

// The CPU kernel (float32, contiguous maps), every region at once:
// the ranges of each region's P and Q per channel;
std::vector<Ranges> ranges_cpu(const torch::Tensor& x, const std::vector<Region>& regions, bool diagonal_removal);
// the joint histograms [C, max_bins[k], max_bins[k]] of every region (`rg`:
// the ranges, reduced over ranks; null: each channel's own, found in cache);
std::vector<torch::Tensor> histograms_cpu(const torch::Tensor& x, const std::vector<Region>& regions,
                                          const std::vector<Ranges>* rg, const std::vector<torch::Tensor>& bins,
                                          const std::vector<int64_t>& max_bins, bool diagonal_removal);
// nmi() of every histogram, channels in parallel, the values of one serial pass.
std::vector<torch::Tensor> nmi_cpu(const std::vector<torch::Tensor>& hist, bool diagonal_removal);

}  // namespace sgs::dependence::detail
