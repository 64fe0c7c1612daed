"""Shared, non-secret helpers of 04_cnn's checks.

* The grader's own copy of Fashion-MNIST (loaded here, in the grader, through torchvision) and
  the fixed held-out images the trained ``model`` is evaluated on.
* A tiny "spy" model and tiny data loaders, built inside the submission with ``sub.exec``,
  that record how ``fit`` uses them (training mode, gradients, optimizer steps).
* What a module is, asked with ``isinstance`` where it lives (``structure``): a subclass of
  ``nn.Sequential`` is an ``nn.Sequential``; its settings and parameters come from ``describe()``.
* ``max_pool2d`` called with the built-in max pooling forbidden (``call_without_pooling``), and the
  spec's pooling CNN computed from a model's own parameters (``pool_cnn_oracle``).
"""

from __future__ import annotations

import functools

import torch

from autograder.authoring.api import CheckFailure, as_float, expect
from autograder.authoring.api import describe_value as show  # noqa: F401 - used by the checks

N_CLASSES = 10
# Everything the checks create inside a notebook's namespace starts with this prefix.
P = "_a04_"


# -- the grader's copy of the data ------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def fashion_mnist():
    """(train images uint8 (60000, 28, 28), test images uint8 (10000, 28, 28), test labels int64)."""
    import torchvision

    from data_scripts import DATA_DIR

    train = torchvision.datasets.FashionMNIST(DATA_DIR, train=True, download=False)
    test = torchvision.datasets.FashionMNIST(DATA_DIR, train=False, download=False)
    return train.data, test.data, test.targets


@functools.lru_cache(maxsize=1)
def train_stats() -> tuple[float, float]:
    """Mean and standard deviation of every training pixel, scaled to [0, 1] (computed in float64)."""
    x = fashion_mnist()[0].to(torch.float64).div(255)
    return float(x.mean()), float(x.std())


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32, normalised with the training set's statistics."""
    mean, std = train_stats()
    return ((images_uint8.to(torch.float32) / 255 - mean) / std).unsqueeze(1)


# Fixed subsets of the official test split (never drawn with the check's seed: they must be
# the same images for every student and for the reference).
PUBLIC_HELDOUT = 2000
HIDDEN_HELDOUT = 6000


def heldout(which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images (N, 1, 28, 28) and labels (N,) of the public or the hidden held-out subset."""
    _, test_x, test_y = fashion_mnist()
    order = torch.randperm(len(test_y), generator=torch.Generator().manual_seed(404))
    idx = order[:PUBLIC_HELDOUT] if which == "public" else order[PUBLIC_HELDOUT:PUBLIC_HELDOUT + HIDDEN_HELDOUT]
    return normalise(test_x[idx]), test_y[idx]


# -- evaluating a model that lives in the notebook ----------------------------------------------------

PREDICT_SOURCE = f"""
def {P}predict(model, x, batch_size=500):
    import torch as _torch
    model.eval()
    outs = []
    with _torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(x[i:i + batch_size]))
    return _torch.cat(outs)
"""


def predict(ns, model_expr: str, x: torch.Tensor, timeout: float | None = None) -> torch.Tensor:
    """Logits of the notebook's model ``model_expr`` on ``x``, in eval mode and without gradients."""
    ns.exec(PREDICT_SOURCE)
    logits = ns.eval(f"{P}predict({model_expr}, {P}x)", timeout=timeout, **{f"{P}x": x})
    if type(logits) is not torch.Tensor or tuple(logits.shape) != (len(x), N_CLASSES):
        got = tuple(logits.shape) if type(logits) is torch.Tensor else type(logits).__name__
        raise CheckFailure(f"the model should map images ({len(x)}, 1, 28, 28) to logits ({len(x)}, {N_CLASSES}); "
                           f"it returned {got}")
    return logits.float()


def accuracy_of(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean())


def expect_trained_model(sub) -> None:
    """There must be a ``model``; when there is none because ``simple_cnn`` is still a stub, say so."""
    if not sub.has("model"):
        if sub.has("simple_cnn"):
            sub.simple_cnn()        # a stub raises NotImplementedError here: "not implemented yet"
        raise CheckFailure("there is no variable named `model`: run the training cell, which trains "
                           "`model = simple_cnn()` and keeps it in `model`")


