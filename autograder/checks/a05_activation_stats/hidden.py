"""Hidden checks of 05_activation_stats: compare with the reference notebook's own functions.

Models and batches are built with the SAME code (and seed) in the submission and in the reference,
then what each recorded is read back and compared.  The BatchNorm experiment trains two small CNNs
inside the submission with the student's conv_bn and fit_one_cycle, and the grader evaluates them.
"""

from __future__ import annotations

import math

import torch

from autograder.authoring.api import CheckFailure, Handle, as_float, check, expect, expect_tensor, fmt_call

from .common import (
    batchnorm_experiment,
    block_values,
    fake_stats,
    load_by_role,
    run_tiny_fit,
    structure,
    tiny_data,
)

# ---------------------------------------------------------------------------------------------
# ActivationStats
# ---------------------------------------------------------------------------------------------

#: A fastbook-like CNN with BatchNorm blocks, watched on its first four blocks.
REF_MODEL = """
import torch
from torch import nn
torch.manual_seed({seed})


def _a05_block(ni, nf, ks=3, stride=2, bn=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(nf))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


_a05_net = nn.Sequential(
    _a05_block(1, 8, ks=5), _a05_block(8, 16, bn=False), _a05_block(16, 24), nn.Conv2d(24, 10, 3, padding=1),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(),
)
"""


def _record_with(ns, batches, seed=2024):
    """Run the seeded CNN on the batches (two in train mode, the last in eval mode) with ns's ActivationStats."""
    ns.exec(REF_MODEL.format(seed=seed))
    net = ns.eval("_a05_net")
    stats = ns.call("ActivationStats", ns.eval("list(_a05_net)[:4]"))
    for k, x in enumerate(batches):
        if k == len(batches) - 1:
            net.method("eval")
        net(x)
    stats.method("remove")
    return stats


def _ref_batches():
    return [torch.randn(5, 1, 20, 17) * s for s in (1.0, 4.0, 2.0)]


@check(cell="test_ActivationStats", points=2, kind="numerical",
       hint="Compare what you record with the docstring, statistic by statistic; the message names the module, "
            "the forward pass and the statistic that differ (the last pass runs in eval mode).")
def test_ActivationStats_matches_reference(sub, ref):
    batches = _ref_batches()
    got, exp = _record_with(sub, batches), _record_with(ref, batches)
    for attr in ("means", "stds", "hists"):
        g, e = got.attr(attr), exp.attr(attr)
        expect(isinstance(g, list | tuple) and len(g) == len(e),
               f"ActivationStats.{attr} should hold one list per watched module ({len(e)})")
        for i in range(len(e)):
            expect(isinstance(g[i], list | tuple) and len(g[i]) == len(e[i]),
                   f"{attr}[{i}] should have one entry per forward pass ({len(e[i])}), got "
                   f"{len(g[i]) if isinstance(g[i], list | tuple) else type(g[i]).__name__}")
            for k in range(len(e[i])):
                what = f"{attr}[{i}][{k}] (a 4-block CNN, input (5, 1, 20, 17), forward pass {k})"
                if attr == "hists":
                    expect(type(g[i][k]) is torch.Tensor, f"{what}: expected a tensor")
                    expect_tensor(g[i][k].float(), e[i][k].float(), what=what, atol=0.5, rtol=0)
                else:
                    expected = as_float(e[i][k])
                    value = as_float(g[i][k], what)
                    tol = 1e-5 + (2e-3 if attr == "stds" else 1e-4) * abs(expected)
                    expect(math.isfinite(value) and abs(value - expected) <= tol,
                           f"{what}: expected {expected:.6g}, got {value:.6g}")


_FOREIGN_HOOK = """
_a05_calls = []


def _a05_count(module, inputs, output):
    _a05_calls.append(1)


_a05_foreign = _a05_net[1].register_forward_hook(_a05_count)
with ActivationStats(list(_a05_net)[:4]) as _a05_s:
    _a05_net(_x)
_a05_s2 = ActivationStats(list(_a05_net)[:4])
_a05_s2.remove()
_a05_net(_x)
_a05_n_calls = len(_a05_calls)
"""


@check(cell="test_ActivationStats", points=1, kind="behaviour",
       hint="A module's hook dictionary also holds other people's hooks: remove only the hooks this object "
            "registered, through their handles.")
