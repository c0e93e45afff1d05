#!/usr/bin/env python3
"""Writes structural_reference.json: outputs and fused kernels of the authors' ACB, DBB, RepVGG and DyRep blocks.

The blocks are the authors' public PyTorch code, imported from checkouts whose
paths are given on the command line; nothing of it is copied here:

  ACBlock             acnet/acb.py               of github.com/DingXiaoH/ACNet
  DiverseBranchBlock  diversebranchblock.py      of github.com/DingXiaoH/DiverseBranchBlock
                      (with its dbb_transforms.py)
  RepVGGBlock         repvgg.py (and se_block.py) of github.com/DingXiaoH/RepVGG
  DyRep's DiverseBranchBlock  lib/models/utils/dbb/dbb_block.py (and dbb_transforms.py)
                      of github.com/hunto/image_classification_sota, the code of
                      github.com/hunto/DyRep (recorded as block "DyRepDBB")

Run once, outside the tests, and check the output in:

  git --git-dir=MIRROR archive HEAD | tar -x -C /tmp/src/ACNet       (likewise the other two, or clones)
  /usr/bin/python3 tests/reference/make_structural_reference.py \
      --acnet /tmp/src/ACNet --dbb /tmp/src/DiverseBranchBlock --repvgg /tmp/src/RepVGG \
      --ics /tmp/src/image_classification_sota --out tests/reference/structural_reference.json

Needs Debian's python3-torch (and python3-numpy, which their code imports).
Written from ACNet 748fb0c7, DiverseBranchBlock 8d2b16b6, RepVGG eae7c520,
image_classification_sota 6f7a70a1; the SHA-256 of each imported file is
recorded in the output.

Each block is built as the replacement of one conv + BN (deploy=False; ACBlock
with its defaults use_affine=True, reduce_gamma=False, and gamma_init None or
1/3; DiverseBranchBlock with nonlinear=None, single_init=False; RepVGGBlock with
use_se=False). RepVGGBlock applies a ReLU of its own (self.nonlinearity); it is
replaced by nn.Identity so that the recorded outputs are the sum of its branches,
the part that stands in for conv + BN. DyRep's DiverseBranchBlock stands in for
a conv alone (the model's BN stays after it); it is built as DyRep's _grow
builds it (branches all seven where padding = K // 2, else DyRep's
dbb_branches_unequal, 1x1-KxK, 1x1-avg and KxK; the identity branch forced off
by the constructor unless in = out and stride 1), and its deployed kernel is
get_actual_kernel(). Its grid adds a padding-0 case, (6,6,3,1,0).

Grid: (in, out, K, stride, padding) = (4,6,3,1,1), (4,6,3,2,1), (6,6,3,1,1),
(4,6,5,1,2); a case whose constructor rejects it (RepVGGBlock asserts K == 3
and padding == 1) is listed under "skipped" with the reason.

In each case, after torch.manual_seed(SEED), every conv weight and every BN
weight, bias, running_mean and running_var is drawn again from a generator
seeded per case (conv weights, BN bias and running_mean in [-0.5, 0.5), BN
weight and running_var in [0.5, 1.5)), so nothing depends on the authors' init;
in the gamma_init case the BN weights are left at the constructor's value. The
draws, and the input x [2, in, 9, 9] (N(0, 1) with a seed per input-channel
count), are multiples of 1/64: exact in float32 as in float64, and short in
the file. Only the first grid case is run with gamma_init = 1/3 (it changes
nothing but the BN weights' starting value).

The block is in float64 (.double(), and torch's default dtype is float64
throughout: DBB's transV_avg builds the avg-pool kernel with torch.zeros at
conversion time, which would otherwise be float32 and make 1/K^2 inexact).
Recorded, besides each case's parameters (the authors' state_dict names, in
their order; DBB's idconv1.weight is the offset from the identity) and input:

  eval_output   block.eval()(x), from the re-initialised state
  train_output  a copy of that state, block.train()(x): batch statistics (this
                forward also updates the running statistics of the copy, and
                DBB's BNAndPadLayer pads with the updated running values)
  fused_weight, fused_bias   block.get_equivalent_kernel_bias() (eval state)

and checked here, aborting otherwise: conv2d(x, fused_weight, fused_bias,
stride, padding) and the block after its own switch_to_deploy() both match
eval_output to 1e-9. Values are float64 written with Python's repr (the
shortest decimal that reads back as the same double).
"""
import argparse
import contextlib
import copy
import importlib.util
import json
import os
import sys
import traceback


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_common import load_module, sha256, tensor, write_cases  # noqa: E402

