"""Hidden checks of 04_cnn: compare with the reference notebook's own functions.

The trained ``model`` is compared with the reference trained in the grader with the same budget
(``train_simple_cnn()``: the notebook's seed, batch size, epochs, learning rate and optimiser),
both evaluated on the same held-out test images; the reference's accuracy is cached with
``ref.memo``.
"""

import importlib.util
from pathlib import Path

import torch

from autograder.api import Handle, check, expect, expect_close, expect_tensor, fmt_call


def _common():
    spec = importlib.util.spec_from_file_location("_a04_cnn_common", Path(__file__).with_name("common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


C = _common()
P = C.P
TOLERANCE = 0.03  # the trained model may be this far below the reference's accuracy


# -- conv ---------------------------------------------------------------------------------------------

def _signature(desc):
    """The direct children of a describe() tree as [(type, attrs)] (ReLU's `inplace` does not matter)."""
    return [(child["type"], tuple(sorted((k, v) for k, v in child["attrs"].items() if k != "inplace")))
            for _, child in desc["children"]]


@check(cell="test_conv", points=1, kind="shape",
       hint="conv(ni, nf, ks, stride, act) is nn.Conv2d(ni, nf, ks, stride, padding=ks // 2), then nn.ReLU() if act.")
def test_conv_layers_match_reference(sub, ref):
    for args in [(1, 4, 3, 2, True), (16, 32, 3, 2, False), (3, 7, 5, 1, True), (8, 2, 7, 3, False), (5, 5, 1, 1, True)]:
        what = fmt_call("conv", *args[:2], ks=args[2], stride=args[3], act=args[4])
        got = sub.conv(*args[:2], ks=args[2], stride=args[3], act=args[4])
        expect(isinstance(got, Handle), f"{what} should return an nn.Sequential, got {C.show(got)}")
        want = ref.conv(*args[:2], ks=args[2], stride=args[3], act=args[4])
        g, w = sub.describe(got), ref.describe(want)
        expect(g["type"] == w["type"], f"{what} should return a {w['type']}, got a {g['type']}")
        expect(_signature(g) == _signature(w),
               f"{what}: the layers {[t for t, _ in _signature(g)]} or their settings differ from the expected "
               f"{[t for t, _ in _signature(w)]}")


@check(cell="test_conv", points=1, kind="numerical",
       hint="The block's forward is conv then (when act) ReLU, with padding ks // 2.")
def test_conv_forward_matches_reference_with_the_same_weights(sub, ref):
    for (ni, nf, ks, stride, act), shape in [((3, 6, 3, 2, True), (4, 3, 17, 10)), ((2, 3, 5, 3, False), (2, 2, 9, 14)),
                                             ((4, 4, 1, 1, True), (1, 4, 5, 6))]:
        what = fmt_call("conv", ni, nf, ks=ks, stride=stride, act=act)
        got_block = sub.conv(ni, nf, ks=ks, stride=stride, act=act)
        want_block = ref.conv(ni, nf, ks=ks, stride=stride, act=act)
        expect(isinstance(got_block, Handle), f"{what} should return an nn.Sequential, got {C.show(got_block)}")
        params = ref.eval(f"[p.detach().clone() for p in {P}m.parameters()]", **{f"{P}m": want_block})
        n = sub.eval(f"len(list({P}m.parameters()))", **{f"{P}m": got_block})
        expect(n == len(params), f"{what} should have {len(params)} parameter tensors, got {n}")
        sub.exec(f"with __import__('torch').no_grad():\n"
                 f"    for p, v in zip({P}m.parameters(), {P}v):\n"
                 f"        p.copy_(v.reshape(p.shape))", **{f"{P}m": got_block, f"{P}v": params})
        x = torch.randn(shape)
        expect_tensor(got_block(x), want_block(x), what=f"{what} on x {shape} (with the reference's weights)")


# -- simple_cnn -----------------------------------------------------------------------------------------

SHAPES_SOURCE = f"""
def {P}shapes(model, x):
    import torch as _torch
    flat, convs = [], []
    hooks = []
    for m in model.modules():
        if isinstance(m, _torch.nn.Flatten):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: flat.append(tuple(inp[0].shape))))
        elif isinstance(m, _torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: convs.append(tuple(out.shape))))
    try:
        with _torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return flat, convs
"""


@check(cell="test_simple_cnn", points=1, kind="shape",
       hint="Five stride-2 convs: 28 -> 14 -> 7 -> 4 -> 2 -> 1, the last with 10 channels, then nn.Flatten().")
def test_simple_cnn_reaches_a_1x1_grid_of_10_channels_before_flatten(sub, ref):
    model = sub.simple_cnn()
    expect(isinstance(model, Handle), f"simple_cnn() should return an nn.Module, got {C.show(model)}")
    sub.exec(SHAPES_SOURCE)
    flat, convs = sub.eval(f"{P}shapes({P}m, {P}x)", **{f"{P}m": model, f"{P}x": torch.randn(3, 1, 28, 28)})
    expect(len(flat) == 1, f"simple_cnn() should end with one nn.Flatten() layer, found {len(flat)}")
    sizes = [tuple(s[2:]) for s in convs]
    expect(tuple(flat[0]) == (3, 10, 1, 1),
           f"for 3 images the input of nn.Flatten() should be (3, 10, 1, 1), got {tuple(flat[0])} "
           f"(the convolutions' output grids were {sizes})")


@check(cell="test_simple_cnn", points=1, kind="behaviour",
       hint="Build the layers inside the function, so that each call returns a fresh, untrained model.")
def test_simple_cnn_returns_a_new_model_each_call(sub, ref):
    a, b = sub.simple_cnn(), sub.simple_cnn()
    expect(isinstance(a, Handle) and isinstance(b, Handle), "simple_cnn() should return an nn.Module")
    ids_a = {p["id"] for p in sub.describe(a)["parameters"]}
    ids_b = {p["id"] for p in sub.describe(b)["parameters"]}
    expect(not (ids_a & ids_b), "two calls of simple_cnn() share parameters: build new layers on every call")


# -- get_dataloaders ------------------------------------------------------------------------------------

@check(cell="test_get_dataloaders", points=1, kind="shape",
       hint="The default is batch_size=256.")
def test_get_dataloaders_default_batch_size(sub, ref):
    dls = sub.get_dataloaders()
    expect(type(dls) in (tuple, list) and len(dls) == 2, "get_dataloaders() should return (train_dl, valid_dl)")
    xb, _ = sub.eval(f"next(iter({P}dl))", **{f"{P}dl": dls[0]})
    expect(tuple(xb.shape) == (256, 1, 28, 28),
           f"get_dataloaders() (default batch size) should give training batches (256, 1, 28, 28), "
           f"got {tuple(xb.shape)}")


MEANS_SOURCE = f"[x.to(__import__('torch').float32).flatten(1).mean(1) for x, _ in {P}dl]"


@check(cell="test_get_dataloaders", points=1, kind="numerical",
       hint="Every validation image, in order, normalised with the training set's mean and std.")
def test_get_dataloaders_every_validation_image_matches_reference(sub, ref):
    got_dls, want_dls = sub.get_dataloaders(128), ref.get_dataloaders(128)
    expect(type(got_dls) in (tuple, list) and len(got_dls) == 2, "get_dataloaders() should return (train_dl, valid_dl)")
    got = sub.eval(MEANS_SOURCE, **{f"{P}dl": got_dls[1]})
    want = torch.cat(ref.eval(MEANS_SOURCE, **{f"{P}dl": want_dls[1]}))
    expect(type(got) is list and all(type(t) is torch.Tensor for t in got),
           "the validation loader should yield (images, labels) pairs of tensors")
    expect_tensor(torch.cat(got), want, atol=1e-3, rtol=0,
                  what="the mean pixel of each of the 10,000 validation images")


# -- accuracy -------------------------------------------------------------------------------------------

@check(cell="test_accuracy", points=1, kind="numerical",
       hint="Share of rows whose largest logit is at the target's index.")
def test_accuracy_matches_reference(sub, ref):
    for n, c in [(1, 10), (10, 10), (64, 10), (7, 3), (1000, 10)]:
        logits = torch.randn(n, c)
        targets = torch.randint(0, c, (n,))
        expect_close(sub.accuracy(logits, targets), ref.accuracy(logits, targets),
                     what=fmt_call("accuracy", logits, targets))


# -- fit ------------------------------------------------------------------------------------------------

def _fit_both(sub, ref, epochs=2, lr=0.1, opt=None):
    state, data = C.spy_state(), C.spy_data(n_train=24, n_valid=12)
    histories = []
    for ns in (sub, ref):
        C.setup_spy(ns, state, data, batch_size=6)
        histories.append(C.history_rows(C.run_fit(ns, epochs, lr, opt=opt), epochs))
    params = [ns.eval(f"{{n: p.detach().clone() for n, p in {P}model.named_parameters()}}") for ns in (sub, ref)]
    return histories, params


@check(cell="test_fit", points=2, kind="numerical",
       hint="Per batch: forward, F.cross_entropy(logits, yb), backward, step, zero_grad (gradients add up "
            "otherwise); one optimizer for the whole run.")
def test_fit_trains_like_the_reference(sub, ref):
    for opt in (None, "torch.optim.Adam"):
        _, (got, want) = _fit_both(sub, ref, opt=opt)
        what = f"fit(model, 2, 0.1, ..., opt_func={opt or 'torch.optim.SGD'}) on a tiny model with 4 batches"
        for name, value in want.items():
            expect(name in got, f"{what}: the model's parameter {name} is missing")
            expect_tensor(got[name], value, what=f"{what}: the trained {name}", atol=1e-5, rtol=1e-4)


@check(cell="test_fit", points=1, kind="numerical",
       hint="valid_loss and valid_acc are measured at the end of each epoch on the whole validation set.")
def test_fit_validation_history_matches_reference(sub, ref):
    (got, want), _ = _fit_both(sub, ref, epochs=3, lr=0.2)
    for i, (g, w) in enumerate(zip(got, want)):
        for key in ("valid_loss", "valid_acc"):
            expect_close(g[key], w[key], what=f"history[{i}][{key!r}]", atol=1e-4, rtol=1e-4)


# -- the trained model -----------------------------------------------------------------------------------

def _reference_accuracy(ref) -> float:
    def compute():
        ref.exec(f"{P}ref_model, _ = train_simple_cnn()")
        x, y = C.heldout("hidden")
        return C.accuracy_of(C.predict(ref, f"{P}ref_model", x), y)

    return float(ref.memo("trained_reference_accuracy", compute))


@check(cell="test_model", points=3, kind="accuracy", timeout=120,
       hint="With the same budget your model should do about as well as the reference: compare your fit with "
            "the usual loop (train(), zero_grad, eval(), no_grad) and your normalisation with the training "
            "statistics.")
def test_model_is_within_3_points_of_the_reference(sub, ref):
    want = _reference_accuracy(ref)
    got = C.trained_model_accuracy(sub, "hidden")
    expect(got >= want - TOLERANCE,
           f"the trained `model` classifies {got:.1%} of {C.HIDDEN_HELDOUT:,} held-out test images correctly; "
           f"with the same budget it should reach at least {want - TOLERANCE:.1%}")


@check(cell="test_model", points=1, kind="behaviour",
       hint="`model` should be the simple_cnn() trained by the training cell.")
def test_model_is_a_small_cnn(sub, ref):
    expect(sub.has("model"), "there is no variable named `model`: run the training cell")
    model = sub.eval("model")
    expect(isinstance(model, Handle), f"`model` should be an nn.Module, got {C.show(model)}")
    desc = sub.describe(model)
    expect(desc["is_module"], f"`model` should be an nn.Module, got a {desc['type']}")
    linear = [m["type"] for m in C.walk(desc) if any(C.is_type(m, t) for t in C.LINEAR_TYPES)]
    expect(not linear and desc["n_parameters"] <= 60_000,
           f"`model` should be a simple_cnn() (no linear layer, at most 60,000 parameters); it has "
           f"{desc['n_parameters']:,} parameters and linear layers {linear}")
