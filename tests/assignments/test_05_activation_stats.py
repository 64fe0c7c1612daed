"""05_activation_stats: realistic wrong implementations lose points on the intended checks,
alternative correct ones get full marks (fast, in-process with ``check_code``)."""

from __future__ import annotations

import pytest
import torch

from autograder.grading.from_source import check_code

AID = "05_activation_stats"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The checks train tiny models in-process: one thread is faster (and far faster on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# ------------------------------------------------------------------------------------------------
# ActivationStats
# ------------------------------------------------------------------------------------------------

ACTIVATION_STATS = '''
class ActivationStats:
    def __init__(self, modules):
        self.modules = list(modules)
        self.means = [[] for _ in self.modules]
        self.stds = [[] for _ in self.modules]
        self.hists = [[] for _ in self.modules]

        def make_hook(i):
            def hook(module, inputs, output):
                acts = output.detach().float()
                self.means[i].append(acts.mean().item())
                self.stds[i].append(acts.std().item())
                self.hists[i].append(acts.abs().histc(40, 0, 10))
            return hook

        self.handles = [m.register_forward_hook(make_hook(i)) for i, m in enumerate(self.modules)]

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.remove()
        return False
'''


def _variant(base: str, old: str, new: str) -> str:
    assert old in base, old
    return base.replace(old, new)


AS_PUBLIC = ["test_ActivationStats_records_one_entry_per_forward_pass", "test_ActivationStats_means_and_stds",
             "test_ActivationStats_histograms", "test_ActivationStats_remove_removes_every_hook",
             "test_ActivationStats_with_block_removes_hooks", "test_ActivationStats_with_block_exception"]

# (name, source, checks that must fail)
WRONG_ACTIVATION_STATS = [
    ("__exit__ does not remove the hooks",
     _variant(ACTIVATION_STATS, "        self.remove()\n        return False", "        return False"),
     ["test_ActivationStats_with_block_removes_hooks", "test_ActivationStats_with_block_exception"]),
    ("hooks removed only when the block succeeds",
     _variant(ACTIVATION_STATS, "        self.remove()\n        return False",
              "        if exc_type is None:\n            self.remove()\n        return False"),
     ["test_ActivationStats_with_block_exception"]),
    ("__exit__ swallows the exception",
     _variant(ACTIVATION_STATS, "        self.remove()\n        return False", "        self.remove()\n        return True"),
     ["test_ActivationStats_with_block_exception"]),
    ("records the input instead of the output",
     _variant(ACTIVATION_STATS, "acts = output.detach().float()", "acts = inputs[0].detach().float()"),
     ["test_ActivationStats_means_and_stds", "test_ActivationStats_histograms",
      "test_ActivationStats_matches_reference"]),
    ("histogram without abs()",
     _variant(ACTIVATION_STATS, "acts.abs().histc(40, 0, 10)", "acts.histc(40, 0, 10)"),
     ["test_ActivationStats_histograms", "test_ActivationStats_matches_reference"]),
    ("histogram over [0, max] instead of [0, 10]",
     _variant(ACTIVATION_STATS, "acts.abs().histc(40, 0, 10)", "acts.abs().histc(40, 0, float(acts.abs().max()))"),
     ["test_ActivationStats_histograms", "test_ActivationStats_matches_reference"]),
    ("histogram with 20 bins",
     _variant(ACTIVATION_STATS, "acts.abs().histc(40, 0, 10)", "acts.abs().histc(20, 0, 10)"),
     ["test_ActivationStats_records_one_entry_per_forward_pass", "test_ActivationStats_histograms",
      "test_ActivationStats_matches_reference"]),
    ("keeps only the last handle, so remove() leaves hooks behind",
     _variant(ACTIVATION_STATS,
              "        self.handles = [m.register_forward_hook(make_hook(i)) for i, m in enumerate(self.modules)]",
              "        for i, m in enumerate(self.modules):\n"
              "            self.handle = m.register_forward_hook(make_hook(i))\n"
              "        self.handles = [self.handle]"),
     ["test_ActivationStats_remove_removes_every_hook", "test_ActivationStats_with_block_removes_hooks",
      "test_ActivationStats_with_block_exception"]),
    ("remove() clears every forward hook of the modules, other people's too",
     _variant(ACTIVATION_STATS, "        for handle in self.handles:\n            handle.remove()",
              "        for m in self.modules:\n            m._forward_hooks.clear()"),
     ["test_ActivationStats_removes_only_its_own_hooks"]),
    ("the hook returns a value (replaces the module's output)",
     _variant(ACTIVATION_STATS, "                self.hists[i].append(acts.abs().histc(40, 0, 10))",
              "                self.hists[i].append(acts.abs().histc(40, 0, 10))\n"
              "                return acts.abs()"),
     ["test_ActivationStats_records_one_entry_per_forward_pass", "test_ActivationStats_means_and_stds",
      "test_ActivationStats_histograms"]),
    ("one list shared by every module ([[]] * n)",
     _variant(ACTIVATION_STATS, "        self.means = [[] for _ in self.modules]",
              "        self.means = [[]] * len(self.modules)"),
     ["test_ActivationStats_records_one_entry_per_forward_pass", "test_ActivationStats_means_and_stds",
      "test_ActivationStats_matches_reference"]),
]

ALT_ACTIVATION_STATS = '''
import functools


class ActivationStats:
    """partial instead of a closure, 0-d tensors instead of floats, torch.histogram, biased std."""

    def __init__(self, modules):
        self.means, self.stds, self.hists, self._handles = [], [], [], []
        for i, m in enumerate(modules):
            for lst in (self.means, self.stds, self.hists):
                lst.append([])
            self._handles.append(m.register_forward_hook(functools.partial(self._record, i)))

    def _record(self, i, module, inputs, output):
        with torch.no_grad():
            a = output.float()
            self.means[i].append(a.mean())
            self.stds[i].append(a.std(correction=0))
            self.hists[i].append(torch.histogram(a.abs(), bins=40, range=(0.0, 10.0)).hist)

    def remove(self):
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()
'''

# ------------------------------------------------------------------------------------------------
# dead_fraction and color_dim
# ------------------------------------------------------------------------------------------------

DF_CHECKS = ["test_dead_fraction_small_example", "test_dead_fraction_shape_and_dtype",
             "test_dead_fraction_matches_reference_on_recorded_stats"]
WRONG_DEAD_FRACTION = [
    ("the last bin instead of the first",
     "def dead_fraction(stats, i):\n    h = torch.stack(stats.hists[i]).float()\n    return h[:, -1] / h.sum(dim=1)\n",
     ["test_dead_fraction_small_example", "test_dead_fraction_matches_reference_on_recorded_stats"]),
    ("raw counts, not normalised",
     "def dead_fraction(stats, i):\n    return torch.stack(stats.hists[i]).float()[:, 0]\n",
     ["test_dead_fraction_small_example", "test_dead_fraction_matches_reference_on_recorded_stats"]),
    ("normalised by the total over all batches",
     "def dead_fraction(stats, i):\n    h = torch.stack(stats.hists[i]).float()\n    return h[:, 0] / h.sum()\n",
     ["test_dead_fraction_small_example", "test_dead_fraction_matches_reference_on_recorded_stats"]),
    ("the first two bins",
     "def dead_fraction(stats, i):\n    h = torch.stack(stats.hists[i]).float()\n"
     "    return h[:, :2].sum(dim=1) / h.sum(dim=1)\n",
     ["test_dead_fraction_small_example", "test_dead_fraction_matches_reference_on_recorded_stats"]),
    ("divided by the number of bins",
     "def dead_fraction(stats, i):\n    h = torch.stack(stats.hists[i]).float()\n    return h[:, 0] / h.shape[1]\n",
     ["test_dead_fraction_small_example", "test_dead_fraction_matches_reference_on_recorded_stats"]),
]
ALT_DEAD_FRACTION = '''
def dead_fraction(stats, i):
    return torch.tensor([float(h[0] / h.sum()) for h in stats.hists[i]])
'''

CD_CHECKS = ["test_color_dim_small_example", "test_color_dim_shape", "test_color_dim_matches_reference_on_recorded_stats"]
WRONG_COLOR_DIM = [
    ("no log1p",
     "def color_dim(stats, i):\n    return torch.stack(stats.hists[i]).float().t()\n",
     ["test_color_dim_small_example", "test_color_dim_matches_reference_on_recorded_stats"]),
    ("not transposed: (n_batches, 40)",
     "def color_dim(stats, i):\n    return torch.stack(stats.hists[i]).float().log1p()\n",
     ["test_color_dim_small_example", "test_color_dim_shape", "test_color_dim_matches_reference_on_recorded_stats"]),
    ("log instead of log1p",
     "def color_dim(stats, i):\n    return torch.stack(stats.hists[i]).float().t().log()\n",
     ["test_color_dim_small_example", "test_color_dim_matches_reference_on_recorded_stats"]),
    ("each batch normalised before log1p",
     "def color_dim(stats, i):\n    h = torch.stack(stats.hists[i]).float()\n"
     "    return (h / h.sum(dim=1, keepdim=True)).t().log1p()\n",
     ["test_color_dim_small_example", "test_color_dim_matches_reference_on_recorded_stats"]),
]
ALT_COLOR_DIM = '''
def color_dim(stats, i):
    return torch.log1p(torch.stack([h.to(torch.float32) for h in stats.hists[i]], dim=1))
'''

# ------------------------------------------------------------------------------------------------
# conv_bn
# ------------------------------------------------------------------------------------------------

CONV_BN = '''
def conv_bn(ni, nf, ks=3, stride=2, act=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2, bias=False), nn.BatchNorm2d(nf)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)
'''
WRONG_CONV_BN = [
    ("keeps the convolution's bias",
     _variant(CONV_BN, "padding=ks // 2, bias=False)", "padding=ks // 2)"),
     ["test_conv_bn_layers", "test_conv_bn_without_activation", "test_conv_bn_structure_matches_reference",
      "test_conv_bn_forward_matches_reference"]),
    ("BatchNorm after the ReLU",
     '''
def conv_bn(ni, nf, ks=3, stride=2, act=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2, bias=False)]
    if act:
        layers.append(nn.ReLU())
    layers.append(nn.BatchNorm2d(nf))
    return nn.Sequential(*layers)
''',
     ["test_conv_bn_layers", "test_conv_bn_structure_matches_reference", "test_conv_bn_forward_matches_reference"]),
    ("act=False also drops the BatchNorm",
     '''
def conv_bn(ni, nf, ks=3, stride=2, act=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2, bias=False)]
    if act:
        layers += [nn.BatchNorm2d(nf), nn.ReLU()]
    return nn.Sequential(*layers)
''',
     ["test_conv_bn_without_activation", "test_conv_bn_structure_matches_reference"]),
    ("no padding",
     _variant(CONV_BN, "padding=ks // 2, bias=False", "bias=False"),
     ["test_conv_bn_layers", "test_conv_bn_output_shape", "test_conv_bn_structure_matches_reference"]),
    ("forgot the BatchNorm (the plain conv block again)",
     "def conv_bn(ni, nf, ks=3, stride=2, act=True):\n    return conv(ni, nf, ks, stride, act)\n",
     ["test_conv_bn_layers", "test_conv_bn_batchnorm_beats_plain"]),
]
ALT_CONV_BN = '''
from collections import OrderedDict


def conv_bn(ni, nf, ks=3, stride=2, act=True):
    parts = OrderedDict(conv=nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False),
                        bn=nn.BatchNorm2d(nf), relu=nn.ReLU())
    if not act:
        del parts["relu"]
    return nn.Sequential(parts)
'''

# ------------------------------------------------------------------------------------------------
# fit_one_cycle
# ------------------------------------------------------------------------------------------------

FIT_ONE_CYCLE = '''
def fit_one_cycle(model, epochs, max_lr, train_dl, valid_dl):
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * len(train_dl))
    history = []
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for xb, yb in train_dl:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            total += loss.item() * len(yb)
            n += len(yb)
        valid_loss, valid_acc = evaluate(model, valid_dl)
        history.append({"epoch": epoch, "train_loss": total / n, "valid_loss": valid_loss, "valid_acc": valid_acc})
    return history
'''
_PER_BATCH = "            opt.step()\n            sched.step()\n"
WRONG_FIT_ONE_CYCLE = [
    ("scheduler stepped once per epoch",
     _variant(_variant(FIT_ONE_CYCLE, _PER_BATCH, "            opt.step()\n"),
              "        valid_loss, valid_acc", "        sched.step()\n        valid_loss, valid_acc"),
     ["test_fit_one_cycle_steps_lr_every_batch", "test_fit_one_cycle_weights_match_reference"]),
    ("total_steps=epochs",
     _variant(FIT_ONE_CYCLE, "total_steps=epochs * len(train_dl)", "total_steps=epochs"),
     ["test_fit_one_cycle_steps_lr_every_batch", "test_fit_one_cycle_returns_history",
      "test_fit_one_cycle_valid_metrics", "test_fit_one_cycle_weights_match_reference"]),
    ("total_steps=len(train_dl) (forgets the epochs)",
     _variant(FIT_ONE_CYCLE, "total_steps=epochs * len(train_dl)", "total_steps=len(train_dl)"),
     ["test_fit_one_cycle_steps_lr_every_batch", "test_fit_one_cycle_returns_history",
      "test_fit_one_cycle_valid_metrics", "test_fit_one_cycle_weights_match_reference"]),
    ("scheduler stepped before the optimiser",
     _variant(FIT_ONE_CYCLE, _PER_BATCH, "            sched.step()\n            opt.step()\n"),
     ["test_fit_one_cycle_steps_lr_every_batch", "test_fit_one_cycle_weights_match_reference"]),
    ("no scheduler: constant learning rate",
     _variant(FIT_ONE_CYCLE, _PER_BATCH, "            opt.step()\n"),
     ["test_fit_one_cycle_steps_lr_every_batch", "test_fit_one_cycle_weights_match_reference"]),
    ("validation in training mode (no model.eval())",
     _variant(FIT_ONE_CYCLE, "        valid_loss, valid_acc = evaluate(model, valid_dl)\n",
              "        with torch.no_grad():\n"
              "            vl, correct, nv = 0.0, 0, 0\n"
              "            for xb, yb in valid_dl:\n"
              "                out = model(xb)\n"
              "                vl += F.cross_entropy(out, yb, reduction='sum').item()\n"
              "                correct += (out.argmax(1) == yb).sum().item()\n"
              "                nv += len(yb)\n"
              "        valid_loss, valid_acc = vl / nv, correct / nv\n"),
     ["test_fit_one_cycle_valid_metrics", "test_fit_one_cycle_weights_match_reference"]),
    ("Adam instead of SGD with momentum",
     _variant(FIT_ONE_CYCLE, "torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)",
              "torch.optim.Adam(model.parameters(), lr=max_lr)"),
     ["test_fit_one_cycle_weights_match_reference"]),
]
ALT_FIT_ONE_CYCLE = '''
def fit_one_cycle(model, epochs, max_lr, train_dl, valid_dl):
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, epochs=epochs, steps_per_epoch=len(train_dl))
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for xb, yb in train_dl:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(xb) for xb, _ in valid_dl])
            targets = torch.cat([yb for _, yb in valid_dl])
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                        "valid_loss": loss_fn(logits, targets).item(),
                        "valid_acc": (logits.argmax(dim=1) == targets).float().mean().item()})
    return history
'''

WRONG = {
    "ActivationStats": WRONG_ACTIVATION_STATS,
    "dead_fraction": WRONG_DEAD_FRACTION,
    "color_dim": WRONG_COLOR_DIM,
    "conv_bn": WRONG_CONV_BN,
    "fit_one_cycle": WRONG_FIT_ONE_CYCLE,
}
CELL = {name: f"test_{name}" for name in WRONG}
# Issue 18: other correct forms, in styles the checks do not expect, keep full marks.
ALT_ACTIVATION_STATS_NUMPY = '''
import numpy as np


class _Recorder:
    """A base class doing the work; numpy float64 statistics, hooks kept in a dict by module index."""

    def __init__(self, modules):
        modules = list(modules)
        self.means, self.stds, self.hists = ([[] for _ in modules] for _ in range(3))
        self._hooks = {i: m.register_forward_hook(self._hook(i)) for i, m in enumerate(modules)}

    def _hook(self, i):
        def record(module, args, out):
            a = out.detach().cpu().numpy().astype(np.float64)
            self.means[i].append(np.mean(a))
            self.stds[i].append(np.std(a, ddof=1))
            self.hists[i].append(torch.histc(out.detach().abs().float(), bins=40, min=0, max=10))
        return record

    def remove(self):
        for h in self._hooks.values():
            h.remove()
        self._hooks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return None


class ActivationStats(_Recorder):
    pass
'''
ALT_DEAD_FRACTION_NUMPY = '''
import numpy as np


def dead_fraction(stats, i):
    h = np.stack([t.numpy() for t in stats.hists[i]]).astype(np.float64)
    return torch.from_numpy(h[:, 0] / h.sum(axis=1)).to(torch.float32)
'''
ALT_COLOR_DIM_EINSUM = '''
def color_dim(stats, i):
    h = torch.stack(stats.hists[i]).float()
    return torch.einsum("bk->kb", h).log1p().contiguous()
'''
# The example: a small nn.Sequential subclass, as in detection code bases.
ALT_CONV_BN_SUBCLASS = '''
class Conv(nn.Sequential):
    def __init__(self, ni, nf, ks=3, stride=2, act=True):
        super().__init__()
        self.append(nn.Conv2d(ni, nf, ks, stride, padding=ks // 2, bias=False))
        self.append(nn.BatchNorm2d(nf))
        if act:
            self.append(nn.ReLU(inplace=True))


def conv_bn(ni, nf, ks=3, stride=2, act=True):
    return Conv(ni, nf, ks, stride, act)
'''
ALT_FIT_ONE_CYCLE_NUMPY = '''
import numpy as np


def fit_one_cycle(model, epochs, max_lr, train_dl, valid_dl):
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * len(train_dl))
    history = []
    for epoch in np.arange(epochs):
        model.train()
        losses = []
        for xb, yb in train_dl:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        valid_loss, valid_acc = evaluate(model, valid_dl)
        history.append({"epoch": epoch, "train_loss": np.mean(losses), "valid_loss": valid_loss,
                        "valid_acc": valid_acc, "lr": sched.get_last_lr()[0]})
    return history
'''

ALTERNATIVES = {
    "ActivationStats": [("partial, 0-d tensors, torch.histogram", ALT_ACTIVATION_STATS),
                        ("numpy statistics in a base class", ALT_ACTIVATION_STATS_NUMPY)],
    "dead_fraction": [("a Python loop", ALT_DEAD_FRACTION), ("numpy inside", ALT_DEAD_FRACTION_NUMPY)],
    "color_dim": [("stack on dim 1", ALT_COLOR_DIM), ("einsum", ALT_COLOR_DIM_EINSUM)],
    "conv_bn": [("OrderedDict", ALT_CONV_BN), ("nn.Sequential subclass", ALT_CONV_BN_SUBCLASS)],
    "fit_one_cycle": [("CrossEntropyLoss, epochs and steps_per_epoch", ALT_FIT_ONE_CYCLE),
                      ("numpy epochs and an extra key", ALT_FIT_ONE_CYCLE_NUMPY)],
}
ALT_CASES = [(fn, label, source) for fn, alts in ALTERNATIVES.items() for label, source in alts]

CASES = [(fn, name, source, failing) for fn, variants in WRONG.items() for name, source, failing in variants]


@pytest.mark.parametrize(("function", "variant", "source", "failing"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_wrong_implementation_loses_points(function, variant, source, failing):
    results = check_code(AID, {function: source}, cells=[CELL[function]])
    errors = {n: r.message for n, r in results.items() if r.status == "error"}
    assert not errors, errors
    for name in failing:
        assert name in results, name
        assert not results[name].passed and results[name].points == 0, (variant, name, results[name].status)
    earned = sum(r.points for r in results.values())
    total = sum(r.max_points for r in results.values())
    assert earned < total


def test_every_function_has_three_wrong_implementations_and_two_alternatives():
    for function, variants in WRONG.items():
        assert len(variants) >= 3, function
        assert len(ALTERNATIVES[function]) >= 2, function


@pytest.mark.parametrize(("function", "label", "source"), ALT_CASES, ids=[f"{c[0]}-{c[1]}" for c in ALT_CASES])
def test_alternative_correct_implementation_gets_full_marks(function, label, source):
    results = check_code(AID, {function: source}, cells=[CELL[function]])
    assert results
    bad = {n: r.message for n, r in results.items() if not r.passed}
    assert not bad, bad
    assert sum(r.points for r in results.values()) == sum(r.max_points for r in results.values())


def test_stubs_score_zero():
    stubs = {name: f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n" for name in ALTERNATIVES}
    stubs["ActivationStats"] = ("class ActivationStats:\n    def __init__(self, modules):\n"
                                "        raise NotImplementedError()\n")
    results = check_code(AID, stubs)
    assert all(r.points == 0 and r.status == "failed" for r in results.values()), \
        {n: r.status for n, r in results.items() if r.points or r.status != "failed"}
    assert "not implemented yet" in results["test_dead_fraction_small_example"].message


def test_hidden_messages_do_not_print_reference_outputs():
    results = check_code(AID, {"color_dim": WRONG_COLOR_DIM[0][1]}, cells=["test_color_dim"])
    message = results["test_color_dim_matches_reference_on_recorded_stats"].message
    assert "largest difference" in message and "[[" not in message and "tensor(" not in message


def test_lr_trace_message_says_per_batch():
    results = check_code(AID, {"fit_one_cycle": WRONG_FIT_ONE_CYCLE[0][1]}, cells=["test_fit_one_cycle"], hidden=False)
    assert "once per BATCH" in results["test_fit_one_cycle_steps_lr_every_batch"].message