def trained_model_accuracy(sub, which: str) -> float:
    """Accuracy of the notebook's trained ``model`` on the public or the hidden held-out images."""
    expect_trained_model(sub)
    is_module, kind = sub.eval("(isinstance(model, __import__('torch').nn.Module), type(model).__name__)")
    expect(is_module, f"`model` should be the trained network (an nn.Module), but it is a {kind}")
    x, y = heldout(which)
    return accuracy_of(predict(sub, "model", x, timeout=60), y)


# -- a spy model and tiny loaders for fit ---------------------------------------------------------------

SPY_SOURCE = f"""
import torch as _torch

class {P}Spy(_torch.nn.Module):
    '''A tiny linear classifier on (B, 1, 2, 2) images that records every forward call.

    Training images have a positive marker in pixel [0, 0, 0], validation images a negative one;
    the classifier reads the three other pixels.
    '''
    def __init__(self, n_classes=3):
        super().__init__()
        self.lin = _torch.nn.Linear(3, n_classes)
        self.record = []

    def forward(self, x):
        split = 'train' if float(x[0, 0, 0, 0]) > 0 else 'valid'
        self.record.append((split, bool(self.training), bool(_torch.is_grad_enabled())))
        return self.lin(x.flatten(1)[:, 1:])

class {P}SpyOpt(_torch.optim.SGD):
    '''Plain SGD that records how it was made and how often it stepped.'''
    made = []
    def __init__(self, params, lr=None, *args, **kwargs):
        params = list(params)
        super().__init__(params, lr=lr if lr is not None else 0.0, *args, **kwargs)
        self.info = {{'lr': lr, 'n_params': sum(p.numel() for g in self.param_groups for p in g['params']),
                      'steps': 0}}
        {P}SpyOpt.made.append(self.info)
    def step(self, closure=None):
        self.info['steps'] += 1
        return super().step(closure)

def {P}loaders(xt, yt, xv, yv, batch_size):
    from torch.utils.data import DataLoader, TensorDataset
    return (DataLoader(TensorDataset(xt, yt), batch_size=batch_size, shuffle=False),
            DataLoader(TensorDataset(xv, yv), batch_size=batch_size, shuffle=False))

def {P}spy(state):
    m = {P}Spy(state['lin.weight'].shape[0])
    m.load_state_dict(state)
    return m
"""


def spy_data(n_train: int = 24, n_valid: int = 12, n_classes: int = 3, separable: bool = False):
    """Tiny (N, 1, 2, 2) images with markers (train > 0, valid < 0) and labels; optionally learnable."""
    centres = torch.randn(n_classes, 4) * 3 if separable else torch.zeros(n_classes, 4)
    centres[:, 0] = 0  # pixel [0, 0, 0] carries the train/valid marker, not the class

    def make(n, sign):
        y = (torch.arange(n) % n_classes)[torch.randperm(n)]
        x = torch.randn(n, 1, 2, 2) * 0.5 + centres[y].reshape(n, 1, 2, 2)
        x[:, 0, 0, 0] = sign * (3 + torch.rand(n))
        return x, y

    xt, yt = make(n_train, 1)
    xv, yv = make(n_valid, -1)
    return xt, yt, xv, yv


def spy_state(n_classes: int = 3) -> dict:
    return {"lin.weight": torch.randn(n_classes, 3) * 0.3, "lin.bias": torch.zeros(n_classes)}


def setup_spy(sub, state: dict, data, batch_size: int) -> None:
    """Define the spy classes in the notebook's namespace and build the spy model and loaders there."""
    xt, yt, xv, yv = data
    sub.exec(SPY_SOURCE)
    sub.exec(f"{P}model = {P}spy({P}state)\n"
             f"{P}train_dl, {P}valid_dl = {P}loaders({P}xt, {P}yt, {P}xv, {P}yv, {P}bs)\n"
             f"{P}SpyOpt.made.clear()",
             **{f"{P}state": state, f"{P}xt": xt, f"{P}yt": yt, f"{P}xv": xv, f"{P}yv": yv, f"{P}bs": batch_size})


