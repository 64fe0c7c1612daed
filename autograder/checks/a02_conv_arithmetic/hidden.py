"""Hidden checks of 02_conv_arithmetic: wider ranges, compared with the reference solution.

Messages name the call and what came back, never the reference's answer.
"""


from hypothesis import example, given
from hypothesis import strategies as st

from autograder.authoring.api import (
    CheckFailure,
    StudentError,
    check,
    describe_value,
    expect_raises,
    fmt_call,
)

from . import common as C


def _expect_same(got, expected, what: str) -> None:
    """Same value as the reference, without revealing it: numbers of any number-like type (the Python int
    has its own public check), shapes as tuples or lists of number-likes."""
    if isinstance(expected, list):
        ok = isinstance(got, list | tuple) and len(got) == len(expected) and all(
            isinstance(g, list | tuple) and len(g) == len(e) and all(C.as_number(v) == x for v, x in zip(g, e))
            for g, e in zip(got, expected))
    else:
        ok = C.as_number(got) == expected
    if not ok:
        raise CheckFailure(f"{what} returned {describe_value(got)}, which is not the right answer")


def _ref_or_error(fn):
    """(True, value) or (False, error type name) for a reference call."""
    try:
        return True, fn()
    except StudentError as err:
        return False, err.type_name


# -- conv_out_size ---------------------------------------------------------------------------------

@check(cell="test_conv_out_size", points=1, kind="shape",
       hint="Redo the failing case above with the formula of section 1 (real layers: AlexNet, ResNet); no output "
            "at all means a ValueError.")
def test_conv_out_size_matches_reference_wide_range(sub, ref):
    @C.prop(50)
    @given(st.integers(1, 1000), st.integers(1, 11), st.integers(1, 6), st.integers(0, 6), st.integers(1, 5))
    @example(224, 11, 4, 2, 1)   # AlexNet's first layer
    @example(224, 7, 2, 3, 1)    # ResNet's stem
    @example(2, 7, 5, 2, 1)      # kernel one pixel larger than the padded input, stride 5
    @example(1, 1, 1, 0, 1)
    def prop(n, k, s, p, d):
        what = fmt_call("conv_out_size", n, k, stride=s, padding=p, dilation=d)
        ok, expected = _ref_or_error(lambda: ref.conv_out_size(n, k, stride=s, padding=p, dilation=d))
        if ok:
            _expect_same(C.call(sub, "conv_out_size", n, k, stride=s, padding=p, dilation=d), expected, what)
        else:
            expect_raises(lambda: sub.conv_out_size(n, k, stride=s, padding=p, dilation=d), "ValueError", what=what)

    prop()


@check(cell="test_conv_out_size", points=0.5, kind="shape",
       hint="Keep the parameter order of the signature: (n, kernel_size, stride, padding, dilation).")
def test_conv_out_size_positional_arguments(sub, ref):
    for args in ((28, 3, 2, 1, 1), (30, 5, 3, 2, 2), (17, 4, 1, 0, 3), (64, 3, 2, 0, 1)):
        _expect_same(C.call(sub, "conv_out_size", *args), ref.conv_out_size(*args), fmt_call("conv_out_size", *args))


# -- same_padding ----------------------------------------------------------------------------------

@check(cell="test_same_padding", points=0.5, kind="shape",
       hint="Every odd effective kernel has a padding that keeps the size, whatever k and the dilation (section 2); "
            "the dilation may also be passed by position.")
def test_same_padding_matches_reference(sub, ref):
    @C.prop(40)
    @given(st.integers(1, 15), st.integers(1, 6))
    @example(2, 2)
    @example(1, 4)
    def prop(k, d):
        if (d * (k - 1)) % 2:
            return
        _expect_same(C.call(sub, "same_padding", k, d), ref.same_padding(k, d), fmt_call("same_padding", k, d))
        _expect_same(C.call(sub, "same_padding", k, dilation=d), ref.same_padding(k, dilation=d),
                     fmt_call("same_padding", k, dilation=d))

    prop()


# -- conv_params -----------------------------------------------------------------------------------

@check(cell="test_conv_params", points=1, kind="numerical",
       hint="Weights per filter times the number of filters, plus the biases when bias=True; with groups, each "
            "filter sees only its group's input channels. The failing case above is a real layer size.")