def test_ActivationStats_removes_only_its_own_hooks(sub, ref):
    sub.exec(REF_MODEL.format(seed=3))
    net = sub.eval("_a05_net")
    sub.exec(_FOREIGN_HOOK, _x=torch.randn(2, 1, 12, 12))
    n = int(net.describe()["n_forward_hooks"])
    expect(n == 1, f"a model carrying one hook of someone else's, watched by ActivationStats and then released "
                   f"(with block, then remove()), should still carry exactly that hook; it carries {n} forward hook(s)")
    calls = sub.eval("_a05_n_calls")
    expect(calls == 2, "the other hook on the model should keep running during and after ActivationStats "
                       f"(2 forward passes); it ran {calls} time(s)")


# ---------------------------------------------------------------------------------------------
# dead_fraction and color_dim, on statistics recorded by the reference
# ---------------------------------------------------------------------------------------------


def _recorded_hists(ref):
    stats = _record_with(ref, _ref_batches() + [torch.randn(5, 1, 20, 17) * 9.0], seed=77)
    return stats.attr("hists")


def _expect_on_recorded_stats(sub, ref, name):
    """``name(stats, i)`` for every module i, on the same histograms recorded from a CNN, as the reference."""
    hists = _recorded_hists(ref)
    s, r = fake_stats(sub, hists), fake_stats(ref, hists)
    for i in range(len(hists)):
        expect_tensor(getattr(sub, name)(s, i), getattr(ref, name)(r, i),
                      what=f"{name}(stats, {i}) on histograms recorded from a CNN ({len(hists[i])} batches)")


@check(cell="test_dead_fraction", points=2, kind="numerical",
       hint="First bin over the total of the same batch's histogram, for every batch.")
def test_dead_fraction_matches_reference_on_recorded_stats(sub, ref):
    _expect_on_recorded_stats(sub, ref, "dead_fraction")


@check(cell="test_color_dim", points=2, kind="numerical",
       hint="Rows are bins and columns are batches, coloured by log(1 + count) (section 4).")
def test_color_dim_matches_reference_on_recorded_stats(sub, ref):
    _expect_on_recorded_stats(sub, ref, "color_dim")


# ---------------------------------------------------------------------------------------------
# conv_bn
# ---------------------------------------------------------------------------------------------

_CONV_KEYS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")
_BN_KEYS = ("num_features", "eps", "momentum", "affine")
_CONFIGS = [(1, 8, 5, 2, True), (16, 32, 3, 1, False), (4, 4, 7, 3, True), (6, 2, 1, 1, True), (3, 12, 3, 2, False)]


def _structure(ns, ni, nf, ks, stride, act):
    """["Sequential" or the type, (kind, settings) per child]: kinds by isinstance, so subclasses count."""
    block = ns.conv_bn(ni, nf, ks=ks, stride=stride, act=act)
    if not isinstance(block, Handle):
        return None
    s = structure(ns, block)
    out = ["Sequential" if s["is_sequential"] else s["type"]]
    for kind, (_, child) in zip(s["children"], block.describe().get("children", [])):
        keys = _CONV_KEYS if kind == "Conv2d" else _BN_KEYS if kind == "BatchNorm2d" else ()
        out.append((kind, {k: child.get("attrs", {}).get(k) for k in keys}))
    return out


@check(cell="test_conv_bn", points=1, kind="behaviour",
       hint="The message names the layer and the setting that differ; the BatchNorm keeps PyTorch's defaults.")
def test_conv_bn_structure_matches_reference(sub, ref):
    for ni, nf, ks, stride, act in _CONFIGS:
        what = fmt_call("conv_bn", ni, nf, ks=ks, stride=stride, act=act)
        got, exp = _structure(sub, ni, nf, ks, stride, act), _structure(ref, ni, nf, ks, stride, act)
        expect(got is not None and got[0] == "Sequential",
               f"{what} should return an nn.Sequential (or a subclass of it), got {got[0] if got else 'no module'}")
        if got != exp:
            got_types = [g[0] if isinstance(g, tuple) else g for g in got[1:]]
            exp_types = [e[0] if isinstance(e, tuple) else e for e in exp[1:]]
            if got_types != exp_types:
                raise CheckFailure(f"{what}: expected the layers {' -> '.join(exp_types)}, got {' -> '.join(got_types)}")
            for g, e in zip(got[1:], exp[1:]):
                for key in e[1]:
                    expect(g[1].get(key) == e[1][key], f"{what}: the {e[0]}'s {key} should be {e[1][key]}, "
                                                       f"got {g[1].get(key)}")
            raise CheckFailure(f"{what}: the layers are the right kinds but their settings differ from what the "
                               "docstring asks: compare each layer's arguments with it")