def run_fit(sub, epochs: int, lr: float, opt: str | None = None, timeout: float = 30):
    """Call the notebook's ``fit`` on the spy model and loaders; returns its history."""
    opt_arg = f", opt_func={opt}" if opt else ""
    return sub.eval(f"fit({P}model, {epochs}, {lr!r}, {P}train_dl, {P}valid_dl{opt_arg})", timeout=timeout)


def history_rows(history, epochs: int) -> list[dict]:
    """The history as a list of ``epochs`` dicts of floats; fails with a clear message otherwise."""
    keys = {"epoch", "train_loss", "valid_loss", "valid_acc"}
    expect(type(history) is list,
           f"fit should return a list (one dict per epoch), got {type(history).__name__}")
    expect(len(history) == epochs, f"fit(model, {epochs}, ...) should return {epochs} dicts (one per epoch), "
                                   f"got {len(history)}")
    rows = []
    for i, row in enumerate(history):
        expect(type(row) is dict, f"item {i} of fit's result should be a dict, got {type(row).__name__}")
        missing = sorted(keys - set(row))
        expect(not missing, f"item {i} of fit's result should have the keys {sorted(keys)}; {missing} "
                            f"{'is' if len(missing) == 1 else 'are'} missing (it has {sorted(row)})")
        rows.append({k: as_float(row[k], f"history[{i}][{k!r}]") for k in keys})
    return rows


def spy_record(sub) -> list[tuple[str, bool, bool]]:
    return [tuple(r) for r in sub.eval(f"{P}model.record")]


# -- what a module is (isinstance, asked where the module lives) -------------------------------------------

STRUCTURE_SOURCE = f"""
def {P}structure(m):
    import torch as _t
    nn = _t.nn
    known = (("Sequential", nn.Sequential), ("Conv2d", nn.Conv2d), ("ReLU", nn.ReLU),
             ("MaxPool2d", nn.MaxPool2d), ("Flatten", nn.Flatten), ("Linear", nn.Linear))

    def kind(x):
        for name, cls in known:
            if isinstance(x, cls):
                return name
        return "Module" if isinstance(x, nn.Module) else "not a module"

    every = list(m.modules()) if isinstance(m, nn.Module) else []
    return {{"kind": kind(m), "is_module": isinstance(m, nn.Module), "is_sequential": isinstance(m, nn.Sequential),
             "type": type(m).__name__, "children": [kind(c) for c in m.children()] if every else [],
             "child_types": [type(c).__name__ for c in m.children()] if every else [],
             "linear": [type(c).__name__ for c in every if isinstance(c, (nn.Linear, nn.Bilinear))]}}
"""


def structure(ns, handle) -> dict:
    """What ``handle`` is, by ``isinstance`` in its own process (plain data the grader can trust).

    ``kind``: "Sequential", "Conv2d", "ReLU", "MaxPool2d", "Flatten" or "Linear" (subclasses included),
    else "Module" (another nn.Module) or "not a module"; ``children``: the kinds of its direct children;
    ``linear``: the class names of every linear layer inside it.
    """
    ns.exec(STRUCTURE_SOURCE)
    return ns.eval(f"{P}structure({P}m)", **{f"{P}m": handle})


def layer_names(s: dict) -> str:
    """The children of a structure() result, for messages: class names, with the kind where it differs."""
    names = [t if k in (t, "Module", "not a module") else f"{t} (a {k})"
             for k, t in zip(s["children"], s["child_types"])]
    return "[" + ", ".join(names) + "]" if names else "no layers"


def conv_parameters(ns, handle) -> list:
    """[(weight, bias or None)] of every Conv2d inside ``handle``."""
    return ns.eval(f"[(c.weight.detach().clone(), None if c.bias is None else c.bias.detach().clone()) "
                   f"for c in {P}m.modules() if isinstance(c, __import__('torch').nn.Conv2d)]",
                   **{f"{P}m": handle})


