"""Shared, non-secret helpers of 04_cnn's checks.

* The grader's own copy of Fashion-MNIST (loaded here, in the grader, through torchvision) and
  the fixed held-out images the trained ``model`` is evaluated on.
* A tiny "spy" model and tiny data loaders, built inside the submission with ``sub.exec``,
  that record how ``fit`` uses them (training mode, gradients, optimizer steps).
* Reading a module's layers from ``handle.describe()``.
"""

from __future__ import annotations

import functools

import torch

from autograder.api import CheckFailure, as_float, expect
from autograder.api import describe_value as show  # noqa: F401 - used by the checks

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


def trained_model_accuracy(sub, which: str) -> float:
    """Accuracy of the notebook's trained ``model`` on the public or the hidden held-out images."""
    expect(sub.has("model"), "there is no variable named `model`: run the training cell, which trains "
                             "`model = simple_cnn()` and keeps it in `model`")
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
        expect(set(row) == keys, f"item {i} of fit's result should have exactly the keys {sorted(keys)}, "
                                 f"got {sorted(row)}")
        rows.append({k: as_float(row[k], f"history[{i}][{k!r}]") for k in keys})
    return rows


def spy_record(sub) -> list[tuple[str, bool, bool]]:
    return [tuple(r) for r in sub.eval(f"{P}model.record")]


# -- describing modules ------------------------------------------------------------------------------------

def is_type(desc: dict, qualname: str) -> bool:
    return qualname in desc.get("mro", [])


def walk(desc: dict):
    """Every module of a describe() tree, the root first."""
    yield desc
    for _, child in desc.get("children", []):
        yield from walk(child)


LINEAR_TYPES = ("torch.nn.modules.linear.Linear", "torch.nn.modules.linear.Bilinear",
                "torch.nn.modules.linear.LazyLinear")
CONV2D = "torch.nn.modules.conv.Conv2d"
RELU = "torch.nn.modules.activation.ReLU"
SEQUENTIAL = "torch.nn.modules.container.Sequential"
FLATTEN = "torch.nn.modules.flatten.Flatten"
