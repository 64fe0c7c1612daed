"""Public checks of 02_conv_arithmetic: the oracle is always PyTorch itself or a hand count.

Sizes are compared with what a real ``nn.Conv2d`` produces on a zero image, parameter counts
with a real ``nn.Conv2d``'s parameters, multiplications with a measurement on an all-ones
``nn.Conv2d`` (each multiplication adds 1 to the output), receptive fields with an autograd
measurement, feature-map shapes with a layer-by-layer forward pass.
The property-based checks try many argument combinations and report the smallest one that fails.
"""


import torch
from hypothesis import example, given
from hypothesis import strategies as st

from autograder.authoring.api import StudentError, check, expect, expect_raises, fmt_call

from . import common as C

# -- conv_out_size ---------------------------------------------------------------------------------

def _compare_out_size(sub, case_h, case_w):
    """conv_out_size for each of the two dimensions against a real nn.Conv2d on a (1, 1, H, W) image."""
    (h, kh, sh, ph, dh), (w, kw, sw, pw, dw) = case_h, case_w
    expected = C.conv2d_out_hw(h, w, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    assert expected is not None, (case_h, case_w)
    for (n, k, s, p, d), want, axis in ((case_h, expected[0], "height"), (case_w, expected[1], "width")):
        what = fmt_call("conv_out_size", n, k, stride=s, padding=p, dilation=d)
        got = C.call(sub, "conv_out_size", n, k, stride=s, padding=p, dilation=d)
        C.expect_value(got, want, f"{what} (the {axis} of nn.Conv2d's output)")


def _out_size_matches_conv2d(sub, max_examples, examples, **case_bounds):
    """The property of the conv_out_size checks: ``_compare_out_size`` on (height, width) pairs of cases
    within ``case_bounds`` (``C.fitting_cases``), the explicit ``examples`` first, in order."""
    def prop(case_h, case_w):
        _compare_out_size(sub, case_h, case_w)

    for case_h, case_w in reversed(examples):  # as stacked @example decorators: the first one runs first
        prop = example(case_h, case_w)(prop)
    cases = C.fitting_cases(**case_bounds)
    C.prop(max_examples)(given(cases, cases)(prop))()


@check(cell="test_conv_out_size", points=1, kind="shape",
       hint="Count the positions at which a window of size k can start in n pixels (section 1), on the smallest "
            "failing case above.")
def test_conv_out_size_no_padding_matches_conv2d(sub):
    _out_size_matches_conv2d(sub, 40, [((5, 3, 1, 0, 1), (7, 2, 1, 0, 1))], max_s=1, max_p=0)


@check(cell="test_conv_out_size", points=1, kind="shape",
       hint="Padding adds p pixels on both sides, and a window that would stick out past the padded edge is not "
            "computed: reread how section 1 rounds, and try the failing case above by hand.")
def test_conv_out_size_padding_and_stride_match_conv2d(sub):
    _out_size_matches_conv2d(sub, 50, [((28, 3, 2, 1, 1), (7, 3, 2, 1, 1)), ((6, 3, 2, 0, 1), (9, 2, 3, 2, 1))],
                             max_s=4, max_p=3)


@check(cell="test_conv_out_size", points=1, kind="shape",
       hint="Dilation spreads the kernel's taps apart: section 1 gives the effective size of a dilated kernel.")
def test_conv_out_size_dilation_matches_conv2d(sub):
    _out_size_matches_conv2d(sub, 40, [((10, 3, 1, 0, 2), (12, 3, 2, 2, 3))], max_s=3, max_p=3, max_d=4)


@check(cell="test_conv_out_size", points=0.5, kind="behaviour",
       hint="The result must be a Python int: true division gives a float even when it divides exactly "
            "(Exercise 1's first bullet).")
def test_conv_out_size_returns_int(sub):
    for args, kwargs in (((28, 3), {"stride": 2, "padding": 1}), ((9, 3), {}), ((10, 3), {"dilation": 2})):
        C.expect_int(C.call(sub, "conv_out_size", *args, **kwargs), fmt_call("conv_out_size", *args, **kwargs))


@check(cell="test_conv_out_size", points=1, kind="error",
       hint="The docstring's Raises lists the values of kernel_size, stride, padding and dilation that make no "
            "sense; the failing call above is one of them.")
def test_conv_out_size_rejects_invalid_arguments(sub):
    bad = [((10, 0), {}), ((10, -3), {}), ((10, 3), {"stride": 0}), ((10, 3), {"stride": -1}),
           ((10, 3), {"padding": -1}), ((10, 3), {"dilation": 0})]
    for args, kwargs in bad:
        expect_raises(lambda a=args, k=kwargs: sub.conv_out_size(*a, **k), "ValueError",
                      what=fmt_call("conv_out_size", *args, **kwargs))


@check(cell="test_conv_out_size", points=1, kind="error",
       hint="When the (dilated) kernel is larger than the padded input there is no output, as nn.Conv2d says too. "
            "Reread how Python rounds a negative quotient (Exercise 1's first bullet).")
def test_conv_out_size_rejects_kernel_larger_than_padded_input(sub):
    @C.prop(40)
    @given(C.too_small_cases())
    @example((4, 5, 2, 0, 1))
    @example((2, 3, 1, 0, 1))
    @example((5, 3, 3, 0, 3))
    def prop(case):
        n, k, s, p, d = case
        assert C.conv2d_out_hw(n, n, k, stride=s, padding=p, dilation=d) is None, case  # PyTorch refuses too
        expect_raises(lambda: sub.conv_out_size(n, k, stride=s, padding=p, dilation=d), "ValueError",
                      what=fmt_call("conv_out_size", n, k, stride=s, padding=p, dilation=d)
                      + " (nn.Conv2d has no output here)")

    prop()


# -- same_padding ----------------------------------------------------------------------------------

def _expect_same_size(sub, k, d):
    """The padding keeps the size (any whole number-like: the Python int has its own check)."""
    what = fmt_call("same_padding", k, dilation=d)
    p = C.whole_number(C.call(sub, "same_padding", k, dilation=d), what)
    expect(p >= 0, f"{what}: expected a padding >= 0, got {p}")
    h, w = 2 * d * (k - 1) + 3, 2 * d * (k - 1) + 8  # non-square, larger than the kernel
    got = C.conv2d_out_hw(h, w, k, padding=p, dilation=d)
    turned = "no output at all" if got is None else f"a {got[0]}x{got[1]} output"
    expect(got == (h, w), f"{what} returned {p}, but nn.Conv2d({k}, padding={p}, dilation={d}) turns a "
                          f"{h}x{w} image into {turned}, not {h}x{w}")


@check(cell="test_same_padding", points=1, kind="shape",
       hint="At stride 1 the formula of section 1 loses the division: section 2 solves it for the padding that "
            "gives back n.")
def test_same_padding_keeps_size_odd_kernels(sub):
    for k in (1, 3, 5, 7, 9, 11):
        _expect_same_size(sub, k, 1)


@check(cell="test_same_padding", points=1, kind="shape",
       hint="With a dilation the kernel covers more pixels than k: section 2's equation keeps the dilation in.")
def test_same_padding_keeps_size_with_dilation(sub):
    @C.prop(40)
    @given(st.integers(1, 9), st.integers(1, 5))
    @example(3, 2)
    @example(2, 2)
    @example(4, 4)
    def prop(k, d):
        if (d * (k - 1)) % 2 == 1:  # even effective kernel: no symmetric padding exists
            return
        _expect_same_size(sub, k, d)

    prop()


@check(cell="test_same_padding", points=1, kind="error",
       hint="An even effective kernel cannot be centred (section 2); note that k = 2 with dilation 2 covers 3 "
            "pixels, which is odd.")
def test_same_padding_rejects_even_effective_kernel(sub):
    @C.prop(30)
    @given(st.integers(1, 10), st.integers(1, 5))
    @example(2, 1)
    @example(4, 1)
    @example(2, 3)
    def prop(k, d):
        if (d * (k - 1)) % 2 == 0:
            return
        expect_raises(lambda: sub.same_padding(k, dilation=d), "ValueError",
                      what=fmt_call("same_padding", k, dilation=d) + f" (the kernel spans {d * (k - 1) + 1} pixels)")

    prop()


@check(cell="test_same_padding", points=0.5, kind="behaviour",
       hint="A padding is a whole number of pixels, and nn.Conv2d wants a Python int: see the docstring's Returns.")
def test_same_padding_returns_int(sub):
    for k, d in ((3, 1), (5, 1), (3, 2), (2, 2), (7, 3)):
        C.expect_int(C.call(sub, "same_padding", k, dilation=d), fmt_call("same_padding", k, dilation=d))


# -- conv_params -----------------------------------------------------------------------------------

def _compare_params(sub, cin, cout, kernel_size, **kwargs):
    what = fmt_call("conv_params", cin, cout, kernel_size, **kwargs)
    expected = C.conv2d_param_count(cin, cout, kernel_size, **kwargs)
    C.expect_value(C.call(sub, "conv_params", cin, cout, kernel_size, **kwargs), expected,
                   f"{what} (what nn.Conv2d({cin}, {cout}, {kernel_size!r}"
                   + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ") has)")


@check(cell="test_conv_params", points=1, kind="numerical",
       hint="One k x k kernel for every pair (input channel, output channel), plus one bias per output channel "
            "(section 3).")
def test_conv_params_square_kernel_with_bias(sub):
    @C.prop(40)
    @given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 7))
    @example(8, 16, 3)
    def prop(cin, cout, k):
        _compare_params(sub, cin, cout, k)

    prop()