SEED = 1234
GRID = [
    # in, out, K, stride, padding
    (4, 6, 3, 1, 1),
    (4, 6, 3, 2, 1),
    (6, 6, 3, 1, 1),  # in == out, stride 1: RepVGG's identity branch is present
    (4, 6, 5, 1, 2),
]
INPUT_SHAPE_NHW = (2, 9, 9)
TOLERANCE = 1e-9
QUANTUM = 64  # drawn parameters and inputs are multiples of 1/QUANTUM

# block name, variant, constructor keyword arguments beyond (in, out, K, stride, padding), grid cases
BLOCKS = [
    ("ACBlock", "default", {"deploy": False}, GRID),
    ("ACBlock", "gamma_init_1/3", {"deploy": False, "gamma_init": 1.0 / 3}, GRID[:1]),
    ("DiverseBranchBlock", "default", {"deploy": False}, GRID),
    ("RepVGGBlock", "default", {"deploy": False, "use_se": False}, GRID),
    ("DyRepDBB", "default", {}, GRID + [(6, 6, 3, 1, 0)]),
]




def load_package_module(package, path):
    """Imports the file at path as package.<its name>, the folder being the package (for its relative imports)."""
    if not os.path.isfile(path):
        sys.exit(f"make_structural_reference.py: {path}: not there")
    folder = os.path.dirname(path)
    spec = importlib.util.spec_from_loader(package, loader=None, is_package=True)
    pkg = importlib.util.module_from_spec(spec)
    pkg.__path__ = [folder]
    sys.modules[package] = pkg
    return importlib.import_module(package + "." + os.path.splitext(os.path.basename(path))[0])


def dyrep_branches(k, pad):
    """The branches DyRep's _grow gives a conv (1x1, 1x1_kxk, 1x1_avg, kxk, 1xk, kx1, id)."""
    return [1] * 7 if pad == k // 2 else [0, 1, 1, 1, 0, 0, 0]




