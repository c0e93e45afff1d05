#!/usr/bin/env python3
"""Writes rep_reference.json: outputs and fused kernels of the authors' QARepVGG and OREPA blocks, and RepOpt's gradient multipliers and optimizer steps.

The code is the authors' public PyTorch code, imported from checkouts whose
paths are given on the command line; nothing of it is copied here:

  QARepVGGBlock, QARepVGGBlockV2   yolov6/layers/common.py of github.com/meituan/YOLOv6
                      (with fuse_model and initialize_weights of yolov6/utils/torch_utils.py;
                      common.py imports yolov6/utils/general.py and events.py, which import
                      requests, pkg_resources and yaml)
  OREPA, OREPA_1x1, OREPA_LargeConv   blocks.py (with basic.py, dbb_transforms.py)
                      of github.com/JUGGHM/OREPA_CVPR2022
  RepOptVGG           repoptimizer/repoptvgg_impl.py (RepOptVGGHandler, extract_scales),
                      repoptimizer_sgd.py (RepOptimizerSGD), repoptimizer_adamw.py
                      (RepOptimizerAdamW), repoptimizer_utils.py, repoptvgg_model.py
                      (LinearAddBlock, RealVGGBlock; it imports scale_layer.py and
                      se_block.py) and optimizer.py (set_weight_decay) of
                      github.com/DingXiaoH/RepOptimizers; check_equivalency.py there is
                      read, not run: its property is checked here on the authors' classes.

Run once, outside the tests, and check the output in:

  git --git-dir=MIRROR archive HEAD yolov6 | tar -x -C /tmp/src/YOLOv6   (likewise the other two, or clones)
  /usr/bin/python3 tests/reference/make_rep_reference.py \
      --yolov6 /tmp/src/YOLOv6 --orepa /tmp/src/OREPA_CVPR2022 --repopt /tmp/src/RepOptimizers \
      --out tests/reference/rep_reference.json

Needs Debian's python3-torch (and python3-numpy, which their code imports).
Written from YOLOv6 e86a483f (2024-03-05), OREPA_CVPR2022 3ed037be (2022-04-08),
RepOptimizers 2e45ff53 (2023-02-10); the commits are recorded as given by
--*-commit (defaults: these) and the SHA-256 of each imported file is recorded.
If a third-party module that YOLOv6's common.py pulls in at import time is
missing (requests, pkg_resources, yaml: none of them is used by the blocks), an
empty stand-in is put in sys.modules and its name is recorded under
"stubbed_modules" (none were needed when the file was written).

Module cases (torch's default dtype is float64 throughout, so the constant
tensors that the authors build with torch.Tensor / torch.zeros / torch.eye are
float64; their numpy identity tensors are float32 holding 0 and 1, exact):

  QARepVGGBlock (deploy=False, use_se=False), the block of the QARepVGG paper,
      and QARepVGGBlockV2, the one YOLOv6's configs/qarepvgg/*_qa.py select
      (training_mode='qarepvggv2'); both assert K == 3 and padding == 1.
      Branches: rbr_dense = ConvModule (conv, no bias, + BN), rbr_1x1 = a bare
      1x1 conv (no BN, no bias), rbr_identity = nn.Identity (in == out and
      stride 1 only), V2 also rbr_avg = AvgPool2d(3, stride, padding) (same
      condition); their sum goes through the block's own BN (self.bn), then
      self.nonlinearity (a ReLU), replaced here by nn.Identity, so outputs are
      bn(sum of branches).  The authors' get_equivalent_kernel_bias reads
      rbr_dense.conv's weight and bias as they are: it is meant to run after
      YOLOv6's fuse_model (which folds each ConvModule's BN into its conv), and
      it leaves the post-sum BN out (switch_to_deploy keeps self.bn, "for QAT").
      So here pre_bn_weight / pre_bn_bias = fuse_model(copy) then
      get_equivalent_kernel_bias(), and fused_weight / fused_bias = the authors'
      _fuse_extra_bn_tensor(pre_bn_weight, pre_bn_bias, bn) (defined there,
      unused in the repository) folding the post-sum BN too.  Variant
      "yolov6_initialize_weights": YOLOv6's initialize_weights(block) applied
      after construction, as every YOLOv6 Model does (all BNs eps=1e-3,
      momentum=0.03; the default variant keeps PyTorch's 1e-5 / 0.1).
  OREPA (its defaults: deploy=False, nonlinear=None i.e. Identity,
      internal_channels_1x1_3x3=None, single_init=False, weight_only=False,
      init_hyper_para=init_hyper_gamma=1.0): no BN inside the branches, one
      per-branch per-output-channel scaling "vector" [6, out], one BN after the
      composed kernel's conv.  OREPA_1x1 and OREPA_LargeConv are the blocks
      that convnet_utils.choose_blk gives a 1x1 and a >= 7 kernel when the
      block type is 'OREPA' (ResNet: bottleneck 1x1 convs and downsample
      shortcut, the 7x7 stem).  pre_bn_weight = weight_gen(),
      fused_weight / fused_bias = get_equivalent_kernel_bias().  OREPA with
      K != 3 is skipped: fre_init fills only h, w < 3 of weight_orepa_prior,
      the rest is torch.Tensor's uninitialised memory.

Grid: (in, out, K, stride, padding) = (4,6,3,1,1), (4,6,3,2,1), (6,6,3,1,1)
for the 3x3 blocks (plus (4,6,5,1,2) for OREPA, recorded as skipped), OREPA_1x1
(4,6,1,1,0) (its out > in branch: l2i_conv1 [in,in,1,1] starts as the identity)
and (6,4,1,2,0) (out <= in: l2i_conv2 [out,out,1,1] starts as the identity),
OREPA_LargeConv (4,6,7,2,3) (the stem's K, stride and padding).

In each case, after torch.manual_seed(SEED) and construction, every trainable
parameter and BN statistic is drawn again from a generator seeded per case, in
state_dict order: conv-like weights (all of OREPA's weight_*, including
weight_orepa_1x1_kxk_idconv1, the offset that the authors start at 0, and
OREPA_1x1's identity-started l2i factor), BN bias and running_mean in
[-0.5, 0.5); BN weight, running_var and OREPA's "vector" in [0.5, 1.5).  The
non-trainable constant buffers (OREPA's weight_orepa_avg_avg, id_tensor,
weight_orepa_prior) stay as the authors build them; they are in "params" with
the rest of the state_dict and named in "constant_buffers".  The draws and the
input x [2, in, 9, 9] (N(0, 1) with a seed per input-channel count, as in
make_structural_reference.py) are multiples of 1/64.  Recorded per case:

  params        the state_dict (the authors' names, in their order)
  trainable     the names of named_parameters(), in order
  eval_output   block.eval()(x)
  train_output  a copy, block.train()(x) (batch statistics)
  pre_bn_weight (pre_bn_bias)   the kernel before the final BN, as above
  fused_weight, fused_bias      the whole block as one conv (eval state)
  grad_G, eval_grads   (first grid case of each OREPA block) G drawn like the
                parameters, the gradient of sum(block.eval()(x) * G) with
                respect to every entry of trainable

and checked here, aborting otherwise (to 1e-9): conv2d(x, fused_weight,
fused_bias, stride, padding) and the block after its own switch_to_deploy()
(for QARepVGG: after fuse_model then switch_to_deploy, its kept BN included)
match eval_output; for QARepVGG also bn(conv2d(x, pre_bn_weight, pre_bn_bias)).

RepOpt cases ("RepOptVGG"): a 3x3 conv, stride 1, padding 1, in = out = 4
(identity branch) and in = 4, out = 6.  Per-channel scales drawn in [0.5, 1.5)
(scale_conv and scale_1x1, plus scale_identity when in = out).  The handler
reads blocks from model.stage0..stage4, so the conv is given to it as the only
block (a RealVGGBlock of repoptvgg_model.py) of a container with empty
stage1..stage4; it is built with cpu_mode=True (else the masks go to CUDA).
Recorded: grad_mults {"sgd", "adamw"} from RepOptVGGHandler.generate_grad_mults
with update_rule 'sgd' / 'adamw'; reinit: the weight after
RepOptVGGHandler.reinitialize() (use_identity_scales_for_reinit True, and False
when there is an identity) from a drawn conv weight; reinitialize() draws its
1x1 kernel with a fresh nn.Conv2d(in, out, 1): the 1x1 conv it creates is given
a drawn weight (recorded as kernel_1x1) by wrapping nn.Conv2d, through the
module's name "nn", for that call only; optimizer_steps: from a drawn weight and
two drawn gradients, the weight (and optimizer state) after 1 and 2 steps of
RepOptimizerSGD (nesterov False and True) and RepOptimizerAdamW with the masks
of the matching rule, the hyper-parameters recorded with them (those of
check_equivalency.py: lr 0.1, momentum 0.9, weight decay 0.1, AdamW betas
(0.9, 0.999), eps 1e-8).  The steps are also recomputed here from the formulas
written out below (to 1e-12).  Checked, aborting otherwise (to 1e-9): the
property of check_equivalency.py, on the authors' classes, 3 training steps of
loss = output.var() on drawn inputs [4, in, 8, 8]: the CSLA block
(LinearAddBlock(is_csla=True), drawn scales, torch.optim.SGD / AdamW) against
the RealVGGBlock initialised by reinitialize() from the same kernels and trained
by RepOptimizerSGD / RepOptimizerAdamW with the masks, both with the authors'
set_weight_decay groups; same equivalent kernel, BN state and outputs.  For
AdamW this holds only with eps = 0 (eps is not scale-invariant), so the check
runs AdamW with eps = 0 and records the residual with eps = 1e-8 without
checking it.

Values are float64 written with Python's repr (the shortest decimal that reads
back as the same double).
"""
import argparse
import contextlib
import copy
import importlib
import json
import math
import os
import sys
import traceback
import types


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_common import load_module, sha256, tensor, write_cases  # noqa: E402