@check(cell="test_conv_params", points=1, kind="numerical", hint="bias=False: the layer has no bias vector at all.")
def test_conv_params_without_bias(sub):
    @C.prop(30)
    @given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 7))
    @example(3, 64, 7)
    def prop(cin, cout, k):
        _compare_params(sub, cin, cout, k, bias=False)

    prop()


@check(cell="test_conv_params", points=1, kind="numerical",
       hint="kernel_size=(kh, kw) is a kernel of kh rows and kw columns: both sides count.")
def test_conv_params_rectangular_kernel(sub):
    @C.prop(40)
    @given(st.integers(1, 32), st.integers(1, 32), st.integers(1, 7), st.integers(1, 7), st.booleans())
    @example(3, 8, 1, 5, True)
    @example(4, 2, 3, 1, False)
    def prop(cin, cout, kh, kw, bias):
        _compare_params(sub, cin, cout, (kh, kw), bias=bias)

    prop()


@check(cell="test_conv_params", points=1, kind="numerical",
       hint="With groups=g each filter only sees in_channels / g input channels; there are still out_channels "
            "filters (section 3).")
def test_conv_params_groups(sub):
    @C.prop(40)
    @given(st.integers(1, 8), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.booleans())
    @example(4, 8, 1, 3, True)
    def prop(g, in_per_group, out_per_group, k, bias):
        _compare_params(sub, g * in_per_group, g * out_per_group, k, bias=bias, groups=g)

    prop()
    _compare_params(sub, 32, 32, 3, groups=32)  # depthwise convolution
    _compare_params(sub, 12, 18, (3, 5), bias=False, groups=3)


