"""Shared, non-secret helpers of 05_activation_stats's checks: small models, fake stats, schedules.

Code strings (``WATCH_MODEL`` ...) are run with ``sub.exec`` / ``ref.exec`` (and, for the public
oracles, in a plain dict here in the grader), so the submission, the reference and the oracle
build exactly the same seeded model.  Names that code defines live in the check's own scope (never
in the notebook's namespace, never seen by the next check); they start with ``_a05_`` because the
same code also reads the notebook's names (``model``, ``train``, ``valid`` ...).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from autograder.authoring.compare import CheckFailure, expect
from autograder.authoring.grader_code import run_here

NBINS, HIST_MAX = 40, 10.0

#: A small watched model: a ReLU block, a bare convolution (negative outputs: abs() matters) and a
#: BatchNorm/ReLU/conv block; non-square input, a non-square kernel, several channels.
WATCH_MODEL = """
import torch
from torch import nn
torch.manual_seed({seed})
_a05_model = nn.Sequential(
    nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
    nn.Conv2d(6, 8, (3, 2), stride=2, padding=1),
    nn.Sequential(nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 5, 3, padding=(1, 0))),
)
"""
WATCH_INPUT_SHAPE = (6, 3, 14, 11)
#: Input scales: the largest pushes activations above 10, where histc(40, 0, 10) stops counting.
WATCH_SCALES = (1.0, 3.0, 8.0)


def build_here(source: str) -> dict:
    """Run model-building code in a fresh dict of the grader's own (the public checks' oracle)."""
    return run_here(source, "<a05 oracle>")


def oracle_stats(model, modules, batches) -> dict:
    """What ActivationStats must record, computed with the grader's own hooks and torch built-ins."""
    out = {"means": [[] for _ in modules], "stds": [[] for _ in modules], "hists": [[] for _ in modules],
           "outputs": []}

    def make(i):
        def hook(module, inputs, output):
            a = output.detach().float()
            out["means"][i].append(a.mean().item())
            out["stds"][i].append(a.std().item())
            out["hists"][i].append(a.abs().histc(NBINS, 0, HIST_MAX))
        return hook

    handles = [m.register_forward_hook(make(i)) for i, m in enumerate(modules)]
    try:
        for x in batches:
            out["outputs"].append(model(x).detach())
    finally:
        for h in handles:
            h.remove()
    return out


def watch_batches() -> list[torch.Tensor]:
    return [torch.randn(*WATCH_INPUT_SHAPE) * s for s in WATCH_SCALES]


#: Builds ``_a05_fake``, an object with ``means``, ``stds`` and ``hists`` like an ActivationStats
#: (bindings ``_hists``: list per module of lists of (40,) tensors), so that dead_fraction and
#: color_dim are checked on their own, independently of the notebook's ActivationStats.
FAKE_STATS = """
import types
_a05_fake = types.SimpleNamespace(
    hists=[list(h) for h in _hists],
    means=[[float(t[0]) for t in h] for h in _hists],
    stds=[[float(t[1]) for t in h] for h in _hists],
)
"""


def fake_stats(ns, hists):
    """A handle to a stats-like object holding ``hists`` in namespace ``ns`` (sub or ref)."""
    ns.exec(FAKE_STATS, _hists=hists)
    return ns.eval("_a05_fake")


def literal_hists() -> list[list[torch.Tensor]]:
    """Hand-made histograms of two modules over three batches (counts in the first, second and last bins)."""
    def h(**bins):
        t = torch.zeros(NBINS)
        for k, v in bins.items():
            t[int(k[1:])] = v
        return t

    return [
        [h(b0=30, b1=10), h(b0=5, b39=15), h(b0=0, b3=8, b20=2)],
        [h(b0=12, b2=4), h(b0=1, b1=1, b2=1, b3=1), h(b0=100)],
    ]


def random_hists(n_modules: int, n_batches: int) -> list[list[torch.Tensor]]:
    """Plausible histograms: a heavy first bin and a decaying tail, as float32 counts."""
    out = []
    for _ in range(n_modules):
        rows = []
        for _ in range(n_batches):
            decay = torch.exp(-torch.arange(NBINS, dtype=torch.float32) * torch.empty(1).uniform_(0.1, 0.8))
            counts = torch.poisson(decay * torch.empty(1).uniform_(50, 500))
            counts[0] += float(torch.randint(0, 400, ()))
            rows.append(counts)
        out.append(rows)
    return out


def expected_dead_fraction(hists_i: list[torch.Tensor]) -> torch.Tensor:
    h = torch.stack(hists_i).float()
    return h[:, 0] / h.sum(dim=1)


def expected_color_dim(hists_i: list[torch.Tensor]) -> torch.Tensor:
    return torch.log1p(torch.stack(hists_i).float().t())


# --------------------------------------------------------------------------------------------
# What a module is: isinstance, asked where the module lives (a subclass of nn.Sequential counts)
# --------------------------------------------------------------------------------------------