SEED = 1234
GRID = [
    # in, out, K, stride, padding
    (4, 6, 3, 1, 1),
    (4, 6, 3, 2, 1),
    (6, 6, 3, 1, 1),  # in == out, stride 1: QARepVGG's identity (and V2's avg) branch is present
]
INPUT_SHAPE_NHW = (2, 9, 9)
TOLERANCE = 1e-9
STEP_TOLERANCE = 1e-12  # RepOpt steps against the formulas written out here
QUANTUM = 64  # drawn parameters and inputs are multiples of 1/QUANTUM
COMMITS = {
    "meituan/YOLOv6": "e86a483f3f6bded25d45970b56831345a99744a4",
    "JUGGHM/OREPA_CVPR2022": "3ed037beeb106cc1c3d011eb2678cebfefc4cba0",
    "DingXiaoH/RepOptimizers": "2e45ff5388e9d7aabf112d7e2973df8183e6c6d9",
}
QA_KWARGS = {"deploy": False, "use_se": False}
# block name, variant, constructor keyword arguments beyond (in, out, K, stride, padding), grid cases
BLOCKS = [
    ("QARepVGGBlock", "default", QA_KWARGS, GRID),
    ("QARepVGGBlock", "yolov6_initialize_weights", QA_KWARGS, GRID[2:]),
    ("QARepVGGBlockV2", "default", QA_KWARGS, GRID),
    ("QARepVGGBlockV2", "yolov6_initialize_weights", QA_KWARGS, GRID[2:]),
    ("OREPA", "default", {"deploy": False}, GRID + [(4, 6, 5, 1, 2)]),
    ("OREPA_1x1", "default", {"deploy": False}, [(4, 6, 1, 1, 0), (6, 4, 1, 2, 0)]),
    ("OREPA_LargeConv", "default", {"deploy": False}, [(4, 6, 7, 2, 3)]),
]
GRADIENT_BLOCKS = ("OREPA", "OREPA_1x1", "OREPA_LargeConv")  # gradients recorded for their first grid case
CONSTANT_BUFFERS = ("weight_orepa_avg_avg", "id_tensor", "weight_orepa_prior")
SCALE_LIKE = ("vector",)  # drawn in [0.5, 1.5) like BN weights