@check(cell="test_conv_params", points=0.5, kind="error",
       hint="nn.Conv2d refuses a groups that does not divide both channel counts: the docstring's Raises.")
def test_conv_params_rejects_groups_not_dividing_channels(sub):
    for cin, cout, g in ((3, 4, 2), (4, 6, 4), (6, 4, 4)):
        try:
            C.conv2d_param_count(cin, cout, 3, groups=g)
            raise RuntimeError(f"nn.Conv2d({cin}, {cout}, 3, groups={g}) was accepted: this check's case is wrong")
        except ValueError:
            pass
        expect_raises(lambda a=cin, b=cout, c=g: sub.conv_params(a, b, 3, groups=c), "ValueError",
                      what=fmt_call("conv_params", cin, cout, 3, groups=g))


# -- conv_mults ------------------------------------------------------------------------------------

@check(cell="test_conv_mults", points=1, kind="numerical",
       hint="Each output value is one filter times one patch: count the output values, and the multiplications "
            "each one needs. Biases are added, never multiplied (section 3, Multiplications).")
def test_conv_mults_hand_counts(sub):
    cases = [
        ((8, 16, 3, 7, 7), 7 * 7 * (1168 - 16)),        # fastbook: 1168 parameters, 16 of them biases
        ((4, 8, 3, 14, 14), 14 * 14 * (296 - 8)),       # fastbook: 296 parameters, 8 of them biases
        ((1, 1, 3, 26, 26), 26 * 26 * 9),               # one 3x3 kernel over a 28x28 image, no padding
        ((3, 64, 11, 55, 55), 55 * 55 * 64 * 3 * 121),  # AlexNet's first layer
    ]
    for args, expected in cases:
        C.expect_value(C.call(sub, "conv_mults", *args), expected, fmt_call("conv_mults", *args))


@check(cell="test_conv_mults", points=1, kind="numerical",
       hint="Count only multiplications, one per weight per output position: not the additions, not the bias.")
def test_conv_mults_matches_measurement(sub):
    @C.prop(30)
    @given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 5), st.integers(5, 16), st.integers(5, 16),
           st.integers(1, 3))
    def prop(cin, cout, k, h, w, s):
        mults, oh, ow = C.conv2d_mults_and_out(cin, cout, k, h, w, stride=s)
        C.expect_value(C.call(sub, "conv_mults", cin, cout, k, oh, ow), mults,
                       fmt_call("conv_mults", cin, cout, k, oh, ow)
                       + f" (measured on nn.Conv2d({cin}, {cout}, {k}, stride={s}) and a {h}x{w} image)")

    prop()


