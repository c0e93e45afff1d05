#!/usr/bin/env python3
"""Redraw the per-layer scaling heatmaps of one run (the paper's Figures 4/5)
from its run.h5 with h5py and matplotlib, as `sgs plot` draws them: for every
conv layer, G_l at the first and at the last update, one colour scale.

    /usr/bin/python3 analysis/python/redraw_scaling.py runs/x/run.h5 --out scalings.png

Layout of run.h5: docs/run_file.md (/layers/<name>/scaling [U, kh, kw],
scaling_epoch [U], attribute index = the layer's order in the network).
"""
import argparse
import json
import math
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_scalings(path):
    """[(layer name, [(caption, matrix)])] in network order."""
    with h5py.File(path, "r", locking=False) as f:
        config = json.loads(f.attrs["config"])
        layers = []
        for name, group in f["layers"].items():
            if "scaling" not in group or group["scaling"].shape[0] == 0:
                continue
            g = group["scaling"][()]
            epochs = group["scaling_epoch"][()]
            shown = [("first", 0), ("last", len(g) - 1)] if len(g) > 1 else [("update", 0)]
            panels = [(f"{which}: after ep. {epochs[i]}" if epochs[i] > 0 else f"{which}: at start", g[i])
                      for which, i in shown]
            layers.append((int(group.attrs["index"]), name, panels))
    layers.sort(key=lambda layer: layer[0])
    return config, [(name, panels) for _, name, panels in layers]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run.h5 file")
    parser.add_argument("--out", required=True, help="the figure to write (PNG, PDF, SVG ...)")
    args = parser.parse_args()
    try:
        config, layers = read_scalings(args.run)
    except (OSError, KeyError) as e:
        sys.exit(f"{args.run}: cannot read the run file: {e}")
    if not layers:
        sys.exit(f"{args.run}: no scaling updates (strategy {config['strategy']['name']})")

    per = max(len(panels) for _, panels in layers)
    cols = min(len(layers), 4 if per == 2 else 6)
    rows = math.ceil(len(layers) / cols)
    values = [m for _, panels in layers for _, m in panels]
    lo, hi = min(m.min() for m in values), max(m.max() for m in values)
    fig, axes = plt.subplots(rows, cols * per, figsize=(1.9 * cols * per, 2.2 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (name, panels) in enumerate(layers):
        for j, (caption, m) in enumerate(panels):
            ax = axes[i // cols][(i % cols) * per + j]
            image = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi)
            for r in range(m.shape[0]):
                for c in range(m.shape[1]):
                    light = (m[r, c] - lo) / (hi - lo or 1) > 0.6  # viridis is light at the top
                    ax.text(c, r, f"{m[r, c]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if light else "white")
            ax.set_title(f"{name}\n{caption}" if j == 0 else f"\n{caption}", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="scaling")
    fig.suptitle(f"Spatial gradient scaling G_l: {args.run} ({config['strategy']['name']})", fontsize=10)
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