REPOPT_CASES = [(4, 4), (4, 6)]  # (in, out), K 3, stride 1, padding 1
SGD_HYPER = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1}
ADAMW_HYPER = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}
EQUIV_STEPS = 3
EQUIV_INPUT_NHW = (4, 8, 8)

PROG = "make_rep_reference.py"


def fail(message):
    sys.exit(f"{PROG}: {message}")


def need_file(path):
    if not os.path.isfile(path):
        fail(f"{path}: not there")
    return path




def import_from(root, dotted, stubbed, first_party):
    """Imports dotted with root first on sys.path; stands in empty modules for missing third-party ones."""
    if root not in sys.path:
        sys.path.insert(0, root)
    for _ in range(20):
        try:
            module = importlib.import_module(dotted)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".")[0] == first_party or e.name in sys.modules:
                raise
            sys.modules[e.name] = types.ModuleType(e.name)
            stubbed.append(e.name)
            for key in [k for k in sys.modules if k == dotted or k.startswith(first_party + ".")]:
                del sys.modules[key]
            continue
        expected = os.path.join(root, *dotted.split(".")) + ".py"
        if os.path.realpath(module.__file__) != os.path.realpath(expected):
            fail(f"{dotted} came from {module.__file__}, not {expected}")
        return module
    fail(f"could not import {dotted}")






class Drawer:
    """Uniform draws on the multiples of 1/QUANTUM in [lo, hi), from its own generator."""

    def __init__(self, seed):
        import torch

        self.g = torch.Generator().manual_seed(seed)

    def draw(self, shape, lo, hi):
        import torch

        steps = int(round((hi - lo) * QUANTUM))
        return torch.randint(0, steps, tuple(shape), generator=self.g, dtype=torch.int64).double() / QUANTUM + lo

    def fill(self, t, lo, hi):
        t.copy_(self.draw(t.shape, lo, hi))

    def normal(self, shape):
        import torch

        return (torch.randn(tuple(shape), generator=self.g, dtype=torch.float64) * QUANTUM).round() / QUANTUM


def reinit(block, seed):
    """Draws every parameter and BN statistic again, in state_dict order; returns the constant buffers' names."""
    import torch
    import torch.nn as nn

    d = Drawer(seed)
    bns = {name for name, m in block.named_modules() if isinstance(m, nn.BatchNorm2d)}
    params = {name for name, _ in block.named_parameters()}
    constant = []
    with torch.no_grad():
        for key, value in block.state_dict(keep_vars=True).items():
            owner, _, leaf = key.rpartition(".")
            if owner in bns:
                if leaf in ("weight", "running_var"):
                    d.fill(value, 0.5, 1.5)
                elif leaf in ("bias", "running_mean"):
                    d.fill(value, -0.5, 0.5)
                elif leaf != "num_batches_tracked":
                    fail(f"{key} of {type(block).__name__}: unknown BN entry")
            elif key in params:
                if leaf in SCALE_LIKE:
                    d.fill(value, 0.5, 1.5)
                else:
                    d.fill(value, -0.5, 0.5)
            elif leaf in CONSTANT_BUFFERS:
                constant.append(key)
            else:
                fail(f"{key} of {type(block).__name__} is neither drawn nor a known constant buffer")
    return constant


def bn_settings(block):
    import torch.nn as nn

    settings = {(m.eps, m.momentum) for m in block.modules() if isinstance(m, nn.BatchNorm2d)}
    if len(settings) != 1:
        fail(f"BNs of {type(block).__name__} differ: {settings}")
    eps, momentum = settings.pop()
    return {"eps": eps, "momentum": momentum}


