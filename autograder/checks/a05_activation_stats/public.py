"""Public checks of 05_activation_stats: students run them in the notebook's test cells.

The oracles are PyTorch itself (the grader's own forward hooks, ``histc``, ``log1p``, ``OneCycleLR``)
and literal values.
"""

import torch

from autograder.authoring.api import (
    CheckFailure,
    Handle,
    as_float,
    check,
    describe_value,
    expect,
    expect_close,
    expect_tensor,
    fmt_call,
)
from autograder.authoring.compare import expect_tensor_of

from .common import (
    NBINS,
    WATCH_MODEL,
    build_here,
    eval_metrics,
    expected_color_dim,
    expected_dead_fraction,
    fake_stats,
    literal_hists,
    one_cycle_trace,
    oracle_stats,
    random_hists,
    run_tiny_fit,
    structure,
    tiny_data,
    watch_batches,
)

# ---------------------------------------------------------------------------------------------
# ActivationStats
# ---------------------------------------------------------------------------------------------

_MODULE_NAMES = ["module 0 (Conv2d+ReLU block)", "module 1 (a bare Conv2d: negative outputs)",
                 "module 2 (BatchNorm+ReLU+Conv2d block)"]


def _model(sub, seed=11):
    """Build the seeded watch model in the submission; returns its handle."""
    sub.exec(WATCH_MODEL.format(seed=seed))
    return sub.eval("_a05_model")


def _watch(sub, seed=11):
    """The watch model and an ActivationStats on its 3 children; returns (model handle, stats handle, oracle ns)."""
    model_h = _model(sub, seed)
    stats_h = sub.call("ActivationStats", sub.eval("list(_a05_model)"))
    return model_h, stats_h, build_here(WATCH_MODEL.format(seed=seed))


def _model_after(sub, snippet):
    """The handle of a fresh model (``_a05_model`` in the notebook) after the grader's ``snippet`` ran on it
    with one watch batch bound to ``_x``."""
    model_h = _model(sub)
    sub.exec(snippet, _x=watch_batches()[0])
    return model_h


def _n_hooks(model_h) -> int:
    return int(model_h.describe()["n_forward_hooks"])


def _record(sub, seed=11):
    """Three forward passes through the watched model; returns (stats handle, sub outputs, oracle)."""
    model_h, stats_h, here = _watch(sub, seed)
    batches = watch_batches()
    outputs = [model_h(x) for x in batches]
    model = here["_a05_model"]
    return stats_h, outputs, oracle_stats(model, list(model), batches), model_h


def _per_module_list(stats_h, attr, n_modules):
    value = stats_h.attr(attr)
    expect(type(value) is list and len(value) == n_modules,
           f"ActivationStats.{attr} should be a list with one list per watched module ({n_modules}), "
           f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, list | tuple) else ""))
    return value


@check(cell="test_ActivationStats", points=1, kind="behaviour",
       hint="means, stds and hists start with one empty list per watched module, and every forward pass adds one "
            "entry to each; a forward hook that returns something replaces the module's output (section 2).")
def test_ActivationStats_records_one_entry_per_forward_pass(sub):
    model_h, stats_h, here = _watch(sub)
    for attr in ("means", "stds", "hists"):
        value = _per_module_list(stats_h, attr, 3)
        expect(all(type(v) is list and len(v) == 0 for v in value),
               f"before any forward pass, ActivationStats.{attr} should be [[], [], []]; got lengths "
               f"{[len(v) if isinstance(v, list | tuple) else type(v).__name__ for v in value]}")
    batches = watch_batches()
    model = here["_a05_model"]
    for k, x in enumerate(batches):
        got = model_h(x)
        expected = model(x).detach()
        if type(got) is not torch.Tensor or got.shape != expected.shape or not torch.allclose(got, expected,
                                                                                              atol=1e-5, rtol=1e-4):
            raise CheckFailure(f"with ActivationStats attached, the model's output changed at forward pass {k}: "
                                 "a forward hook that returns a value replaces the module's output. "
                                 "Make the hook return None.")
    for attr in ("means", "stds", "hists"):
        value = _per_module_list(stats_h, attr, 3)
        lengths = [len(v) if isinstance(v, list | tuple) else None for v in value]
        expect(lengths == [3, 3, 3],
               f"after 3 forward passes, each list in ActivationStats.{attr} should have 3 entries (one per pass); "
               f"got lengths {lengths}")
    hists = stats_h.attr("hists")
    for i, per_module in enumerate(hists):
        for k, h in enumerate(per_module):
            expect_tensor_of(h, (NBINS,), what=f"hists[{i}][{k}] (histc with {NBINS} bins)")


