#!/usr/bin/env python3
"""Writes mi_reference.json: the authors' mutual-information dependence of a few small feature maps.

The authors' public code (dependence.py of github.com/Ascend-Research/Reparameterization)
is imported from the checkout given as the argument; nothing of it is copied
here. Run once, outside the tests, and check the output in:

  git --git-dir=MIRROR archive HEAD dependence.py | tar -x -C /tmp/authors   (or a clone)
  /usr/bin/python3 tests/reference/make_mi_reference.py /tmp/authors > tests/reference/mi_reference.json

Needs Debian's python3-torch, python3-numpy and python3-fast-histogram
(scripts/bootstrap.sh --bench --no-build). tests/plugins/test_mi_reference.cpp
runs sgs::dependence::compute on the same maps and compares.

Each case: a seeded float32 map [N, C, H, W] (smoothed noise through a ReLU, so
with ReLU-like zeros; some cases with a dead all-zero and a constant channel),
zero-padded by `padding` as their forward hook pads a conv's input, then
  scaling     = dependence_to_spatial_gradient_scaling(feature_map_nmik(padded, kernel, k, diag_rem))
  dependence  = feature_map_nmik(padded, kernel, k=1, diag_rem)             (k = 1: the raw NMI)
  per_channel = feature_map_nmik(padded[:, c:c+1], kernel, k=1, diag_rem)   for each channel c
Their results are float32; NaN is written as null. Values are written with the
shortest decimal that reads back as the same float32.

Use NumPy 1.x (Debian 12 has 1.24): their upper range np.max(X) + 1e-12 is
float64 there; under NumPy 2's promotion rules it stays float32, the 1e-12 is
lost, and fast_histogram's half-open range then drops the largest values.
"""
import json
import os
import sys

CASES = [
    # name, seed, [N, C, H, W], kernel, k, diagonal removal, special channels
    ("n4_c3_5x5", 1, [4, 3, 5, 5], 3, 5.0, False, {}),
    ("n6_c8_7x7_dead_constant", 2, [6, 8, 7, 7], 3, 5.0, False, {"dead": [2], "constant": [5]}),
    ("n8_c16_9x9_diag", 3, [8, 16, 9, 9], 3, 5.0, True, {"dead": [7]}),
    ("n5_c6_9x9_k5x5", 4, [5, 6, 9, 9], 5, 3.0, False, {}),
    ("n4_c5_6x8_diag_sparse", 5, [4, 5, 6, 8], 3, 5.0, True, {"sparse": [1, 3]}),
    ("n7_c4_8x8_k5x5_diag", 6, [7, 4, 8, 8], 5, 5.0, True, {"constant": [0]}),
]


def short(v):
    """The shortest decimal that reads back as the float32 v (None for NaN)."""
    import numpy as np

    v = np.float32(v)
    if np.isnan(v):
        return None
    s = np.format_float_positional(v, unique=True, trim="-") if v == 0 or 1e-4 <= abs(v) < 1e6 else \
        np.format_float_scientific(v, unique=True, trim="-")
    assert np.float32(float(s)) == v, (s, v)
    return float(s)


def make_map(seed, shape, special):
    """Smoothed Gaussian noise through a ReLU, float32, from its own seed."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, c, h + 2, w + 2, generator=g, dtype=torch.float64)
    smooth = F.avg_pool2d(noise, 3, stride=1)  # neighbours share noise: a spatial dependence to measure
    bias = torch.randn(1, c, 1, 1, generator=g, dtype=torch.float64) * 0.3
    scale = torch.rand(1, c, 1, 1, generator=g, dtype=torch.float64) * 2 + 0.5
    x = torch.relu(smooth * scale + bias)
    for ch in special.get("dead", []):
        x[:, ch] = 0
    for ch in special.get("constant", []):
        x[:, ch] = 0.7
    for ch in special.get("sparse", []):
        x[:, ch] = x[:, ch] * (torch.rand(n, h, w, generator=g, dtype=torch.float64) < 0.3)
    return x.to(torch.float32)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_mi_reference.py CHECKOUT   (a checkout of Ascend-Research/Reparameterization)")
    checkout = os.path.abspath(sys.argv[1])
    if not os.path.isfile(os.path.join(checkout, "dependence.py")):
        sys.exit(f"make_mi_reference.py: {checkout}: no dependence.py there")
    sys.path.insert(0, checkout)
    import fast_histogram
    import numpy as np
    import torch
    import torch.nn.functional as F
    from dependence import dependence_to_spatial_gradient_scaling, feature_map_nmik

    if int(np.__version__.split(".")[0]) >= 2:
        sys.exit("make_mi_reference.py: needs NumPy 1.x (see the note at the top), found " + np.__version__)

    def matrix(t):
        return [[short(v) for v in row] for row in t.tolist()]

    cases = []
    for name, seed, shape, kernel, k, diag, special in CASES:
        x = make_map(seed, shape, special)
        p = kernel // 2
        padded = F.pad(x, (p, p, p, p), mode="constant", value=0)  # as their forward hook pads
        ks = (kernel, kernel)
        with np.errstate(invalid="ignore"):  # 0/0 of the dead and constant channels: NaN, as intended
            nmik = feature_map_nmik(padded, ks, k=k, diag_rem=diag)
            scaling = dependence_to_spatial_gradient_scaling(nmik)
            dependence = feature_map_nmik(padded, ks, k=1, diag_rem=diag)
            per_channel = [matrix(feature_map_nmik(padded[:, c:c + 1], ks, k=1, diag_rem=diag))
                           for c in range(shape[1])]
        cases.append({
            "name": name, "seed": seed, "shape": shape, "kernel": [kernel, kernel], "padding": [p, p],
            "k": k, "diagonal_removal": diag,
            "map": [short(v) for v in x.flatten().tolist()],
            "scaling": matrix(scaling), "dependence": matrix(dependence), "per_channel": per_channel,
        })
        print(f"make_mi_reference: {name} {shape}", file=sys.stderr)
    head = {
        "generator": "tests/reference/make_mi_reference.py",
        "authors_code": "dependence.py of github.com/Ascend-Research/Reparameterization "
                        "(feature_map_nmik, dependence_to_spatial_gradient_scaling)",
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "fast_histogram": fast_histogram.__version__},
    }
    # One case per line, so that a regenerated file diffs by case.
    lines = [json.dumps(head)[:-1] + ', "cases": [']
    lines += [json.dumps(c, separators=(",", ":")) + ("," if i + 1 < len(cases) else "") for i, c in enumerate(cases)]
    lines.append("]}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