def module_case(bname, variant, kwargs, bi, ci, geometry, classes, yolo_utils, inputs, notes, skipped):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    cin, cout, k, stride, pad = geometry
    name = f"{bname}{'' if variant == 'default' else '_' + variant}_in{cin}_out{cout}_k{k}_s{stride}_p{pad}"
    where = {"name": name, "block": bname, "variant": variant, "in": cin, "out": cout, "k": k,
             "stride": stride, "padding": pad}
    if bname == "OREPA" and k != 3:
        skipped.append(dict(where, reason="OREPA.fre_init fills weight_orepa_prior[:, h, w] for h, w < 3 only "
                                          "(blocks.py: 'for h in range(3)'); for K != 3 the rest of that buffer "
                                          "is the uninitialised memory of torch.Tensor(out, K, K)"))
        print(f"make_rep_reference: {name} skipped (fre_init is 3x3 only)", file=sys.stderr)
        return None
    torch.manual_seed(SEED)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            block = classes[bname](cin, cout, k, stride=stride, padding=pad, **kwargs)
    except AssertionError as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        skipped.append(dict(where, reason=f"constructor assertion: {tb.line} ({os.path.basename(tb.filename)}:{tb.lineno})"))
        print(f"make_rep_reference: {name} skipped: {tb.line}", file=sys.stderr)
        return None
    qa = bname.startswith("QARepVGG")
    if variant == "yolov6_initialize_weights":
        yolo_utils.initialize_weights(block)
    if qa:
        block.nonlinearity = nn.Identity()  # its ReLU is not part of conv + BN
    block = block.double()
    constant = reinit(block, SEED + 1000 * bi + 10 * ci)
    x = inputs[cin]
    case = dict(where)
    case["constructor"] = dict(kwargs)

    with torch.no_grad():
        block.eval()
        eval_out = block(x)
        residual = {}
        if qa:
            unfused = copy.deepcopy(block)
            k_unfused, b_unfused = unfused.get_equivalent_kernel_bias()
            try:
                unfused.switch_to_deploy()
                unfused_deploy = "no error"
            except Exception as e:  # noqa: BLE001 -- recorded, as the authors' behaviour
                unfused_deploy = f"{type(e).__name__}: {e}"
            note = (f"{bname}.get_equivalent_kernel_bias() without fuse_model returns bias "
                    f"{'None' if b_unfused is None else 'a tensor'} and rbr_dense.conv.weight unfolded; "
                    f"switch_to_deploy() then: {unfused_deploy}")
            if note not in notes:
                notes.append(note)
            fused_model = copy.deepcopy(block)
            yolo_utils.fuse_model(fused_model)
            pre_w, pre_b = fused_model.get_equivalent_kernel_bias()
            pre_w, pre_b = pre_w.detach().clone(), pre_b.detach().clone()
            fused_w, fused_b = fused_model._fuse_extra_bn_tensor(pre_w, pre_b, fused_model.bn)
            pre_out = fused_model.bn(F.conv2d(x, pre_w, pre_b, stride=stride, padding=pad))
            residual["pre_bn_conv2d_then_bn"] = (pre_out - eval_out).abs().max().item()
            deployed = copy.deepcopy(fused_model)
            with contextlib.redirect_stdout(sys.stderr):
                deployed.switch_to_deploy()
        else:
            pre_w, pre_b = block.weight_gen().detach().clone(), None
            fused_w, fused_b = block.get_equivalent_kernel_bias()
            deployed = copy.deepcopy(block)
            with contextlib.redirect_stdout(sys.stderr):
                deployed.switch_to_deploy()
        fused_w, fused_b = fused_w.detach().clone(), fused_b.detach().clone()
        if fused_w.dtype != torch.float64 or fused_b.dtype != torch.float64:
            fail(f"{name}: fused kernel is {fused_w.dtype}")
        residual["fused_conv2d"] = (F.conv2d(x, fused_w, fused_b, stride=stride, padding=pad) - eval_out).abs().max().item()
        deployed.eval()
        residual["switch_to_deploy"] = (deployed(x) - eval_out).abs().max().item()
        trained = copy.deepcopy(block)
        trained.train()
        train_out = trained(x)
    if not all(r <= TOLERANCE for r in residual.values()):
        fail(f"{name}: fused conv differs from the eval output: {residual}")
    print(f"make_rep_reference: {name} max|eval| {eval_out.abs().max().item():.3g} residuals "
          + " ".join(f"{key} {value:.3g}" for key, value in residual.items()), file=sys.stderr)

    case.update({
        "nonlinearity_removed": qa,
        "bn": bn_settings(block),
        "trainable": [n for n, _ in block.named_parameters()],
        "constant_buffers": constant,
        "params": {key: tensor(value) for key, value in block.state_dict().items()},
        "input": tensor(x),
        "eval_output": tensor(eval_out),
        "train_output": tensor(train_out),
        "pre_bn_weight": tensor(pre_w),
    })
    if pre_b is not None:
        case["pre_bn_bias"] = tensor(pre_b)
    case.update({"fused_weight": tensor(fused_w), "fused_bias": tensor(fused_b), "residual": residual})

    if bname in GRADIENT_BLOCKS and ci == 0:
        g_block = copy.deepcopy(block)
        g_block.eval()
        g_block.zero_grad(set_to_none=True)
        G = Drawer(SEED + 1000 * bi + 10 * ci + 5).draw(eval_out.shape, -0.5, 0.5)
        (g_block(x) * G).sum().backward()
        grads = {}
        for n, p in g_block.named_parameters():
            if p.grad is None:
                fail(f"{name}: no gradient for {n}")
            grads[n] = tensor(p.grad)
        case["grad_G"] = tensor(G)
        case["eval_grads"] = grads
    return case