@check(cell="test_conv_bn", points=1, kind="numerical",
       hint="With the same weights the block must compute what section 8 describes, in training mode (batch "
            "statistics) and in eval mode (running statistics) alike.")
def test_conv_bn_forward_matches_reference(sub, ref):
    ref.exec("_a05_rblk = conv_bn(4, 6, ks=3, stride=1)")
    ref.exec("import torch\nwith torch.no_grad():\n    _a05_rblk[1].weight.uniform_(0.5, 2.0)\n"
             "    _a05_rblk[1].bias.uniform_(-1.0, 1.0)\n    _a05_rblk[1].running_mean.uniform_(-0.5, 0.5)\n"
             "    _a05_rblk[1].running_var.uniform_(0.5, 2.0)")
    want_block = ref.eval("_a05_rblk")
    got_block = sub.conv_bn(4, 6, ks=3, stride=1)
    expect(isinstance(got_block, Handle) and load_by_role(sub, got_block, block_values(ref, want_block)),
           "conv_bn(4, 6, ks=3, stride=1) should hold one bias-free Conv2d(4, 6, 3) and one BatchNorm2d(6) with its "
           "running statistics")
    x = torch.randn(3, 4, 9, 6) * 2 + 0.5
    for mode in ("train", "eval"):   # one training pass first: it also updates the running statistics
        got_block.method(mode)
        want_block.method(mode)
        expect_tensor(got_block(x), want_block(x),
                      what=f"conv_bn(4, 6, ks=3, stride=1) in {mode} mode, same weights, on an input (3, 4, 9, 6)")


# ---------------------------------------------------------------------------------------------
# fit_one_cycle
# ---------------------------------------------------------------------------------------------


@check(cell="test_fit_one_cycle", points=2, kind="numerical", timeout=180,
       hint="Same data, same seed, same model: weights that differ mean the optimiser, its momentum, the schedule "
            "or the train/eval switches differ from the docstring.")
def test_fit_one_cycle_weights_match_reference(sub, ref):
    data = tiny_data(48, 16)
    states = []
    for ns in (sub, ref):
        run_tiny_fit(ns, 2, 0.08, seed=9, shuffle=False, data=data)
        states.append(ns.eval("[(k, v.detach().clone()) for k, v in _a05_model.state_dict().items()]"))
    got, exp = states
    expect(len(got) == len(exp), "the trained model's state_dict changed size")
    for (name, g), (_, e) in zip(got, exp):
        expect_tensor(g, e, atol=1e-4, rtol=1e-3,
                      what=f"after fit_one_cycle(model, 2, 0.08, ...) on a small CNN with BatchNorm, '{name}'")


# ---- conv_bn (test_conv_bn cell): BatchNorm against plain, trained with the student's functions ----

@check(cell="test_conv_bn", points=2, kind="accuracy", timeout=600,
       hint="BatchNorm in the right place keeps the last block's activations alive; with your fit_one_cycle the "
            "BatchNorm network should train better in the same steps (experiment 4).")
def test_conv_bn_batchnorm_beats_plain(sub, ref):
    r = batchnorm_experiment(sub, seed=0)
    expect(r["batchnorm_acc"] > r["plain_acc"],
           f"fastbook's CNN trained for one epoch on 4000 images with your fit_one_cycle (max_lr=0.2, batch size 64): "
           f"with your conv_bn blocks it reached accuracy {r['batchnorm_acc']:.3f}, without BatchNorm "
           f"{r['plain_acc']:.3f}; BatchNorm should be clearly better")
    expect(r["batchnorm_dead"] < r["plain_dead"],
           f"in the same experiment, the final dead fraction of the last ReLU block was {r['batchnorm_dead']:.2f} "
           f"with your conv_bn and {r['plain_dead']:.2f} without BatchNorm; it should be lower with BatchNorm")