STRUCTURE = """
def _a05_structure(m):
    import torch as _t
    nn = _t.nn
    known = (("Sequential", nn.Sequential), ("Conv2d", nn.Conv2d), ("BatchNorm2d", nn.BatchNorm2d),
             ("ReLU", nn.ReLU))

    def kind(x):
        for name, cls in known:
            if isinstance(x, cls):
                return name
        return type(x).__name__ + " (not a Conv2d, BatchNorm2d or ReLU)" if isinstance(x, nn.Module) else "?"

    is_module = isinstance(m, nn.Module)
    return {"is_sequential": isinstance(m, nn.Sequential), "type": type(m).__name__,
            "children": [kind(c) for c in m.children()] if is_module else []}
"""


def structure(ns, handle) -> dict:
    """``is_sequential``, ``type`` and the kinds of the direct children ("Conv2d", "BatchNorm2d", "ReLU")."""
    ns.exec(STRUCTURE)
    return ns.eval("_a05_structure(_a05_m)", _a05_m=handle)


#: Copies a reference block's values into the submission's block by role (the Conv2d's weight, the
#: BatchNorm2d's parameters and buffers), whatever the names and order of its children.
LOAD_BY_ROLE = """
import torch as _a05_t


def _a05_load(block, values):
    convs = [m for m in block.modules() if isinstance(m, _a05_t.nn.Conv2d)]
    bns = [m for m in block.modules() if isinstance(m, _a05_t.nn.BatchNorm2d)]
    if len(convs) != 1 or len(bns) != 1 or convs[0].bias is not None:
        return False
    targets = {"weight": convs[0].weight, "bn.weight": bns[0].weight, "bn.bias": bns[0].bias,
               "bn.running_mean": bns[0].running_mean, "bn.running_var": bns[0].running_var}
    if any(t is None or tuple(t.shape) != tuple(values[k].shape) for k, t in targets.items()):
        return False
    with _a05_t.no_grad():
        for k, t in targets.items():
            t.copy_(values[k])
    return True
"""


def block_values(ns, handle) -> dict:
    """The values LOAD_BY_ROLE copies, read from a block (the reference's)."""
    return ns.eval("(lambda c, b: {'weight': c.weight.detach().clone(), 'bn.weight': b.weight.detach().clone(), "
                   "'bn.bias': b.bias.detach().clone(), 'bn.running_mean': b.running_mean.clone(), "
                   "'bn.running_var': b.running_var.clone()})("
                   "[m for m in _a05_m.modules() if isinstance(m, __import__('torch').nn.Conv2d)][0], "
                   "[m for m in _a05_m.modules() if isinstance(m, __import__('torch').nn.BatchNorm2d)][0])",
                   _a05_m=handle)


def load_by_role(ns, handle, values: dict) -> bool:
    ns.exec(LOAD_BY_ROLE)
    return bool(ns.eval("_a05_load(_a05_m, _a05_v)", _a05_m=handle, _a05_v=values))


# --------------------------------------------------------------------------------------------
# fit_one_cycle
# --------------------------------------------------------------------------------------------

#: A tiny model with BatchNorm (so that train/eval modes matter) and tiny loaders; bindings
#: ``_x, _y, _xv, _yv`` (tensors) and ``_bs``, ``_shuffle``.  Also installs ``_a05_lrs``: the learning
#: rate of every optimiser step, recorded by a global optimiser step pre-hook (any optimiser).
TINY_TRAINING = """
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed({seed})
_a05_model = nn.Sequential(
    nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
    nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
)
_a05_train = DataLoader(TensorDataset(_x, _y), batch_size=_bs, shuffle=_shuffle,
                        generator=torch.Generator().manual_seed({seed}))
_a05_valid = DataLoader(TensorDataset(_xv, _yv), batch_size=_bs)
_a05_lrs = []


def _a05_spy(opt, args, kwargs):
    _a05_lrs.append(float(opt.param_groups[0]["lr"]))


_a05_spy_handle = register_optimizer_step_pre_hook(_a05_spy)
"""


def tiny_data(n_train: int = 40, n_valid: int = 24):
    """Learnable toy data: 3 classes that differ in the brightness of one image half; (9, 7) images."""
    def make(n):
        y = torch.randint(0, 3, (n,))
        x = torch.randn(n, 1, 9, 7) * 0.5
        x[y == 1, :, :4] += 1.5
        x[y == 2, :, :, :3] -= 1.5
        return x, y

    x, y = make(n_train)
    xv, yv = make(n_valid)
    return x, y, xv, yv


def run_tiny_fit(ns, epochs: int, max_lr: float, *, seed: int = 5, bs: int = 8, shuffle: bool = True,
                 data=None):
    """Train the tiny model with ns's fit_one_cycle; returns (history, learning-rate trace, model handle)."""
    x, y, xv, yv = data if data is not None else tiny_data()
    ns.exec(TINY_TRAINING.format(seed=seed), _x=x, _y=y, _xv=xv, _yv=yv, _bs=bs, _shuffle=shuffle)
    try:
        history = ns.call("fit_one_cycle", ns.eval("_a05_model"), epochs, max_lr, ns.eval("_a05_train"),
                          ns.eval("_a05_valid"), timeout=60)
    finally:
        ns.exec("_a05_spy_handle.remove()")
    return history, ns.eval("list(_a05_lrs)"), ns.eval("_a05_model")