class Container:
    """Factory of the stand-in for RepOptVGG that RepOptVGGHandler walks: stage0 = the block, stage1..4 empty."""

    @staticmethod
    def make(block):
        import torch.nn as nn

        model = nn.Module()
        model.stage0 = block
        for i in range(1, 5):
            setattr(model, f"stage{i}", nn.Sequential())
        return model


@contextlib.contextmanager
def conv1x1_weight(module, kernel):
    """While active, the nn.Conv2d that module creates gets kernel as its weight."""
    real_nn = module.nn

    class NN:
        def __getattr__(self, attr):
            return getattr(real_nn, attr)

        @staticmethod
        def Conv2d(*args, **kwargs):  # noqa: N802 -- stands for nn.Conv2d
            conv = real_nn.Conv2d(*args, **kwargs)
            if tuple(conv.weight.shape) != tuple(kernel.shape):
                fail(f"reinitialize's 1x1 conv is {tuple(conv.weight.shape)}, not {tuple(kernel.shape)}")
            conv.weight.data = kernel.clone()
            return conv

    module.nn = NN()
    try:
        yield
    finally:
        module.nn = real_nn


def sgd_by_formula(w, grads, mult, momentum, dampening, weight_decay, nesterov, lr):
    out, buf = [], None
    for g in grads:
        d = g * mult + weight_decay * w
        buf = d.clone() if buf is None else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
        w = w - lr * d
        out.append(w)
    return out


def adamw_by_formula(w, grads, mult, lr, betas, eps, weight_decay):
    import torch

    out, m, v = [], torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g * mult
        w = w * (1 - lr * weight_decay)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        denom = v.sqrt() / math.sqrt(1 - betas[1] ** t) + eps
        w = w - (lr / (1 - betas[0] ** t)) * (m * mult) / denom
        out.append(w)
    return out