@check(cell="test_conv_mults", points=1, kind="numerical",
       hint="kernel_size=(kh, kw) is a kernel of kh rows and kw columns: both sides count, as in conv_params.")
def test_conv_mults_rectangular_kernel(sub):
    @C.prop(30)
    @given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5),
           st.integers(6, 14), st.integers(6, 14))
    @example(2, 3, 1, 5, 8, 12)
    def prop(cin, cout, kh, kw, h, w):
        mults, oh, ow = C.conv2d_mults_and_out(cin, cout, (kh, kw), h, w)
        C.expect_value(C.call(sub, "conv_mults", cin, cout, (kh, kw), oh, ow), mults,
                       fmt_call("conv_mults", cin, cout, (kh, kw), oh, ow))

    prop()


# -- receptive_field -------------------------------------------------------------------------------

@check(cell="test_receptive_field", points=1, kind="numerical",
       hint="Each layer adds (k - 1) times the jump, the product of the strides of the layers before it "
            "(section 4); the failing case above is small enough to draw.")
def test_receptive_field_small_examples(sub):
    cases = [
        ([], 1),                                # no layer: a unit sees itself
        ([(3, 1)], 3),
        ([(3, 1), (3, 1)], 5),                  # two stride-1 3x3 convs
        ([(3, 2), (3, 2)], 7),                  # fastbook: two stride-2 3x3 convs
        ([(5, 2), (3, 2), (3, 2)], 17),
        ([(2, 2), (2, 2), (2, 2)], 8),          # non-overlapping 2x2 windows tile the input
    ]
    for layers, expected in cases:
        C.expect_value(C.call(sub, "receptive_field", layers), expected, fmt_call("receptive_field", layers))


@check(cell="test_receptive_field", points=2, kind="numerical",
       hint="Walk through the layers from the input, keeping the receptive field and the jump (section 4): a "
            "layer's own stride only matters for the layers after it.")
def test_receptive_field_matches_gradient_measurement(sub):
    layer = st.tuples(st.integers(1, 5), st.integers(1, 2))

    @C.prop(30)
    @given(st.lists(layer, min_size=1, max_size=4))
    @example([(3, 2), (3, 1)])
    @example([(3, 1), (3, 2), (5, 1)])
    def prop(layers):
        expected = C.measured_receptive_field(layers)
        C.expect_value(C.call(sub, "receptive_field", layers), expected,
                       fmt_call("receptive_field", layers) + " (measured with autograd on all-ones convs)")

    prop()


# -- feature_map_shapes ----------------------------------------------------------------------------

def _expect_shapes(got, expected, what):
    """The shapes must match (tuples or lists alike: the types have their own check)."""
    expect(isinstance(got, list | tuple), f"{what}: expected a list, got {type(got).__name__}")
    expect(len(got) == len(expected), f"{what}: expected {len(expected)} shapes (one per top-level child), "
                                      f"got {len(got)}: {got!r}"[:400])
    for i, (g, e) in enumerate(zip(got, expected)):
        same = isinstance(g, tuple | list) and tuple(g) == e
        expect(same, f"{what}: after top-level child {i} expected {e}, got {g!r}"
                     + (" (leave out the batch dimension)" if isinstance(g, tuple | list) and tuple(g)[1:] == e else ""))


@check(cell="test_feature_map_shapes", points=1, kind="shape",
       hint="One (C, H, W) tuple per top-level child, without the batch dimension; (F,) after nn.Flatten.")
def test_feature_map_shapes_stride2_cnn(sub):
    model = C.build_in(sub, "stride2_cnn")
    what = "feature_map_shapes(a stride-2 CNN, (1, 28, 28))"
    got = C.call(sub, "feature_map_shapes", model, (1, 28, 28), what=what)
    expected = [(6, 14, 14), (12, 7, 7), (24, 4, 4), (10, 2, 2), (10, 1, 1), (10,)]
    _expect_shapes(got, expected, what)


@check(cell="test_feature_map_shapes", points=1, kind="shape",
       hint="Only the top-level children of the model count, not every module inside them (Exercise 6).")
