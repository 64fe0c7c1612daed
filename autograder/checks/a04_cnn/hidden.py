"""Hidden checks of 04_cnn: compare with the reference notebook's own functions.

The trained ``model`` is compared with the reference trained in the grader with the same budget
(``train_simple_cnn()``: the notebook's seed, batch size, epochs, learning rate and optimiser),
both evaluated on the same held-out test images; the reference's accuracy is cached with
``ref.memo``.
"""


import torch

from autograder.authoring.api import (
    Handle,
    StudentError,
    check,
    expect,
    expect_close,
    expect_tensor,
    fmt_call,
)

from . import common as C

P = C.P
TOLERANCE = 0.03  # the trained model may be this far below the reference's accuracy


def _expect_new_model_each_call(sub, name):
    """Two calls of ``name()`` give two modules that share no parameter."""
    a, b = getattr(sub, name)(), getattr(sub, name)()
    expect(isinstance(a, Handle) and isinstance(b, Handle), f"{name}() should return an nn.Module")
    ids_a = {p["id"] for p in sub.describe(a)["parameters"]}
    ids_b = {p["id"] for p in sub.describe(b)["parameters"]}
    expect(not (ids_a & ids_b), f"two calls of {name}() share parameters: build new layers on every call")


# -- conv ---------------------------------------------------------------------------------------------

_SETTINGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")


def _signature(ns, block):
    """(kind of the block, [(kind of each child, its settings)]): kinds by isinstance, so subclasses count;
    ReLU's `inplace` does not matter."""
    s = C.structure(ns, block)
    children = [child for _, child in ns.describe(block)["children"]]
    layers = [(kind, tuple((k, child["attrs"].get(k)) for k in _SETTINGS if k in child["attrs"]))
              for kind, child in zip(s["children"], children)]
    return s, layers


@check(cell="test_conv", points=1, kind="shape",
       hint="Compare the layers and the setting named in the message with the docstring of conv; the defaults "
            "count too.")
def test_conv_layers_match_reference(sub, ref):
    for args in [(1, 4, 3, 2, True), (16, 32, 3, 2, False), (3, 7, 5, 1, True), (8, 2, 7, 3, False), (5, 5, 1, 1, True)]:
        what = fmt_call("conv", *args[:2], ks=args[2], stride=args[3], act=args[4])
        got = sub.conv(*args[:2], ks=args[2], stride=args[3], act=args[4])
        expect(isinstance(got, Handle), f"{what} should return an nn.Sequential, got {C.show(got)}")
        want = ref.conv(*args[:2], ks=args[2], stride=args[3], act=args[4])
        (gs, g), (_, w) = _signature(sub, got), _signature(ref, want)
        expect(gs["is_sequential"], f"{what} should return an nn.Sequential (or a subclass of it), got a {gs['type']}")
        expect([k for k, _ in g] == [k for k, _ in w],
               f"{what}: expected the layers {[k for k, _ in w]}, got {C.layer_names(gs)}")
        for i, ((kind, got_settings), (_, want_settings)) in enumerate(zip(g, w)):
            for (key, value), (_, expected) in zip(got_settings, want_settings):
                expect(value == expected, f"{what}: layer {i} ({kind}) should have {key}={expected}, got {value}")
            expect(len(got_settings) == len(want_settings), f"{what}: layer {i} ({kind}) differs from the expected one")


@check(cell="test_conv", points=1, kind="numerical",
       hint="Given the same weights, the block must compute what the docstring describes, in training and in "
            "evaluation mode alike.")