def repopt_case(ri, cin, cout, rep):
    import torch
    import torch.nn.functional as F

    impl, model_mod, sgd_mod, adamw_mod = rep["impl"], rep["model"], rep["sgd"], rep["adamw"]
    name = f"RepOptVGG_in{cin}_out{cout}_k3_s1_p1"
    identity = cin == cout
    d = Drawer(SEED + 5000 + 100 * ri)
    s_conv = d.draw([cout], 0.5, 1.5)
    s_1x1 = d.draw([cout], 0.5, 1.5)
    s_id = d.draw([cout], 0.5, 1.5) if identity else None
    scales = (s_id, s_1x1, s_conv) if identity else (s_1x1, s_conv)  # the handler's order
    w3 = d.draw([cout, cin, 3, 3], -0.5, 0.5)
    k1 = d.draw([cout, cin, 1, 1], -0.5, 0.5)
    w0 = d.draw([cout, cin, 3, 3], -0.5, 0.5)
    grads = [d.draw([cout, cin, 3, 3], -0.5, 0.5) for _ in range(2)]

    def plain(weight):
        model = Container.make(model_mod.RealVGGBlock(cin, cout, stride=1))
        model.stage0.conv.weight.data = weight.clone()
        return model

    def handler(model, rule, use_id=True):
        return impl.RepOptVGGHandler(model, [scales], reinit=True, use_identity_scales_for_reinit=use_id,
                                     cpu_mode=True, update_rule=rule)

    # Gradient multipliers, checked against the formula (scale ** power, + scale_1x1 ** power at the
    # centre, + 1 at the centre of the diagonal when there is an identity; power 2 for SGD, 1 for AdamW).
    mults = {}
    for rule, power in (("sgd", 2), ("adamw", 1)):
        model = plain(w3)
        with contextlib.redirect_stdout(sys.stderr):
            mask = handler(model, rule).generate_grad_mults()[model.stage0.conv.weight]
        expect = torch.ones(cout, cin, 3, 3) * (s_conv ** power).view(-1, 1, 1, 1)
        expect[:, :, 1, 1] += (s_1x1 ** power).view(-1, 1)
        if identity:
            expect[torch.arange(cout), torch.arange(cin), 1, 1] += 1.0
        if (mask - expect).abs().max().item() > 0:
            fail(f"{name}: {rule} mask differs from the formula")
        mults[rule] = mask.detach().clone()

    # Initialisation of the conv from the scales.
    reinit_rec = {"conv_weight": tensor(w3), "kernel_1x1": tensor(k1)}
    for use_id in ((True, False) if identity else (True,)):
        model = plain(w3)
        with contextlib.redirect_stdout(sys.stderr), conv1x1_weight(impl, k1):
            handler(model, "sgd", use_id).reinitialize()
        got = model.stage0.conv.weight.detach().clone()
        expect = w3 * s_conv.view(-1, 1, 1, 1) + F.pad(k1 * s_1x1.view(-1, 1, 1, 1), [1, 1, 1, 1])
        if identity:
            expect[torch.arange(cout), torch.arange(cin), 1, 1] += s_id if use_id else 1.0
        if (got - expect).abs().max().item() > STEP_TOLERANCE:
            fail(f"{name}: reinitialize differs from the formula")
        reinit_rec["weight" if use_id else "weight_identity_unscaled"] = tensor(got)

    # One and two optimizer steps.
    steps = {"weight": tensor(w0), "grads": [tensor(g) for g in grads]}
    runs = [("sgd", "sgd", dict(SGD_HYPER, nesterov=False)), ("sgd_nesterov", "sgd", dict(SGD_HYPER, nesterov=True)),
            ("adamw", "adamw", dict(ADAMW_HYPER))]
    for key, rule, hyper in runs:
        model = plain(w0)
        p = model.stage0.conv.weight
        with contextlib.redirect_stdout(sys.stderr):
            gmap = handler(model, rule).generate_grad_mults()
            if rule == "sgd":
                opt = sgd_mod.RepOptimizerSGD(gmap, [p], **hyper)
            else:
                opt = adamw_mod.RepOptimizerAdamW(gmap, [p], **hyper)
        after, state = [], {}
        for g in grads:
            p.grad = g.clone()
            opt.step()
            after.append(p.detach().clone())
            for skey, svalue in opt.state[p].items():
                if torch.is_tensor(svalue) and svalue.dim() > 0:
                    state.setdefault(skey, []).append(tensor(svalue))
        if rule == "sgd":
            expect = sgd_by_formula(w0, grads, mults["sgd"], hyper["momentum"], hyper["dampening"],
                                    hyper["weight_decay"], hyper["nesterov"], hyper["lr"])
        else:
            expect = adamw_by_formula(w0, grads, mults["adamw"], hyper["lr"], hyper["betas"], hyper["eps"],
                                      hyper["weight_decay"])
        r = max((a - e).abs().max().item() for a, e in zip(after, expect))
        if r > STEP_TOLERANCE:
            fail(f"{name}: {key} steps differ from the formula by {r:.3g}")
        steps[key] = {"optimizer": "RepOptimizerSGD" if rule == "sgd" else "RepOptimizerAdamW",
                      "grad_mults": rule, "hyper": {hk: (list(hv) if isinstance(hv, tuple) else hv)
                                                    for hk, hv in hyper.items()},
                      "weight_after": [tensor(a) for a in after],
                      "state_after": state, "residual_vs_formula": r}

    # check_equivalency.py's property on the authors' CSLA block and RealVGGBlock.
    xs = [d.normal((EQUIV_INPUT_NHW[0], cin) + EQUIV_INPUT_NHW[1:]) for _ in range(EQUIV_STEPS + 1)]
    equivalence = {"steps": EQUIV_STEPS, "input_shape": [EQUIV_INPUT_NHW[0], cin, *EQUIV_INPUT_NHW[1:]],
                   "loss": "output.var()", "branched": "LinearAddBlock(is_csla=True) + torch.optim",
                   "plain": "RealVGGBlock + reinitialize() + RepOptimizer*"}
    for key, rule, hyper, checked in (("sgd", "sgd", dict(SGD_HYPER, nesterov=False), True),
                                      ("sgd_nesterov", "sgd", dict(SGD_HYPER, nesterov=True), True),
                                      ("adamw_eps0", "adamw", dict(ADAMW_HYPER, eps=0.0), True),
                                      ("adamw_eps1e-08", "adamw", dict(ADAMW_HYPER), False)):
        res = equivalence_run(cin, cout, identity, s_conv, s_1x1, s_id, w3, k1, rule, hyper, xs, rep)
        res["checked"] = checked
        equivalence[key] = res
        worst = max(v for k_, v in res.items() if k_.startswith("residual"))
        print(f"make_rep_reference: {name} equivalence {key}: worst residual {worst:.3g}", file=sys.stderr)
        if checked and not worst <= TOLERANCE:
            fail(f"{name}: check_equivalency property fails for {key}: {res}")

    return {
        "name": name, "block": "RepOptVGG", "variant": "default", "in": cin, "out": cout, "k": 3, "stride": 1,
        "padding": 1, "identity": identity,
        "scales": dict({"conv": tensor(s_conv), "1x1": tensor(s_1x1)},
                       **({"identity": tensor(s_id)} if identity else {})),
        "scales_tuple_order": ["identity", "1x1", "conv"] if identity else ["1x1", "conv"],
        "grad_mults": {rule: tensor(m) for rule, m in mults.items()},
        "reinit": reinit_rec,
        "optimizer_steps": steps,
        "equivalence": equivalence,
    }