def test_feature_map_shapes_matches_layer_by_layer_run(sub):
    model = C.build_in(sub, "mixed")  # Conv2d (3x5) > BatchNorm2d > ReLU > MaxPool2d > dilated Conv2d > ... > Linear
    oracle = C.build_here("mixed")
    for shape in ((3, 20, 30), (3, 17, 23), (3, 40, 26)):
        expected = C.shapes_layer_by_layer(oracle, shape)
        what = f"feature_map_shapes(model, {shape})"
        _expect_shapes(C.call(sub, "feature_map_shapes", model, shape, what=what), expected, what)


@check(cell="test_feature_map_shapes", points=0.5, kind="behaviour",
       hint="A list of tuples of Python ints, as the docstring's Returns says: a torch.Size is a tuple, a list of "
            "lists is not.")
def test_feature_map_shapes_returns_list_of_int_tuples(sub):
    model = C.build_in(sub, "stride2_cnn")
    what = "feature_map_shapes(a stride-2 CNN, (1, 28, 28))"
    got = C.call(sub, "feature_map_shapes", model, (1, 28, 28), what=what)
    expect(type(got) is list, f"{what}: expected a list, got {type(got).__name__}")
    for item in got:
        expect(type(item) is tuple and all(type(v) is int for v in item),
               f"{what}: every item must be a tuple of ints, got {item!r} ({type(item).__name__})")


def _hook_counts(model):
    d = model.describe()
    return d["n_forward_hooks"], d["n_forward_pre_hooks"]


@check(cell="test_feature_map_shapes", points=1, kind="behaviour",
       hint="A hook stays registered until its handle is removed: reread point 1 of section 5.")
def test_feature_map_shapes_removes_its_hooks(sub):
    for name, shape in (("stride2_cnn", (1, 28, 28)), ("mixed", (3, 20, 30))):
        model = C.build_in(sub, name)
        for _ in range(2):
            C.call(sub, "feature_map_shapes", model, shape, what=f"feature_map_shapes({name} model, {shape})")
        fwd, pre = _hook_counts(model)
        expect(fwd == 0 and pre == 0, f"after two calls of feature_map_shapes on the {name} model, it still has "
                                      f"{fwd} forward hook(s) and {pre} forward pre-hook(s) registered; remove them")


@check(cell="test_feature_map_shapes", points=1, kind="behaviour",
       hint="The hooks must go away even when the forward pass raises an error: reread point 1 of section 5.")
def test_feature_map_shapes_removes_hooks_when_forward_fails(sub):
    model = C.build_in(sub, "fails_small")
    C.call(sub, "feature_map_shapes", model, (1, 20, 20), what="feature_map_shapes(model, (1, 20, 20))")  # must work
    try:
        sub.feature_map_shapes(model, (1, 6, 6))  # the second 5x5 conv meets a 2x2 map: PyTorch raises
    except StudentError:
        pass
    fwd, pre = _hook_counts(model)
    expect(fwd == 0 and pre == 0, f"after feature_map_shapes(model, (1, 6, 6)) raised (the input is too small for "
                                  f"the model), {fwd} forward hook(s) and {pre} pre-hook(s) were left registered")


@check(cell="test_feature_map_shapes", points=1, kind="behaviour",
       hint="Leave the model as you found it: its training flag and BatchNorm's running statistics (points 2 and 3 "
            "of section 5).")
def test_feature_map_shapes_leaves_model_unchanged(sub):
    model = C.build_in(sub, "bn_train")
    flags_before = C.training_flags(model.describe())
    state_before = C.state_snapshot(sub, model)
    got = C.call(sub, "feature_map_shapes", model, (2, 16, 12), what="feature_map_shapes(model, (2, 16, 12))")
    expect(isinstance(got, list), f"feature_map_shapes returned {type(got).__name__}, not a list")
    flags_after = C.training_flags(model.describe())
    expect(flags_after == flags_before, "feature_map_shapes changed the model's training flag "
                                        f"(model.training was {flags_before[0]}, now {flags_after[0]}): restore it")
    state_after = C.state_snapshot(sub, model)
    changed = [i for i, (a, b) in enumerate(zip(state_before, state_after))
               if not (a.shape == b.shape and torch.equal(a, b))]
    expect(not changed and len(state_before) == len(state_after),
           "feature_map_shapes changed the model's parameters or buffers (BatchNorm's running statistics move "
           "when a batch goes through it in training mode): run the dummy batch in eval mode")
    sub.exec("__m.eval()", __m=model)
    C.call(sub, "feature_map_shapes", model, (2, 16, 12), what="feature_map_shapes(eval-mode model, (2, 16, 12))")
    expect(model.describe()["training"] is False, "feature_map_shapes put an eval-mode model into training mode")