def test_conv_forward_matches_reference_with_the_same_weights(sub, ref):
    for (ni, nf, ks, stride, act), shape in [((3, 6, 3, 2, True), (4, 3, 17, 10)), ((2, 3, 5, 3, False), (2, 2, 9, 14)),
                                             ((4, 4, 1, 1, True), (1, 4, 5, 6))]:
        what = fmt_call("conv", ni, nf, ks=ks, stride=stride, act=act)
        got_block = sub.conv(ni, nf, ks=ks, stride=stride, act=act)
        want_block = ref.conv(ni, nf, ks=ks, stride=stride, act=act)
        expect(isinstance(got_block, Handle), f"{what} should return an nn.Sequential, got {C.show(got_block)}")
        (weight, bias), = C.conv_parameters(ref, want_block)
        n = sub.eval(f"len(list({P}m.parameters()))", **{f"{P}m": got_block})
        expect(n == 2 and C.load_conv(sub, got_block, weight, bias),
               f"{what} should hold one Conv2d with weight {tuple(weight.shape)} and a bias, and no other parameter")
        x = torch.randn(shape)
        for training in (True, False):
            C.set_mode(sub, got_block, training)
            C.set_mode(ref, want_block, training)
            expect_tensor(got_block(x), want_block(x),
                          what=f"{what} on x {shape} with the reference's weights, in "
                               f"{'training' if training else 'eval'} mode")


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
       hint="The message lists the grid after every convolution: compare it with the table of section 3.")
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
       hint="Each call should give a new, untrained network: layers made once and returned again are shared.")
def test_simple_cnn_returns_a_new_model_each_call(sub, ref):
    _expect_new_model_each_call(sub, "simple_cnn")


# -- get_dataloaders ------------------------------------------------------------------------------------

@check(cell="test_get_dataloaders", points=1, kind="shape",
       hint="Look at the default value of batch_size in the signature.")
def test_get_dataloaders_default_batch_size(sub, ref):
    dls = sub.get_dataloaders()
    expect(type(dls) in (tuple, list) and len(dls) == 2, "get_dataloaders() should return (train_dl, valid_dl)")
    xb, _ = sub.eval(f"next(iter({P}dl))", **{f"{P}dl": dls[0]})
    expect(tuple(xb.shape) == (256, 1, 28, 28),
           f"get_dataloaders() (default batch size) should give training batches (256, 1, 28, 28), "
           f"got {tuple(xb.shape)}")


MEANS_SOURCE = f"[x.to(__import__('torch').float32).flatten(1).mean(1) for x, _ in {P}dl]"


@check(cell="test_get_dataloaders", points=1, kind="numerical",
       hint="Every validation image, in its original order, normalised with the training set's statistics.")
def test_get_dataloaders_every_validation_image_matches_reference(sub, ref):
    # only read: the loaders the public checks share (each check its own copy)
    got_dls, want_dls = sub.shared_result("get_dataloaders", 64), ref.shared_result("get_dataloaders", 64)
    expect(type(got_dls) in (tuple, list) and len(got_dls) == 2, "get_dataloaders() should return (train_dl, valid_dl)")
    got = sub.eval(MEANS_SOURCE, **{f"{P}dl": got_dls[1]})
    want = torch.cat(ref.eval(MEANS_SOURCE, **{f"{P}dl": want_dls[1]}))
    expect(type(got) is list and all(type(t) is torch.Tensor for t in got),
           "the validation loader should yield (images, labels) pairs of tensors")
    expect_tensor(torch.cat(got), want, atol=1e-3, rtol=0,
                  what="the mean pixel of each of the 10,000 validation images")


# -- accuracy -------------------------------------------------------------------------------------------

@check(cell="test_accuracy", points=1, kind="numerical",
       hint="The share of rows whose largest logit is at the target's index, as a number between 0 and 1.")
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
       hint="Trained weights that differ from the reference's usually mean a step of section 5 is missing or out "
            "of order (gradients add up when they are not reset), or an optimiser made more than once.")
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
       hint="With the same budget your model should do about as well as the reference: the checks of fit and "
            "get_dataloaders usually show which part differs.")
def test_model_is_within_3_points_of_the_reference(sub, ref):
    want = _reference_accuracy(ref)
    got = C.trained_model_accuracy(sub, "hidden")
    expect(got >= want - TOLERANCE,
           f"the trained `model` classifies {got:.1%} of {C.HIDDEN_HELDOUT:,} held-out test images correctly; "
           f"with the same budget it should reach at least {want - TOLERANCE:.1%}")


@check(cell="test_model", points=1, kind="behaviour",
       hint="`model` should be the simple_cnn() trained by the training cell.")