@check(cell="test_ActivationStats", points=2, kind="numerical",
       hint="The statistics are those of the module's OUTPUT, as plain numbers; the hook receives the module, "
            "its inputs and its output, in that order (section 2).")
def test_ActivationStats_means_and_stds(sub):
    stats_h, _, oracle, _ = _record(sub)
    for attr, rtol in (("means", 1e-4), ("stds", 2e-3)):
        got = _per_module_list(stats_h, attr, 3)
        for i in range(3):
            expect(isinstance(got[i], list | tuple) and len(got[i]) == 3,
                   f"{attr}[{i}] should have one entry per forward pass (3)")
            for k in range(3):
                expect_close(as_float(got[i][k], f"{attr}[{i}][{k}]"), oracle[attr][i][k], atol=1e-5, rtol=rtol,
                             what=f"{attr}[{i}][{k}] ({_MODULE_NAMES[i]}, forward pass {k})")


@check(cell="test_ActivationStats", points=2, kind="numerical",
       hint="40 bins of width 0.25 over [0, 10], of the absolute values of the output; section 3 explains why the "
            "absolute values (module 1 has negative outputs, the third pass values above 10).")
def test_ActivationStats_histograms(sub):
    stats_h, _, oracle, _ = _record(sub)
    got = _per_module_list(stats_h, "hists", 3)
    for i in range(3):
        expect(isinstance(got[i], list | tuple) and len(got[i]) == 3,
               f"hists[{i}] should have one entry per forward pass (3)")
        for k in range(3):
            h = got[i][k]
            what = f"hists[{i}][{k}] ({_MODULE_NAMES[i]}, forward pass {k}, input scale up to {[1, 3, 8][k]})"
            expect(type(h) is torch.Tensor, f"{what}: expected a tensor, got {type(h).__name__}")
            expect_tensor(h.float(), oracle["hists"][i][k], what=what, atol=0.5, rtol=0)


@check(cell="test_ActivationStats", points=1, kind="behaviour",
       hint="Registering a hook gives back a handle, and that handle is the only way to remove exactly that hook: "
            "keep one per module.")
def test_ActivationStats_remove_removes_every_hook(sub):
    model_h, stats_h, _ = _watch(sub)
    n = _n_hooks(model_h)
    expect(n == 3, f"ActivationStats(3 modules) should register 3 forward hooks, the model has {n}")
    model_h(watch_batches()[0])
    stats_h.method("remove")
    n = _n_hooks(model_h)
    expect(n == 0, f"after stats.remove(), {n} forward hook(s) are still registered on the model; remove them all")
    model_h(watch_batches()[0])
    lengths = [len(v) for v in stats_h.attr("means")]
    expect(lengths == [1, 1, 1], f"after remove(), forward passes must not be recorded any more; "
                                 f"means has lengths {lengths}, expected [1, 1, 1]")


_WITH_BLOCK = """
_a05_inside = None
_a05_obj = ActivationStats(list(_a05_model))
with _a05_obj as _a05_s:
    _a05_inside = sum(len(m._forward_hooks) for m in _a05_model.modules())
    _a05_model(_x)
_a05_same = _a05_s is _a05_obj
_a05_kind = type(_a05_s).__name__
"""


@check(cell="test_ActivationStats", points=1, kind="behaviour",
       hint="`with obj as name:` binds name to what __enter__ returns, and calls __exit__ when the block ends "
            "(section 2, the Announce demo).")
