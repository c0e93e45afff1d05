// Spatial dependence of a conv's padded input feature map (paper section 3.3,
// docs/method.md section 3), shared by the mutual_information and autocorrelation
// strategies and by `sgs dependence`.
//
// For every kernel position (i, j), displacement d = ((i - kh/2) * dil_h,
// (j - kw/2) * dil_w); P = X[n, c, y, x], Q = X[n, c, y + dy, x + dx] over all
// positions where both lie in the padded map. Per channel:
//   mutual information: Sturges bins (1 + ceil(log2 n)) over [min, max + 1e-12]
//     of P and of Q, joint histogram, NMI = (H(P) + H(Q) - H(P,Q)) / H(P,Q);
//   autocorrelation: Pearson correlation of P and Q, negatives clamped to 0.
// The centre is 1; d and -d give one value (computed once, mirrored); a
// constant channel gives NaN and drops out of the nan-mean over channels.
// Diagonal removal keeps pairs with P != 0 and Q != 0 and zeroes the joint
// histogram's diagonal; an empty or NaN result counts as 0.
// G = mean over channels of s_k = k s / ((k - 1) s + 1), divided by its mean.
#pragma once

#include <sgs/communicator.h>
#include <sgs/conv.h>

#include <torch/types.h>

namespace sgs::dependence {

enum class Measure { MutualInformation, Autocorrelation };

struct Options {
  Measure measure = Measure::MutualInformation;
  double k = 5.0;
  bool diagonal_removal = false;
  // Histograms with generic tensor ops even on CPU (tests compare the paths).
  bool generic_kernel = false;
};

struct Result {
  torch::Tensor per_channel;  // float64 [C, kh, kw]: the raw measure, NaN where undefined
  torch::Tensor dependence;   // float64 [kh, kw]: nan-mean over channels of the raw measure
  torch::Tensor scaling;      // float64 [kh, kw]: G (mean 1); NaN entries when undefined
};

// `padded`: float [N, C, H, W] already zero-padded by the conv's padding, on
// any device. With `comm`, the statistics are reduced over all ranks so the
// result equals one process's over the union of the ranks' maps.
Result compute(const torch::Tensor& padded, const ConvSpec& spec, const Options& options,
               Communicator* comm = nullptr);

// s_k = k s / ((k - 1) s + 1), elementwise.
torch::Tensor k_transform(const torch::Tensor& s, double k);

// Joint histograms of one displacement, for tests and benchmarks: float64
// [C, B, B] (B = the largest channel's bin count), rows = P bins.
torch::Tensor joint_histograms(const torch::Tensor& padded, int64_t dy, int64_t dx, bool diagonal_removal,
                               bool generic_kernel, Communicator* comm = nullptr);

}  // namespace sgs::dependence