def reinit(block, seed, keep_bn_weight):
    """Draws every conv weight and BN weight/bias/running_mean/running_var again, in module order."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)

    def fill(t, lo, hi):  # uniform on the multiples of 1/QUANTUM in [lo, hi)
        steps = int(round((hi - lo) * QUANTUM))
        t.copy_(torch.randint(0, steps, t.shape, generator=g, dtype=torch.int64).double() / QUANTUM + lo)

    touched = set()
    with torch.no_grad():
        for mname, m in block.named_modules():
            prefix = mname + "." if mname else ""
            if isinstance(m, nn.Conv2d):
                fill(m.weight, -0.5, 0.5)
                touched.add(prefix + "weight")
                if m.bias is not None:
                    fill(m.bias, -0.5, 0.5)
                    touched.add(prefix + "bias")
            elif isinstance(m, nn.BatchNorm2d):
                if m.affine:
                    if keep_bn_weight:
                        touched.add(prefix + "weight")  # left at the constructor's gamma_init
                    else:
                        fill(m.weight, 0.5, 1.5)
                        touched.add(prefix + "weight")
                    fill(m.bias, -0.5, 0.5)
                    touched.add(prefix + "bias")
                fill(m.running_mean, -0.5, 0.5)
                fill(m.running_var, 0.5, 1.5)
                touched.update([prefix + "running_mean", prefix + "running_var"])
    for key, value in block.state_dict().items():
        if value.is_floating_point() and key not in touched:
            sys.exit(f"make_structural_reference.py: {key} of {type(block).__name__} was not re-initialised")


def bn_settings(block):
    import torch.nn as nn

    settings = {(m.eps, m.momentum) for m in block.modules() if isinstance(m, nn.BatchNorm2d)}
    if len(settings) != 1:
        sys.exit(f"make_structural_reference.py: BNs of {type(block).__name__} differ: {settings}")
    eps, momentum = settings.pop()
    return {"eps": eps, "momentum": momentum}




def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--acnet", required=True, help="checkout of DingXiaoH/ACNet")
    parser.add_argument("--dbb", required=True, help="checkout of DingXiaoH/DiverseBranchBlock")
    parser.add_argument("--repvgg", required=True, help="checkout of DingXiaoH/RepVGG")
    parser.add_argument("--ics", required=True, help="checkout of hunto/image_classification_sota (DyRep's code)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_default_dtype(torch.float64)
    files = {
        "ACNet/acnet/acb.py": os.path.join(os.path.abspath(args.acnet), "acnet", "acb.py"),
        "DiverseBranchBlock/diversebranchblock.py": os.path.join(os.path.abspath(args.dbb), "diversebranchblock.py"),
        "DiverseBranchBlock/dbb_transforms.py": os.path.join(os.path.abspath(args.dbb), "dbb_transforms.py"),
        "RepVGG/repvgg.py": os.path.join(os.path.abspath(args.repvgg), "repvgg.py"),
        "RepVGG/se_block.py": os.path.join(os.path.abspath(args.repvgg), "se_block.py"),
        "image_classification_sota/lib/models/utils/dbb/dbb_block.py":
            os.path.join(os.path.abspath(args.ics), "lib", "models", "utils", "dbb", "dbb_block.py"),
        "image_classification_sota/lib/models/utils/dbb/dbb_transforms.py":
            os.path.join(os.path.abspath(args.ics), "lib", "models", "utils", "dbb", "dbb_transforms.py"),
    }
    # Unique module names: the DBB checkout has an acb.py of its own.
    classes = {
        "ACBlock": load_module("authors_acnet_acb", files["ACNet/acnet/acb.py"]).ACBlock,
        "DiverseBranchBlock": load_module("authors_dbb", files["DiverseBranchBlock/diversebranchblock.py"]).DiverseBranchBlock,
        "RepVGGBlock": load_module("authors_repvgg", files["RepVGG/repvgg.py"]).RepVGGBlock,
        "DyRepDBB": load_package_module(
            "authors_dyrep_dbb", files["image_classification_sota/lib/models/utils/dbb/dbb_block.py"]).DiverseBranchBlock,
    }

    inputs = {}
    for cin in sorted({c[0] for c in GRID}):
        g = torch.Generator().manual_seed(SEED + 100 * cin)
        draw = torch.randn((INPUT_SHAPE_NHW[0], cin) + INPUT_SHAPE_NHW[1:], generator=g, dtype=torch.float64)
        inputs[cin] = (draw * QUANTUM).round() / QUANTUM

    cases, skipped, residuals = [], [], []
    for bi, (bname, variant, kwargs, grid) in enumerate(BLOCKS):
        for ci, (cin, cout, k, stride, pad) in enumerate(grid):
            name = f"{bname}{'' if variant == 'default' else '_' + variant.replace('/', '_')}" \
                   f"_in{cin}_out{cout}_k{k}_s{stride}_p{pad}"
            torch.manual_seed(SEED)
            try:
                with contextlib.redirect_stdout(sys.stderr):  # their constructors print
                    if bname == "DyRepDBB":
                        kwargs = {"branches": dyrep_branches(k, pad)}  # the constructor edits the list it gets
                    block = classes[bname](cin, cout, k, stride=stride, padding=pad, **kwargs)
            except AssertionError as e:
                where = traceback.extract_tb(e.__traceback__)[-1]
                skipped.append({"name": name, "block": bname, "variant": variant, "in": cin, "out": cout, "k": k,
                                "stride": stride, "padding": pad,
                                "reason": f"constructor assertion: {where.line} "
                                          f"({os.path.basename(where.filename)}:{where.lineno})"})
                print(f"make_structural_reference: {name} skipped: {where.line}", file=sys.stderr)
                continue
            if bname == "RepVGGBlock":
                block.nonlinearity = nn.Identity()  # its ReLU is not part of conv + BN
            block = block.double()
            reinit(block, SEED + 1000 * bi + 10 * ci, keep_bn_weight="gamma_init" in kwargs)
            x = inputs[cin]

            with torch.no_grad():
                block.eval()
                eval_out = block(x)
                if bname == "DyRepDBB":
                    fused_w, fused_b = block.get_actual_kernel()
                else:
                    fused_w, fused_b = block.get_equivalent_kernel_bias()
                fused_w, fused_b = fused_w.detach().clone(), fused_b.detach().clone()
                if fused_w.dtype != torch.float64 or fused_b.dtype != torch.float64:
                    sys.exit(f"make_structural_reference.py: {name}: fused kernel is {fused_w.dtype}")
                fused_out = F.conv2d(x, fused_w, fused_b, stride=stride, padding=pad)
                deployed = copy.deepcopy(block)
                with contextlib.redirect_stdout(sys.stderr):
                    deployed.switch_to_deploy()
                deployed.eval()
                deployed_out = deployed(x)
                trained = copy.deepcopy(block)
                trained.train()
                train_out = trained(x)

            r_fused = (fused_out - eval_out).abs().max().item()
            r_deployed = (deployed_out - eval_out).abs().max().item()
            residuals.append((name, r_fused, r_deployed))
            if not (r_fused <= TOLERANCE and r_deployed <= TOLERANCE):
                sys.exit(f"make_structural_reference.py: {name}: fused conv differs from the eval output "
                         f"by {r_fused:.3g} (conv2d) / {r_deployed:.3g} (switch_to_deploy)")
            print(f"make_structural_reference: {name} residual conv2d {r_fused:.3g} "
                  f"switch_to_deploy {r_deployed:.3g}", file=sys.stderr)

            cases.append({
                "name": name, "block": bname, "variant": variant,
                "in": cin, "out": cout, "k": k, "stride": stride, "padding": pad,
                "constructor": {key: value for key, value in kwargs.items()},
                "nonlinearity_removed": bname == "RepVGGBlock",
                "bn": bn_settings(block),
                "params": {key: tensor(value) for key, value in block.state_dict().items()},
                "input": tensor(x),
                "eval_output": tensor(eval_out),
                "train_output": tensor(train_out),
                "fused_weight": tensor(fused_w),
                "fused_bias": tensor(fused_b),
                "residual": {"fused_conv2d": r_fused, "switch_to_deploy": r_deployed},
            })
            if bname == "DyRepDBB":
                cases[-1]["branches"] = list(block.branches)

    head = {
        "generator": "tests/reference/make_structural_reference.py",
        "authors_code": {
            "ACBlock": "acnet/acb.py of github.com/DingXiaoH/ACNet",
            "DiverseBranchBlock": "diversebranchblock.py, dbb_transforms.py of github.com/DingXiaoH/DiverseBranchBlock",
            "RepVGGBlock": "repvgg.py of github.com/DingXiaoH/RepVGG",
            "DyRepDBB": "lib/models/utils/dbb/dbb_block.py, dbb_transforms.py of "
                        "github.com/hunto/image_classification_sota (DyRep)",
        },
        "sources_sha256": {key: sha256(path) for key, path in files.items()},
        "versions": {"torch": torch.__version__},
        "seed": SEED, "tolerance": TOLERANCE,
        "init": {"conv_weight": [-0.5, 0.5], "bn_weight": [0.5, 1.5], "bn_bias": [-0.5, 0.5],
                 "running_mean": [-0.5, 0.5], "running_var": [0.5, 1.5], "input": "N(0,1)",
                 "quantum": 1.0 / QUANTUM},
        "skipped": skipped,
    }
    write_cases(args.out, head, cases)
    worst = max(max(r[1], r[2]) for r in residuals)
    print(f"make_structural_reference: {len(cases)} cases, {len(skipped)} skipped, worst residual {worst:.3g}, "
          f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