def equivalence_run(cin, cout, identity, s_conv, s_1x1, s_id, w3, k1, rule, hyper, xs, rep):
    import torch
    import torch.nn.functional as F

    impl, model_mod, sgd_mod, adamw_mod, wd_mod = rep["impl"], rep["model"], rep["sgd"], rep["adamw"], rep["wd"]
    csla = model_mod.LinearAddBlock(cin, cout, stride=1, is_csla=True, conv_scale_init=1.0)
    with torch.no_grad():
        csla.conv.weight.copy_(w3)
        csla.conv_1x1.weight.copy_(k1)
        csla.scale_conv.weight.copy_(s_conv)
        csla.scale_1x1.weight.copy_(s_1x1)
        if identity:
            csla.scale_identity.weight.copy_(s_id)
    branched = Container.make(csla)
    with contextlib.redirect_stdout(sys.stderr):
        scales = impl.extract_scales(branched)
    target = Container.make(model_mod.RealVGGBlock(cin, cout, stride=1))
    target.stage0.conv.weight.data = w3.clone()
    with contextlib.redirect_stdout(sys.stderr):
        handler = impl.RepOptVGGHandler(target, scales, reinit=True, use_identity_scales_for_reinit=True,
                                        cpu_mode=True, update_rule=rule)
        with conv1x1_weight(impl, k1):
            handler.reinitialize()
        gmap = handler.generate_grad_mults()
        if rule == "sgd":
            opt_b = torch.optim.SGD(wd_mod.set_weight_decay(branched), **hyper)
            opt_t = sgd_mod.RepOptimizerSGD(gmap, wd_mod.set_weight_decay(target), **hyper)
        else:
            opt_b = torch.optim.AdamW(wd_mod.set_weight_decay(branched), **hyper)
            opt_t = adamw_mod.RepOptimizerAdamW(gmap, wd_mod.set_weight_decay(target), **hyper)
    branched.train()
    target.train()
    for x in xs[:-1]:
        for model, opt in ((branched, opt_b), (target, opt_t)):
            opt.zero_grad()
            loss = model.stage0(x).var()
            loss.backward()
            opt.step()
    with torch.no_grad():
        eq = csla.conv.weight * csla.scale_conv.weight.view(-1, 1, 1, 1) + \
            F.pad(csla.conv_1x1.weight * csla.scale_1x1.weight.view(-1, 1, 1, 1), [1, 1, 1, 1])
        if identity:
            eq[torch.arange(cout), torch.arange(cin), 1, 1] += csla.scale_identity.weight
        r_kernel = (eq - target.stage0.conv.weight).abs().max().item()
        r_bn = max((a - b).abs().max().item() for a, b in
                   zip([csla.bn.weight, csla.bn.bias, csla.bn.running_mean, csla.bn.running_var],
                       [target.stage0.bn.weight, target.stage0.bn.bias, target.stage0.bn.running_mean,
                        target.stage0.bn.running_var]))
        r_train = (copy.deepcopy(csla)(xs[-1]) - copy.deepcopy(target.stage0)(xs[-1])).abs().max().item()
        csla.eval()
        target.stage0.eval()
        r_eval = (csla(xs[-1]) - target.stage0(xs[-1])).abs().max().item()
    return {"hyper": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hyper.items()},
            "residual_kernel": r_kernel, "residual_bn": r_bn, "residual_train_output": r_train,
            "residual_eval_output": r_eval}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yolov6", required=True, help="checkout of meituan/YOLOv6 (its yolov6/ folder at least)")
    parser.add_argument("--orepa", required=True, help="checkout of JUGGHM/OREPA_CVPR2022")
    parser.add_argument("--repopt", required=True, help="checkout of DingXiaoH/RepOptimizers")
    parser.add_argument("--yolov6-commit", default=COMMITS["meituan/YOLOv6"])
    parser.add_argument("--orepa-commit", default=COMMITS["JUGGHM/OREPA_CVPR2022"])
    parser.add_argument("--repopt-commit", default=COMMITS["DingXiaoH/RepOptimizers"])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    import numpy
    import torch

    torch.set_default_dtype(torch.float64)
    yolo, orepa, repopt = (os.path.abspath(p) for p in (args.yolov6, args.orepa, args.repopt))
    files = {
        "YOLOv6/yolov6/layers/common.py": os.path.join(yolo, "yolov6", "layers", "common.py"),
        "YOLOv6/yolov6/utils/torch_utils.py": os.path.join(yolo, "yolov6", "utils", "torch_utils.py"),
        "YOLOv6/yolov6/utils/general.py": os.path.join(yolo, "yolov6", "utils", "general.py"),
        "YOLOv6/yolov6/utils/events.py": os.path.join(yolo, "yolov6", "utils", "events.py"),
        "OREPA_CVPR2022/blocks.py": os.path.join(orepa, "blocks.py"),
        "OREPA_CVPR2022/basic.py": os.path.join(orepa, "basic.py"),
        "OREPA_CVPR2022/dbb_transforms.py": os.path.join(orepa, "dbb_transforms.py"),
        "RepOptimizers/repoptimizer/repoptvgg_impl.py": os.path.join(repopt, "repoptimizer", "repoptvgg_impl.py"),
        "RepOptimizers/repoptimizer/repoptvgg_model.py": os.path.join(repopt, "repoptimizer", "repoptvgg_model.py"),
        "RepOptimizers/repoptimizer/repoptimizer_sgd.py": os.path.join(repopt, "repoptimizer", "repoptimizer_sgd.py"),
        "RepOptimizers/repoptimizer/repoptimizer_adamw.py":
            os.path.join(repopt, "repoptimizer", "repoptimizer_adamw.py"),
        "RepOptimizers/repoptimizer/repoptimizer_utils.py":
            os.path.join(repopt, "repoptimizer", "repoptimizer_utils.py"),
        "RepOptimizers/scale_layer.py": os.path.join(repopt, "scale_layer.py"),
        "RepOptimizers/se_block.py": os.path.join(repopt, "se_block.py"),
        "RepOptimizers/optimizer.py": os.path.join(repopt, "optimizer.py"),
        "RepOptimizers/check_equivalency.py": os.path.join(repopt, "check_equivalency.py"),
    }
    for path in files.values():
        need_file(path)

    stubbed = []
    with contextlib.redirect_stdout(sys.stderr):
        common = import_from(yolo, "yolov6.layers.common", stubbed, "yolov6")
        yolo_utils = import_from(yolo, "yolov6.utils.torch_utils", stubbed, "yolov6")
        orepa_blocks = load_module("blocks", files["OREPA_CVPR2022/blocks.py"])  # imports basic, dbb_transforms
        rep = {
            "impl": import_from(repopt, "repoptimizer.repoptvgg_impl", stubbed, "repoptimizer"),
            "model": import_from(repopt, "repoptimizer.repoptvgg_model", stubbed, "repoptimizer"),
            "sgd": import_from(repopt, "repoptimizer.repoptimizer_sgd", stubbed, "repoptimizer"),
            "adamw": import_from(repopt, "repoptimizer.repoptimizer_adamw", stubbed, "repoptimizer"),
            "wd": load_module("authors_repopt_optimizer", files["RepOptimizers/optimizer.py"]),
        }
    for mod_name, key in (("basic", "OREPA_CVPR2022/basic.py"), ("dbb_transforms", "OREPA_CVPR2022/dbb_transforms.py"),
                          ("scale_layer", "RepOptimizers/scale_layer.py"), ("se_block", "RepOptimizers/se_block.py")):
        if os.path.realpath(sys.modules[mod_name].__file__) != os.path.realpath(files[key]):
            fail(f"{mod_name} came from {sys.modules[mod_name].__file__}, not {files[key]}")
    classes = {
        "QARepVGGBlock": common.QARepVGGBlock,
        "QARepVGGBlockV2": common.QARepVGGBlockV2,
        "OREPA": orepa_blocks.OREPA,
        "OREPA_1x1": orepa_blocks.OREPA_1x1,
        "OREPA_LargeConv": orepa_blocks.OREPA_LargeConv,
    }

    inputs = {}
    for cin in sorted({g[0] for _, _, _, grid in BLOCKS for g in grid}):
        g = torch.Generator().manual_seed(SEED + 100 * cin)
        draw = torch.randn((INPUT_SHAPE_NHW[0], cin) + INPUT_SHAPE_NHW[1:], generator=g, dtype=torch.float64)
        inputs[cin] = (draw * QUANTUM).round() / QUANTUM

    cases, skipped, notes = [], [], []
    for bi, (bname, variant, kwargs, grid) in enumerate(BLOCKS):
        for ci, geometry in enumerate(grid):
            case = module_case(bname, variant, kwargs, bi, ci, geometry, classes, yolo_utils, inputs, notes, skipped)
            if case is not None:
                cases.append(case)
    for ri, (cin, cout) in enumerate(REPOPT_CASES):
        cases.append(repopt_case(ri, cin, cout, rep))

    head = {
        "generator": "tests/reference/make_rep_reference.py",
        "authors_code": {
            "QARepVGGBlock": "yolov6/layers/common.py (+ fuse_model, initialize_weights of yolov6/utils/torch_utils.py) "
                             "of github.com/meituan/YOLOv6",
            "QARepVGGBlockV2": "yolov6/layers/common.py (+ fuse_model, initialize_weights of "
                               "yolov6/utils/torch_utils.py) of github.com/meituan/YOLOv6; the block YOLOv6's "
                               "configs/qarepvgg/*_qa.py use (training_mode='qarepvggv2')",
            "OREPA": "blocks.py (basic.py, dbb_transforms.py) of github.com/JUGGHM/OREPA_CVPR2022",
            "OREPA_1x1": "blocks.py of github.com/JUGGHM/OREPA_CVPR2022 (choose_blk's block for K = 1)",
            "OREPA_LargeConv": "blocks.py of github.com/JUGGHM/OREPA_CVPR2022 (choose_blk's block for K >= 7)",
            "RepOptVGG": "repoptimizer/repoptvgg_impl.py, repoptimizer_sgd.py, repoptimizer_adamw.py, "
                         "repoptimizer_utils.py, repoptvgg_model.py, optimizer.py of "
                         "github.com/DingXiaoH/RepOptimizers (property of check_equivalency.py)",
        },
        "sources_sha256": {key: sha256(path) for key, path in files.items()},
        "versions": {"torch": torch.__version__, "numpy": numpy.__version__,
                     "commits": {"meituan/YOLOv6": args.yolov6_commit,
                                 "JUGGHM/OREPA_CVPR2022": args.orepa_commit,
                                 "DingXiaoH/RepOptimizers": args.repopt_commit}},
        "seed": SEED, "tolerance": TOLERANCE, "step_tolerance": STEP_TOLERANCE,
        "init": {"conv_weight": [-0.5, 0.5], "bn_weight": [0.5, 1.5], "bn_bias": [-0.5, 0.5],
                 "running_mean": [-0.5, 0.5], "running_var": [0.5, 1.5], "orepa_vector": [0.5, 1.5],
                 "repopt_scales": [0.5, 1.5], "repopt_weight_and_grads": [-0.5, 0.5], "grad_G": [-0.5, 0.5],
                 "input": "N(0,1)", "quantum": 1.0 / QUANTUM},
        "stubbed_modules": stubbed,
        "notes": notes,
        "skipped": skipped,
    }
    write_cases(args.out, head, cases)
    print(f"make_rep_reference: {len(cases)} cases, {len(skipped)} skipped, "
          f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