def test_ActivationStats_with_block_removes_hooks(sub):
    model_h = _model_after(sub, _WITH_BLOCK)
    expect(sub.eval("_a05_same") is True,
           f"`with stats as s:` should give the ActivationStats object itself (what __enter__ returns), got a "
           f"{sub.eval('_a05_kind')}")
    inside = sub.eval("_a05_inside")
    expect(inside == 3, f"inside the with block the model should carry 3 hooks, it carries {inside}")
    n = _n_hooks(model_h)
    expect(n == 0, f"after the with block, {n} forward hook(s) are still registered: __exit__ must remove them")
    lengths = [len(v) for v in sub.eval("_a05_s.means")]
    expect(lengths == [1, 1, 1], f"the forward pass inside the with block should be recorded once per module; "
                                 f"means has lengths {lengths}")


_WITH_ERROR = """
_a05_outcome = "no exception reached the caller"
try:
    with ActivationStats(list(_a05_model)) as _a05_s:
        _a05_model(_x)
        raise KeyError("the grader's test exception")
except KeyError:
    _a05_outcome = "propagated"
"""


@check(cell="test_ActivationStats", points=1, kind="behaviour",
       hint="__exit__ also runs when the block raises, and what it returns decides whether the exception "
            "goes on to the caller (section 2, the Announce demo).")
def test_ActivationStats_with_block_exception(sub):
    model_h = _model_after(sub, _WITH_ERROR)
    n = _n_hooks(model_h)
    expect(n == 0, f"after an exception inside `with ActivationStats(...)`, {n} forward hook(s) are still "
                   "registered: remove the hooks in __exit__ whatever happened in the block")
    outcome = sub.eval("_a05_outcome")
    expect(outcome == "propagated", "an exception raised inside the with block was swallowed: __exit__ must "
                                    "return False (or None), not True")


# ---------------------------------------------------------------------------------------------
# dead_fraction and color_dim
# ---------------------------------------------------------------------------------------------


def _histogram_summary_checks(name, oracle, example_hint, module, shape, shape_hint):
    """The two checks of a function ``name(stats, i)`` that summarises module ``i``'s histograms.

    A 2-point check on hand-made histograms of 3 batches, for both modules, against ``oracle(hists[i])``
    (values shown: the example is small enough to work out on paper); a 1-point check that, on random
    histograms of 7 batches, module ``module`` gives a float32 tensor of ``shape``.
    """
    @check(cell=f"test_{name}", points=2, kind="numerical", hint=example_hint)
    def small_example(sub):
        hists = literal_hists()
        stats_h = fake_stats(sub, hists)
        for i in (0, 1):
            expect_tensor(getattr(sub, name)(stats_h, i), oracle(hists[i]),
                          what=f"{name}(stats, {i}) with hand-made histograms of 3 batches", show_values=True)

    @check(cell=f"test_{name}", points=1, kind="shape", hint=shape_hint)
    def float32_of_shape(sub):
        stats_h = fake_stats(sub, random_hists(module + 1, 7))
        expect_tensor_of(getattr(sub, name)(stats_h, module), shape, torch.float32,
                         what=f"{name}(stats, {module}) with 7 recorded batches")

    return small_example, float32_of_shape


test_dead_fraction_small_example, test_dead_fraction_shape_and_dtype = _histogram_summary_checks(
    "dead_fraction", expected_dead_fraction,
    "One number per recorded batch: that batch's first-bin count over that batch's total count. Work the "
    "hand-made example in the message out on paper.",
    2, (7,), "One value per recorded batch: a float32 tensor of shape (n_batches,).")

test_color_dim_small_example, test_color_dim_shape = _histogram_summary_checks(
    "color_dim", expected_color_dim,
    "The picture has one column per batch and one row per bin (row 0 = the first bin), coloured by "
    "log(1 + count): check the orientation and the log against section 4.",
    1, (NBINS, 7), "One column per batch: a float32 tensor of shape (40, n_batches).")


