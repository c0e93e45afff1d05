#!/usr/bin/env python3
"""Times the authors' public mutual-information code on stored feature maps.

Imports `feature_map_nmik` and `dependence_to_spatial_gradient_scaling` from
dependence.py of a checkout of github.com/Ascend-Research/Reparameterization
(given with --authors; never copied here) and runs them on every float32
[N, C, H, W] dataset of --features, zero-padded by 1 as their forward hook
pads a 3x3 conv's input. Prints JSON on stdout:
  {"layers": [{"name", "shape", "seconds", "all_seconds", "scaling"}], ...}
where seconds is the best of --repeats calls of feature_map_nmik (padding not
timed) and scaling is their normalised matrix (NaN written as null).
Used by bench/bench_dependence.cpp; needs numpy, fast_histogram, h5py, torch
(Debian: /usr/bin/python3 with python3-fast-histogram, python3-h5py).
"""
import argparse
import json
import math
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", required=True, help="checkout holding the authors' dependence.py")
    parser.add_argument("--features", required=True, help="HDF5 file of float32 [N, C, H, W] feature maps")
    parser.add_argument("--layers", default="", help="comma-separated dataset names (default: all)")
    parser.add_argument("--k", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    if not os.path.isfile(os.path.join(args.authors, "dependence.py")):
        sys.exit(f"authors_dependence.py: {args.authors}: no dependence.py there")
    sys.path.insert(0, os.path.abspath(args.authors))
    import h5py
    import numpy as np
    import torch
    import torch.nn.functional as F
    import fast_histogram
    from dependence import dependence_to_spatial_gradient_scaling, feature_map_nmik

    layers = []
    with h5py.File(args.features, "r") as f:
        names = [n for n in args.layers.split(",") if n] or list(f.keys())
        for name in names:
            x = torch.from_numpy(np.asarray(f[name], dtype=np.float32))
            padded = F.pad(x, (1, 1, 1, 1), mode="constant", value=0)  # as their hook does
            times = []
            for _ in range(max(1, args.repeats)):
                start = time.perf_counter()
                corr = feature_map_nmik(padded, (3, 3), k=args.k, diag_rem=False)
                times.append(time.perf_counter() - start)
            g = dependence_to_spatial_gradient_scaling(corr).double().tolist()
            g = [[v if math.isfinite(v) else None for v in row] for row in g]
            layers.append({"name": name, "shape": list(x.shape), "seconds": min(times), "all_seconds": times,
                           "scaling": g})
            print(f"authors: {name} {list(x.shape)} {min(times):.3f} s", file=sys.stderr, flush=True)
    print(json.dumps({"layers": layers, "numpy": np.__version__, "fast_histogram": fast_histogram.__version__,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