def test_conv_params_matches_reference(sub, ref):
    kernel = st.one_of(st.integers(1, 11), st.tuples(st.integers(1, 11), st.integers(1, 11)))

    @C.prop(50)
    @given(st.sampled_from([1, 2, 4, 8, 16, 32]), st.integers(1, 64), st.integers(1, 64), kernel, st.booleans())
    @example(1, 512, 512, 3, True)
    @example(64, 1, 1, (3, 3), False)
    def prop(g, in_per_group, out_per_group, kernel_size, bias):
        args = (g * in_per_group, g * out_per_group, kernel_size)
        _expect_same(C.call(sub, "conv_params", *args, bias=bias, groups=g), ref.conv_params(*args, bias=bias, groups=g),
                     fmt_call("conv_params", *args, bias=bias, groups=g))

    prop()


# -- conv_mults ------------------------------------------------------------------------------------

@check(cell="test_conv_mults", points=1, kind="numerical",
       hint="One multiplication per weight per output position, for wide layers and rectangular kernels too.")
def test_conv_mults_matches_reference(sub, ref):
    kernel = st.one_of(st.integers(1, 11), st.tuples(st.integers(1, 11), st.integers(1, 11)))

    @C.prop(50)
    @given(st.integers(1, 1024), st.integers(1, 1024), kernel, st.integers(1, 256), st.integers(1, 256))
    @example(512, 512, 3, 14, 14)
    @example(64, 128, (1, 7), 28, 17)
    def prop(cin, cout, kernel_size, oh, ow):
        args = (cin, cout, kernel_size, oh, ow)
        _expect_same(C.call(sub, "conv_mults", *args), ref.conv_mults(*args), fmt_call("conv_mults", *args))

    prop()


# -- receptive_field -------------------------------------------------------------------------------

@check(cell="test_receptive_field", points=1, kind="numerical",
       hint="In a deep stack the jump is the product of all the earlier strides, large ones included (section 4).")
def test_receptive_field_matches_reference_deep_stacks(sub, ref):
    layer = st.tuples(st.integers(1, 11), st.integers(1, 4))

    @C.prop(40)
    @given(st.lists(layer, min_size=0, max_size=12))
    @example([(7, 2), (3, 2), (3, 1), (3, 1), (3, 2), (3, 1), (3, 2), (3, 1), (3, 2), (3, 1)])  # ResNet-ish
    @example([(1, 4), (3, 1)])
    def prop(layers):
        _expect_same(C.call(sub, "receptive_field", layers), ref.receptive_field(layers), fmt_call("receptive_field", layers))

    prop()


# -- feature_map_shapes ----------------------------------------------------------------------------

@check(cell="test_feature_map_shapes", points=1, kind="shape",
       hint="One shape per top-level child, without the batch dimension, in the order the children run.")
def test_feature_map_shapes_matches_reference(sub, ref):
    for name, shapes in (("stride2_cnn", [(1, 32, 20), (1, 9, 13)]), ("mixed", [(3, 24, 18), (3, 33, 47)]),
                         ("bn_train", [(2, 5, 9)])):
        mine, theirs = C.build_in(sub, name), C.build_in(ref, name)
        for shape in shapes:
            what = f"feature_map_shapes({name} model, {shape})"
            _expect_same(C.call(sub, "feature_map_shapes", mine, shape, what=what),
                         ref.feature_map_shapes(theirs, shape), what)


@check(cell="test_feature_map_shapes", points=1, kind="behaviour",
       hint="In training mode BatchNorm needs more than one value per channel; in eval mode it uses its running "
            "statistics and works with one image, even on a 1x1 map (section 5, point 2).")
def test_feature_map_shapes_batchnorm_on_1x1_map(sub, ref):
    mine, theirs = C.build_in(sub, "bn_1x1"), C.build_in(ref, "bn_1x1")
    what = "feature_map_shapes(model, (1, 4, 4)) (BatchNorm2d meets a 1x1 map; the model is in training mode)"
    _expect_same(C.call(sub, "feature_map_shapes", mine, (1, 4, 4), what=what), ref.feature_map_shapes(theirs, (1, 4, 4)), what)