def test_model_is_a_small_cnn(sub, ref):
    C.expect_trained_model(sub)
    model = sub.eval("model")
    expect(isinstance(model, Handle), f"`model` should be an nn.Module, got {C.show(model)}")
    desc = sub.describe(model)
    s = C.structure(sub, model)
    expect(s["is_module"], f"`model` should be an nn.Module, got a {s['type']}")
    linear = s["linear"]
    expect(not linear and desc["n_parameters"] <= 60_000,
           f"`model` should be a simple_cnn() (no linear layer, at most 60,000 parameters); it has "
           f"{desc['n_parameters']:,} parameters and linear layers {linear}")


# -- max_pool2d ---------------------------------------------------------------------------------------------

@check(cell="test_max_pool2d", points=2, kind="numerical",
       hint="Compare your output size with the formula of section 9 first; then look at where the largest "
            "difference is (a border row or column, an overlapping window, one channel).")
def test_max_pool2d_matches_reference(sub, ref):
    cases = [((4, 3, 11, 13), (3,), {}), ((2, 5, 8, 8), (2,), {"stride": 2}), ((1, 1, 28, 28), (2,), {}),
             ((3, 2, 12, 9), (4,), {"stride": 3}), ((2, 2, 7, 7), (3,), {"stride": 1}),
             ((1, 3, 6, 10), (), {})]
    for shape, args, kwargs in cases:
        x = torch.randn(shape) * 3
        x[..., ::3, ::2] = x.amax() + 1      # ties: several windows share their maximum
        got = C.call_without_pooling(sub, x, *args, **kwargs)
        expect_tensor(got, ref.max_pool2d(x, *args, **kwargs), atol=1e-6, rtol=0,
                      what=fmt_call("max_pool2d", x, *args, **kwargs))


@check(cell="test_max_pool2d", points=1, kind="behaviour",
       hint="Pooling must leave its input as it was: work on new tensors, not in place.")
def test_max_pool2d_leaves_its_input_unchanged(sub, ref):
    x = torch.randn(2, 3, 8, 10)
    try:
        sub.exec(f"{P}x = {P}v.clone()\n{P}out = max_pool2d({P}x, 2)", **{f"{P}v": x})
    except StudentError as err:
        raise StudentError({"type": err.type_name, "mro": err.mro, "message": err.message},
                           "max_pool2d(x (2, 3, 8, 10), 2)") from None
    expect_tensor(sub.eval(f"{P}x"), x, atol=0, rtol=0, what="x after max_pool2d(x (2, 3, 8, 10), 2)")


# -- pool_cnn -------------------------------------------------------------------------------------------------

@check(cell="test_pool_cnn", points=1, kind="numerical",
       hint="Given the reference's weights, the network must compute what the docstring lists, layer by layer, "
            "in training and in evaluation mode.")
def test_pool_cnn_matches_reference_with_the_same_weights(sub, ref):
    got_model, want_model = sub.pool_cnn(), ref.pool_cnn()
    expect(isinstance(got_model, Handle), f"pool_cnn() should return an nn.Module, got {C.show(got_model)}")
    params = C.parameter_list(sub, got_model)
    expect(C.by_shape(params) is not None,
           f"pool_cnn() should hold the parameters {[shape for _, shape in C.POOL_CNN_SHAPES]}, got "
           f"{[tuple(shape) for shape, _ in params]}")
    C.load_by_shape(sub, got_model, [t for _, t in C.parameter_list(ref, want_model)])
    x = torch.randn(5, 1, 28, 28)
    for training in (True, False):
        C.set_mode(sub, got_model, training)
        C.set_mode(ref, want_model, training)
        expect_tensor(got_model(x), want_model(x), atol=1e-5,
                      what=f"pool_cnn() on x (5, 1, 28, 28) with the reference's weights, in "
                           f"{'training' if training else 'eval'} mode")


@check(cell="test_pool_cnn", points=1, kind="behaviour",
       hint="Each call should give a new, untrained network: layers made once and returned again are shared.")
def test_pool_cnn_returns_a_new_model_each_call(sub, ref):
    _expect_new_model_each_call(sub, "pool_cnn")