LOAD_CONV_SOURCE = f"""
def {P}load_conv(m, w, b):
    '''Copy w and b into the only Conv2d of m; False when m has not exactly one Conv2d of that shape with a bias.'''
    import torch as _t
    convs = [c for c in m.modules() if isinstance(c, _t.nn.Conv2d)]
    if len(convs) != 1 or tuple(convs[0].weight.shape) != tuple(w.shape) or convs[0].bias is None:
        return False
    with _t.no_grad():
        convs[0].weight.copy_(w)
        convs[0].bias.copy_(b)
    return True
"""


def load_conv(ns, handle, weight, bias) -> bool:
    ns.exec(LOAD_CONV_SOURCE)
    return bool(ns.eval(f"{P}load_conv({P}m, {P}w, {P}b)", **{f"{P}m": handle, f"{P}w": weight, f"{P}b": bias}))


def set_mode(ns, handle, training: bool) -> None:
    """``model.train(training)`` on a module that lives in ``ns``."""
    ns.exec(f"{P}m.train({bool(training)})", **{f"{P}m": handle})


# -- max_pool2d without the built-in pooling ------------------------------------------------------------

#: The forbidden-API group of F.max_pool2d, nn.MaxPool2d, torch.max_pool2d and the other built-in max poolings.
NO_POOLING = ["max_pool"]


def call_without_pooling(sub, *args, **kwargs):
    """``max_pool2d(*args, **kwargs)`` in the submission with the built-in max pooling refused (a use fails)."""
    return sub.call("max_pool2d", *args, forbid=NO_POOLING, **kwargs)


def oracle_pool(x: torch.Tensor, k: int, s: int | None = None) -> torch.Tensor:
    import torch.nn.functional as F

    return F.max_pool2d(x, k, s if s is not None else k)


# -- pool_cnn: its parameters by shape, and the computation the spec describes ----------------------------

#: (name, shape) of the six parameter tensors of the spec's pooling CNN, in the order of its layers.
POOL_CNN_SHAPES = (("conv1.weight", (4, 1, 3, 3)), ("conv1.bias", (4,)), ("conv2.weight", (8, 4, 3, 3)),
                   ("conv2.bias", (8,)), ("linear.weight", (10, 8 * 7 * 7)), ("linear.bias", (10,)))
POOL_CNN_N_PARAMETERS = 4 * (9 + 1) + 8 * (4 * 9 + 1) + 10 * (8 * 7 * 7 + 1)   # 4,266


def parameter_list(ns, handle) -> list:
    """[(shape, values)] of every parameter of a module, in registration order."""
    return ns.eval(f"[(tuple(p.shape), p.detach().clone()) for p in {P}m.parameters()]", **{f"{P}m": handle})


def by_shape(params: list) -> dict | None:
    """The spec's six tensors found by their (all different) shapes; None unless the shapes are exactly those."""
    if sorted(tuple(s) for s, _ in params) != sorted(shape for _, shape in POOL_CNN_SHAPES):
        return None
    found = {tuple(s): t for s, t in params}
    return {name: found[shape] for name, shape in POOL_CNN_SHAPES}


def pool_cnn_oracle(x: torch.Tensor, w: dict) -> torch.Tensor:
    """The spec's network with torch built-ins: (3x3 conv with padding 1, ReLU, 2x2 max-pool) twice, flatten, linear."""
    import torch.nn.functional as F

    h = F.max_pool2d(F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"], padding=1)), 2, 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w["conv2.weight"], w["conv2.bias"], padding=1)), 2, 2)
    return F.linear(h.flatten(1), w["linear.weight"], w["linear.bias"])


LOAD_BY_SHAPE_SOURCE = f"""
def {P}load_by_shape(m, values):
    '''Copy each tensor of `values` into the parameter of m with the same (unique) shape.'''
    import torch as _t
    by_shape = {{tuple(v.shape): v for v in values}}
    with _t.no_grad():
        for p in m.parameters():
            p.copy_(by_shape[tuple(p.shape)])
"""


def load_by_shape(ns, handle, values: list) -> None:
    ns.exec(LOAD_BY_SHAPE_SOURCE)
    ns.exec(f"{P}load_by_shape({P}m, {P}v)", **{f"{P}m": handle, f"{P}v": values})