def one_cycle_trace(max_lr: float, total_steps: int) -> list[float]:
    """The learning rate PyTorch's OneCycleLR (default settings) gives each of total_steps batches."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return lrs


def eval_metrics(model_handle, xv, yv) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the model in eval mode, computed by the grader from its logits."""
    model_handle.method("eval")
    logits = model_handle(xv)
    if type(logits) is not torch.Tensor:
        raise CheckFailure(f"the trained model returned a {type(logits).__name__}, not a tensor of logits: "
                           "its forward should return one row of class scores per image")
    logits = logits.detach().float()
    return F.cross_entropy(logits, yv).item(), (logits.argmax(dim=1) == yv).float().mean().item()


# --------------------------------------------------------------------------------------------
# The BatchNorm experiment of the hidden conv_bn checks (also run on ten seeds by the tests)
# --------------------------------------------------------------------------------------------

BN_EXPERIMENT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _a05_plain(ni, nf, ks=3, stride=2, act=True):
    layers = [nn.Conv2d(ni, nf, ks, stride, padding=ks // 2)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _a05_cnn(block):
    return nn.Sequential(block(1, 8, ks=5), block(8, 16), block(16, 32), block(32, 64), block(64, 10, act=False),
                         nn.Flatten())


def _a05_watch(fracs):
    def hook(module, inputs, output):
        if module.training:
            h = output.detach().float().abs().histc(40, 0, 10)
            fracs.append((h[0] / h.sum()).item())
    return hook


_a05_models, _a05_dead = {}, {}
_a05_threads = torch.get_num_threads()
torch.set_num_threads(1)
try:
    for _a05_name, _a05_blockfn in (("plain", _a05_plain), ("batchnorm", conv_bn)):
        torch.manual_seed(_seed)
        _a05_m = _a05_cnn(_a05_blockfn)
        _a05_dead[_a05_name] = []
        _a05_h = _a05_m[3].register_forward_hook(_a05_watch(_a05_dead[_a05_name]))
        try:
            fit_one_cycle(_a05_m, 1, _lr,
                          DataLoader(TensorDataset(_x, _y), batch_size=_bs, shuffle=True,
                                     generator=torch.Generator().manual_seed(_seed)),
                          DataLoader(TensorDataset(_xv, _yv), batch_size=256))
        finally:
            _a05_h.remove()
        _a05_models[_a05_name] = _a05_m
finally:
    torch.set_num_threads(_a05_threads)
"""
EXPERIMENT = {"n_train": 4000, "n_valid_fit": 512, "n_valid": 2000, "bs": 64, "max_lr": 0.2, "last": 5}


@functools.lru_cache(maxsize=1)
def fashion_mnist():
    """Normalised Fashion-MNIST tensors, loaded by the grader itself (train mean/std, as in the notebook)."""
    import torchvision

    from data_scripts.paths import data_dir

    train = torchvision.datasets.FashionMNIST(data_dir(), train=True, download=False)
    valid = torchvision.datasets.FashionMNIST(data_dir(), train=False, download=False)
    pixels = train.data.float() / 255
    mean, std = pixels.mean(), pixels.std()
    x = ((pixels - mean) / std).unsqueeze(1)
    xv = ((valid.data.float() / 255 - mean) / std).unsqueeze(1)
    return x, train.targets.clone(), xv, valid.targets.clone()


def batchnorm_experiment(ns, seed: int = 0) -> dict:
    """Train fastbook's CNN plain and with ns's conv_bn, both with ns's fit_one_cycle (1 epoch, 4000 images).

    Returns validation accuracies (computed here from the models' logits on 2000 test images) and final
    dead fractions of the last ReLU block (mean over the last training batches; a diverged network,
    whose histograms are empty, counts as fully dead).
    """
    p = EXPERIMENT
    x, y, xv, yv = fashion_mnist()
    n = p["n_train"]
    ns.exec(BN_EXPERIMENT, timeout=600, _x=x[:n], _y=y[:n], _xv=xv[:p["n_valid_fit"]], _yv=yv[:p["n_valid_fit"]],
            _seed=seed, _bs=p["bs"], _lr=p["max_lr"])
    out = {}
    xe, ye = xv[:p["n_valid"]], yv[:p["n_valid"]]
    for name in ("plain", "batchnorm"):
        model = ns.eval(f"_a05_models[{name!r}]")
        model.method("eval")
        logits = model(xe)
        expect(type(logits) is torch.Tensor and tuple(logits.shape) == (len(ye), 10),
               f"the {name} model trained with fit_one_cycle did not return (N, 10) logits")
        out[f"{name}_acc"] = (logits.detach().argmax(dim=1) == ye).float().mean().item()
        fracs = ns.eval(f"_a05_dead[{name!r}]")
        expect(len(fracs) >= p["last"], f"the {name} model ran only {len(fracs)} training batches")
        tail = torch.tensor(fracs[-p["last"]:], dtype=torch.float64).nan_to_num(1.0)
        out[f"{name}_dead"] = tail.mean().item()
    return out