# ---------------------------------------------------------------------------------------------
# conv_bn
# ---------------------------------------------------------------------------------------------


def _describe_block(sub, *args, **kwargs):
    """(what, [(kind, settings)] of the block's children, block): kinds by isinstance (subclasses count)."""
    block = sub.conv_bn(*args, **kwargs)
    what = fmt_call("conv_bn", *args, **kwargs)
    expect(isinstance(block, Handle), f"{what} should return an nn.Sequential, got {describe_value(block)}")
    s = structure(sub, block)
    expect(s["is_sequential"], f"{what} should return an nn.Sequential (or a subclass of it), got a {s['type']}")
    attrs = [child.get("attrs", {}) for _, child in block.describe().get("children", [])]
    return what, list(zip(s["children"], attrs)), block


def _expect_conv(what, attrs, ni, nf, ks, stride):
    for key, expected in (("in_channels", ni), ("out_channels", nf), ("kernel_size", (ks, ks)),
                          ("stride", (stride, stride)), ("padding", (ks // 2, ks // 2))):
        expect(attrs.get(key) == expected, f"{what}: the Conv2d's {key} should be {expected}, got {attrs.get(key)}")
    expect(attrs.get("bias") is False, f"{what}: the Conv2d should have no bias (bias=False): BatchNorm "
                                       "subtracts the mean right after it, so a bias has no effect")


@check(cell="test_conv_bn", points=2, kind="behaviour",
       hint="Three layers in the order of section 8: why does the convolution need no bias there, and how many "
            "channels does the BatchNorm normalise?")
def test_conv_bn_layers(sub):
    what, layers, _ = _describe_block(sub, 3, 16)
    types = [t for t, _ in layers]
    expect(types == ["Conv2d", "BatchNorm2d", "ReLU"],
           f"{what} should be Conv2d -> BatchNorm2d -> ReLU, got {' -> '.join(types) or 'no layers'}")
    _expect_conv(what, layers[0][1], 3, 16, 3, 2)
    expect(layers[1][1].get("num_features") == 16,
           f"{what}: BatchNorm2d should normalise the 16 output channels, got num_features={layers[1][1].get('num_features')}")


@check(cell="test_conv_bn", points=1, kind="behaviour",
       hint="act=False leaves out the activation only; the normalisation stays (the last block of "
            "simple_cnn(conv_bn) ends with it).")
def test_conv_bn_without_activation(sub):
    what, layers, _ = _describe_block(sub, 8, 10, ks=5, stride=1, act=False)
    types = [t for t, _ in layers]
    expect(types == ["Conv2d", "BatchNorm2d"], f"{what} should be Conv2d -> BatchNorm2d, got {' -> '.join(types)}")
    _expect_conv(what, layers[0][1], 8, 10, 5, 1)


@check(cell="test_conv_bn", points=1, kind="shape",
       hint="Same size rule as 04's conv: the padding keeps an odd kernel centred, and the stride divides the size.")
def test_conv_bn_output_shape(sub):
    x = torch.randn(3, 2, 13, 8)
    for ks, stride in ((5, 2), (3, 1), (1, 3)):
        block = sub.conv_bn(2, 5, ks=ks, stride=stride)
        out = block(x)
        h = (13 + 2 * (ks // 2) - ks) // stride + 1
        w = (8 + 2 * (ks // 2) - ks) // stride + 1
        expect_tensor_of(out, (3, 5, h, w), what=f"conv_bn(2, 5, ks={ks}, stride={stride}) on an input (3, 2, 13, 8)")


# ---------------------------------------------------------------------------------------------
# fit_one_cycle
# ---------------------------------------------------------------------------------------------


@check(cell="test_fit_one_cycle", points=3, kind="behaviour", timeout=120,
       hint="The schedule must know how many optimiser steps the whole run makes, and advance once after each of "
            "them (section 6); the message shows the first step whose learning rate is off.")
def test_fit_one_cycle_steps_lr_every_batch(sub):
    epochs, max_lr, n_batches = 3, 0.1, 5
    _, lrs, _ = run_tiny_fit(sub, epochs, max_lr)
    expected = one_cycle_trace(max_lr, epochs * n_batches)
    expect(len(lrs) == len(expected),
           f"fit_one_cycle(model, epochs=3, max_lr=0.1, train_dl with 5 batches, ...) made {len(lrs)} optimiser "
           f"steps; expected {len(expected)} (one per batch)")
    for k, (g, e) in enumerate(zip(lrs, expected)):
        if abs(g - e) > 1e-7 + 1e-5 * abs(e):
            epoch_flat = all(lrs[j] == lrs[(j // n_batches) * n_batches] for j in range(len(lrs)))
            why = (" The learning rate only changes between epochs: step the scheduler once per BATCH."
                   if epoch_flat else "")
            raise CheckFailure(
                f"the learning rate used by optimiser step {k} (epoch {k // n_batches}, batch {k % n_batches}) was "
                f"{g:.6g}; the 1cycle schedule over the run's 15 steps gives {e:.6g}.{why} The schedule needs the "
                f"total number of steps of the run (epochs times batches per epoch) and one step after each "
                f"optimiser step.")


@check(cell="test_fit_one_cycle", points=1, kind="shape", timeout=120,
       hint="One dict per epoch, with the four keys of the docstring, numbers as values.")
def test_fit_one_cycle_returns_history(sub):
    history, _, _ = run_tiny_fit(sub, 2, 0.05)
    expect(type(history) is list and len(history) == 2,
           f"fit_one_cycle(..., epochs=2, ...) should return a list of 2 dicts, got "
           f"{type(history).__name__}" + (f" of length {len(history)}" if isinstance(history, list) else ""))
    keys = {"epoch", "train_loss", "valid_loss", "valid_acc"}
    for k, entry in enumerate(history):
        expect(type(entry) is dict and keys <= set(entry),
               f"entry {k} should be a dict with the keys {sorted(keys)}, got "
               f"{sorted(entry) if type(entry) is dict else type(entry).__name__}")
        for key in ("train_loss", "valid_loss", "valid_acc"):
            as_float(entry[key], f"history[{k}][{key!r}]")
        expect(0.0 <= as_float(entry["valid_acc"]) <= 1.0, f"history[{k}]['valid_acc'] should be in [0, 1]")
    e0, e1 = history[0]["epoch"], history[1]["epoch"]

    def integer(v):
        if type(v) is torch.Tensor and v.numel() == 1 and not v.dtype.is_floating_point:
            v = int(v.reshape(()))
        return v if type(v) is int else None

    e0, e1 = integer(e0), integer(e1)
    expect(e0 is not None and e1 is not None and e1 == e0 + 1,
           f"'epoch' should count the epochs as integers (0, 1 or 1, 2), got {history[0]['epoch']!r}, "
           f"{history[1]['epoch']!r}")


@check(cell="test_fit_one_cycle", points=1, kind="numerical", timeout=120,
       hint="The validation numbers must be those of the model in evaluation mode over every validation sample; "
            "the locked `evaluate` helper of section 1 measures exactly that.")
def test_fit_one_cycle_valid_metrics(sub):
    data = tiny_data()
    history, _, model_h = run_tiny_fit(sub, 2, 0.05, data=data)
    expect(type(history) is list and len(history) == 2 and all(type(e) is dict for e in history),
           "fit_one_cycle(..., epochs=2, ...) should return a list of 2 dicts")
    loss, acc = eval_metrics(model_h, data[2], data[3])
    last = history[-1]
    expect_close(as_float(last.get("valid_acc"), "valid_acc"), acc, atol=1e-6, rtol=0,
                 what="history[-1]['valid_acc'] compared with the returned model evaluated in eval mode "
                      "(the model has BatchNorm, so forgetting model.eval() shows here)")
    expect_close(as_float(last.get("valid_loss"), "valid_loss"), loss, atol=1e-5, rtol=1e-4,
                 what="history[-1]['valid_loss'] compared with the returned model's mean cross-entropy in eval mode")
