"""02_conv_arithmetic: realistic wrong implementations lose the intended points, alternatives get full marks.

Each wrong implementation runs only the checks of its own cell (``check_code(..., cells=[...])``), on
top of the reference notebook's namespace, in-process: fast enough for every CI run.  The slow tests
execute the solution and the release notebooks and grade a whole submission with the CLI.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from autograder.grading.from_source import check_code

AID = "02_conv_arithmetic"
REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / AID / f"{AID}.ipynb"
RELEASE = REPO / "assignments" / AID / f"{AID}.ipynb"
BUDGET_S = 60


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap():
    """One thread; load the reference once, then freeze the heap: pytest's gc.collect() calls in every
    check run (one per check_code call) then skip the long-lived objects, which makes each call ~3x faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every tensor here is tiny: threads only add start-up and contention
    check_code(AID, {}, cells=["test_receptive_field"], hidden=False)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    torch.set_num_threads(threads)


def run_cell(cell: str, source: str):
    results = check_code(AID, textwrap.dedent(source), cells=[cell])
    assert results, f"no checks ran for {cell}"
    broken = {n: r.message for n, r in results.items() if r.status == "error"}
    assert not broken, f"checks crashed instead of failing cleanly: {broken}"
    return results


def assert_loses(cell: str, source: str, must_fail: set[str]):
    results = run_cell(cell, source)
    failed = {n for n, r in results.items() if not r.passed}
    assert must_fail <= failed, f"expected {sorted(must_fail - failed)} to fail; failed: {sorted(failed)}"
    assert sum(r.points for r in results.values()) < sum(r.max_points for r in results.values())
    for name in must_fail:
        assert results[name].message.strip(), f"{name} failed without a message"
    return results


def assert_full_marks(cell: str, source: str):
    results = run_cell(cell, source)
    lost = {n: r.message for n, r in results.items() if not r.passed}
    assert not lost, lost


# -- conv_out_size ---------------------------------------------------------------------------------

VALIDATE = """
    if kernel_size < 1 or stride < 1 or padding < 0 or dilation < 1:
        raise ValueError("bad argument")
"""


def _out_size(body: str, signature: str = "n, kernel_size, stride=1, padding=0, dilation=1", validate=True) -> str:
    return (f"import math\n\ndef conv_out_size({signature}):\n" + (VALIDATE if validate else "")
            + textwrap.indent(textwrap.dedent(body), "    "))


OUT_SIZE_WRONG = {
    "forgotten_plus_one": (_out_size("""
        out = (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride
        if out < 1:
            raise ValueError("too small")
        return out
    """), {"test_conv_out_size_no_padding_matches_conv2d", "test_conv_out_size_padding_and_stride_match_conv2d",
           "test_conv_out_size_dilation_matches_conv2d", "test_conv_out_size_matches_reference_wide_range"}),
    "ceil_instead_of_floor": (_out_size("""
        out = math.ceil((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """), {"test_conv_out_size_padding_and_stride_match_conv2d", "test_conv_out_size_matches_reference_wide_range"}),
    "dilation_ignored": (_out_size("""
        out = (n + 2 * padding - kernel_size) // stride + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """), {"test_conv_out_size_dilation_matches_conv2d", "test_conv_out_size_matches_reference_wide_range"}),
    "padding_counted_once": (_out_size("""
        out = (n + padding - dilation * (kernel_size - 1) - 1) // stride + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """), {"test_conv_out_size_padding_and_stride_match_conv2d", "test_conv_out_size_matches_reference_wide_range"}),
    "int_truncates_towards_zero": (_out_size("""
        out = int((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """), {"test_conv_out_size_rejects_kernel_larger_than_padded_input",
           "test_conv_out_size_matches_reference_wide_range"}),
    "no_argument_validation": (_out_size("""
        out = (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """, validate=False), {"test_conv_out_size_rejects_invalid_arguments"}),
    "never_raises": (_out_size("""
        return max(0, (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1)
    """), {"test_conv_out_size_rejects_kernel_larger_than_padded_input",
           "test_conv_out_size_matches_reference_wide_range"}),
    "returns_float": (_out_size("""
        out = (n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride // 1 + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """), {"test_conv_out_size_returns_int"}),
    "stride_and_padding_swapped_in_signature": (_out_size("""
        out = (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
        if out < 1:
            raise ValueError("too small")
        return out
    """, signature="n, kernel_size, padding=0, stride=1, dilation=1"), {"test_conv_out_size_positional_arguments"}),
}


@pytest.mark.parametrize("name", sorted(OUT_SIZE_WRONG))
def test_conv_out_size_wrong_implementations_lose_points(name):
    source, must_fail = OUT_SIZE_WRONG[name]
    results = assert_loses("test_conv_out_size", source, must_fail)
    if name == "returns_float":  # one behaviour per check: only the type check is lost
        assert {n for n, r in results.items() if not r.passed} == must_fail


def test_conv_out_size_failure_message_names_the_smallest_case():
    source, _ = OUT_SIZE_WRONG["forgotten_plus_one"]
    results = run_cell("test_conv_out_size", source)
    message = results["test_conv_out_size_no_padding_matches_conv2d"].message
    assert "conv_out_size(" in message and "expected" in message and "nn.Conv2d" in message


def test_conv_out_size_counting_windows_gets_full_marks():
    assert_full_marks("test_conv_out_size", """
        def conv_out_size(n, kernel_size, stride=1, padding=0, dilation=1):
            if min(kernel_size, stride, dilation) < 1 or padding < 0:
                raise ValueError("invalid convolution arguments")
            span, length = dilation * (kernel_size - 1) + 1, n + 2 * padding
            count, start = 0, 0
            while start + span <= length:
                count += 1
                start += stride
            if count == 0:
                raise ValueError("the kernel does not fit in the padded input")
            return count
    """)


# -- same_padding ----------------------------------------------------------------------------------

SAME_WRONG = {
    "dilation_ignored": ("""
        def same_padding(kernel_size, dilation=1):
            if kernel_size % 2 == 0:
                raise ValueError("even kernel")
            return (kernel_size - 1) // 2
    """, {"test_same_padding_keeps_size_with_dilation", "test_same_padding_matches_reference"}),
    "half_kernel_times_dilation": ("""
        def same_padding(kernel_size, dilation=1):
            if (dilation * (kernel_size - 1)) % 2:
                raise ValueError("even effective kernel")
            return dilation * (kernel_size // 2)
    """, {"test_same_padding_keeps_size_with_dilation", "test_same_padding_matches_reference"}),
    "checks_k_instead_of_effective_kernel": ("""
        def same_padding(kernel_size, dilation=1):
            if kernel_size % 2 == 0:
                raise ValueError("even kernel")
            return dilation * (kernel_size - 1) // 2
    """, {"test_same_padding_keeps_size_with_dilation", "test_same_padding_matches_reference"}),
    "never_raises": ("""
        def same_padding(kernel_size, dilation=1):
            return dilation * (kernel_size - 1) // 2
    """, {"test_same_padding_rejects_even_effective_kernel"}),
    "returns_float": ("""
        def same_padding(kernel_size, dilation=1):
            if (dilation * (kernel_size - 1)) % 2:
                raise ValueError("even effective kernel")
            return dilation * (kernel_size - 1) / 2
    """, {"test_same_padding_returns_int"}),
    "returns_half_pixels": ("""
        def same_padding(kernel_size, dilation=1):
            return dilation * (kernel_size - 1) / 2
    """, {"test_same_padding_rejects_even_effective_kernel", "test_same_padding_returns_int"}),
}


@pytest.mark.parametrize("name", sorted(SAME_WRONG))
def test_same_padding_wrong_implementations_lose_points(name):
    source, must_fail = SAME_WRONG[name]
    results = assert_loses("test_same_padding", source, must_fail)
    if name == "returns_float":  # a float with the right value loses the type check only
        assert {n for n, r in results.items() if not r.passed} == must_fail


def test_same_padding_by_search_gets_full_marks():
    assert_full_marks("test_same_padding", """
        def same_padding(kernel_size, dilation=1):
            n = 50
            for p in range(dilation * kernel_size + 1):
                if n + 2 * p - dilation * (kernel_size - 1) == n:
                    return p
            raise ValueError("no symmetric padding keeps the size of an even effective kernel")
    """)


# -- conv_params -----------------------------------------------------------------------------------

def _params(expr: str, check_groups: bool = True) -> str:
    check = ("    if in_channels % groups or out_channels % groups:\n"
             "        raise ValueError('groups must divide the channels')\n") if check_groups else ""
    return ("def conv_params(in_channels, out_channels, kernel_size, bias=True, groups=1):\n"
            "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size\n"
            + check + f"    return {expr}\n")


PARAMS_WRONG = {
    "bias_forgotten": (_params("out_channels * (in_channels // groups) * kh * kw"),
                       {"test_conv_params_square_kernel_with_bias", "test_conv_params_matches_reference"}),
    "groups_ignored": (_params("out_channels * in_channels * kh * kw + (out_channels if bias else 0)"),
                       {"test_conv_params_groups", "test_conv_params_matches_reference"}),
    "groups_divide_both_channels": (
        _params("(out_channels // groups) * (in_channels // groups) * kh * kw + (out_channels if bias else 0)"),
        {"test_conv_params_groups"}),
    "pair_treated_as_square": (_params("out_channels * (in_channels // groups) * kh * kh + (out_channels if bias else 0)"),
                               {"test_conv_params_rectangular_kernel", "test_conv_params_matches_reference"}),
    "bias_counted_per_input_channel": (
        _params("out_channels * (in_channels // groups) * kh * kw + (in_channels if bias else 0)"),
        {"test_conv_params_square_kernel_with_bias"}),
    "bias_flag_ignored": (_params("out_channels * (in_channels // groups) * kh * kw + out_channels"),
                          {"test_conv_params_without_bias"}),
    "no_groups_check": (_params("out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)",
                                check_groups=False), {"test_conv_params_rejects_groups_not_dividing_channels"}),
}


@pytest.mark.parametrize("name", sorted(PARAMS_WRONG))
def test_conv_params_wrong_implementations_lose_points(name):
    assert_loses("test_conv_params", *PARAMS_WRONG[name])


def test_conv_params_counting_a_meta_conv2d_gets_full_marks():
    assert_full_marks("test_conv_params", """
        def conv_params(in_channels, out_channels, kernel_size, bias=True, groups=1):
            layer = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups, device="meta")
            return sum(p.numel() for p in layer.parameters())
    """)


# -- conv_mults ------------------------------------------------------------------------------------

def _mults(expr: str) -> str:
    return ("def conv_mults(in_channels, out_channels, kernel_size, out_h, out_w):\n"
            "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size\n"
            f"    return {expr}\n")


MULTS_WRONG = {
    "counts_additions_too": (_mults("2 * in_channels * kh * kw * out_channels * out_h * out_w"),
                             {"test_conv_mults_hand_counts", "test_conv_mults_matches_measurement",
                              "test_conv_mults_matches_reference"}),
    "forgets_in_channels": (_mults("kh * kw * out_channels * out_h * out_w"),
                            {"test_conv_mults_hand_counts", "test_conv_mults_matches_measurement"}),
    "counts_the_bias": (_mults("(in_channels * kh * kw + 1) * out_channels * out_h * out_w"),
                        {"test_conv_mults_hand_counts", "test_conv_mults_matches_measurement"}),
    "pair_treated_as_square": (_mults("in_channels * kh * kh * out_channels * out_h * out_w"),
                               {"test_conv_mults_rectangular_kernel", "test_conv_mults_matches_reference"}),
    "forgets_output_positions": (_mults("in_channels * kh * kw * out_channels"),
                                 {"test_conv_mults_hand_counts", "test_conv_mults_matches_measurement"}),
}


@pytest.mark.parametrize("name", sorted(MULTS_WRONG))
def test_conv_mults_wrong_implementations_lose_points(name):
    assert_loses("test_conv_mults", *MULTS_WRONG[name])


def test_conv_mults_from_the_parameter_count_gets_full_marks():
    assert_full_marks("test_conv_mults", """
        def conv_mults(in_channels, out_channels, kernel_size, out_h, out_w):
            weights = nn.Conv2d(in_channels, out_channels, kernel_size, bias=False, device="meta").weight.numel()
            return weights * out_h * out_w
    """)


# -- receptive_field -------------------------------------------------------------------------------

RF_WRONG = {
    "sums_kernel_sizes": ("""
        def receptive_field(layers):
            return sum(k for k, s in layers) if layers else 1
    """, {"test_receptive_field_small_examples", "test_receptive_field_matches_gradient_measurement"}),
    "ignores_strides": ("""
        def receptive_field(layers):
            return 1 + sum(k - 1 for k, s in layers)
    """, {"test_receptive_field_small_examples", "test_receptive_field_matches_gradient_measurement",
          "test_receptive_field_matches_reference_deep_stacks"}),
    "includes_own_stride": ("""
        def receptive_field(layers):
            r, jump = 1, 1
            for k, s in layers:
                jump *= s
                r += (k - 1) * jump
            return r
    """, {"test_receptive_field_small_examples", "test_receptive_field_matches_gradient_measurement"}),
    "backward_recurrence_in_forward_order": ("""
        def receptive_field(layers):
            r = 1
            for k, s in layers:
                r = s * (r - 1) + k
            return r
    """, {"test_receptive_field_matches_gradient_measurement", "test_receptive_field_matches_reference_deep_stacks"}),
}


@pytest.mark.parametrize("name", sorted(RF_WRONG))
def test_receptive_field_wrong_implementations_lose_points(name):
    assert_loses("test_receptive_field", *RF_WRONG[name])


def test_receptive_field_backward_recurrence_gets_full_marks():
    assert_full_marks("test_receptive_field", """
        def receptive_field(layers):
            r = 1
            for k, s in reversed(layers):   # from the output unit back to the input
                r = s * (r - 1) + k
            return r
    """)


# -- feature_map_shapes ----------------------------------------------------------------------------

FMS_GOOD_BODY = """
    shapes = []
    modes = [(m, m.training) for m in model.modules()]
    handles = [c.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for c in model.children()]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return shapes
"""


def _fms(body: str) -> str:
    return "def feature_map_shapes(model, input_shape):\n" + textwrap.indent(textwrap.dedent(body), "    ")


FMS_WRONG = {
    "hooks_never_removed": (_fms("""
        shapes = []
        for c in model.children():
            c.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        model.train(was)
        return shapes
    """), {"test_feature_map_shapes_removes_its_hooks", "test_feature_map_shapes_removes_hooks_when_forward_fails"}),
    "keeps_the_batch_dimension": (_fms(FMS_GOOD_BODY.replace("o.shape[1:]", "o.shape")),
                                  {"test_feature_map_shapes_stride2_cnn",
                                   "test_feature_map_shapes_matches_layer_by_layer_run",
                                   "test_feature_map_shapes_matches_reference"}),
    "leaves_model_in_eval_mode": (_fms(FMS_GOOD_BODY.replace("            m.training = mode\n", "            pass\n")),
                                  {"test_feature_map_shapes_leaves_model_unchanged"}),
    "runs_in_training_mode": (_fms(FMS_GOOD_BODY.replace("model.eval()", "model.train()")
                                   .replace("torch.zeros(1, *input_shape)", "torch.zeros(2, *input_shape)")),
                              {"test_feature_map_shapes_leaves_model_unchanged"}),
    "training_mode_with_one_image": (_fms(FMS_GOOD_BODY.replace("model.eval()", "pass")),
                                     {"test_feature_map_shapes_leaves_model_unchanged",
                                      "test_feature_map_shapes_batchnorm_on_1x1_map"}),
    "hooks_on_every_module": (_fms(FMS_GOOD_BODY.replace("for c in model.children()", "for c in model.modules()")),
                              {"test_feature_map_shapes_stride2_cnn", "test_feature_map_shapes_matches_layer_by_layer_run",
                               "test_feature_map_shapes_matches_reference"}),
    "returns_lists": (_fms(FMS_GOOD_BODY.replace("tuple(o.shape[1:])", "list(o.shape[1:])")),
                      {"test_feature_map_shapes_returns_list_of_int_tuples"}),
    "no_finally": (_fms("""
        shapes = []
        handles = [c.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
                   for c in model.children()]
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        for h in handles:
            h.remove()
        model.train(was)
        return shapes
    """), {"test_feature_map_shapes_removes_hooks_when_forward_fails"}),
}


@pytest.mark.parametrize("name", sorted(FMS_WRONG))
def test_feature_map_shapes_wrong_implementations_lose_points(name):
    source, must_fail = FMS_WRONG[name]
    results = assert_loses("test_feature_map_shapes", source, must_fail)
    if name in ("returns_lists", "no_finally", "leaves_model_in_eval_mode"):  # one behaviour, one check
        assert {n for n, r in results.items() if not r.passed} == must_fail


def test_feature_map_shapes_good_hook_version_gets_full_marks():
    assert_full_marks("test_feature_map_shapes", _fms(FMS_GOOD_BODY))


def test_feature_map_shapes_layer_by_layer_gets_full_marks():
    assert_full_marks("test_feature_map_shapes", """
        def feature_map_shapes(model, input_shape):
            was_training = model.training
            model.eval()
            shapes = []
            try:
                with torch.no_grad():
                    x = torch.zeros(1, *input_shape)
                    for child in model.children():
                        x = child(x)
                        shapes.append(tuple(x.shape)[1:])
            finally:
                model.train(was_training)
            return shapes
    """)


# Correct answers in styles the checks were not written against (issue 18): numpy numbers, numpy arithmetic,
# torch.Size items, another way of restoring the model. Each must keep every point of its cell.
OTHER_STYLES = {
    "test_conv_out_size": """
        import numpy as np

        def conv_out_size(n, kernel_size, stride=1, padding=0, dilation=1):
            if kernel_size < 1 or stride < 1 or padding < 0 or dilation < 1:
                raise ValueError("invalid convolution arguments")
            out = np.floor((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride).astype(np.int64) + 1
            if out < 1:
                raise ValueError("the dilated kernel is larger than the padded input")
            return out                      # a numpy integer
    """,
    "test_same_padding": """
        def same_padding(kernel_size, dilation=1):
            half, odd = divmod(dilation * (kernel_size - 1), 2)
            if odd:
                raise ValueError("an even effective kernel has no centre")
            return half
    """,
    "test_conv_params": """
        import numpy as np

        def conv_params(in_channels, out_channels, kernel_size, bias=True, groups=1):
            if in_channels % groups or out_channels % groups:
                raise ValueError("groups must divide both channel counts")
            weight_shape = (out_channels, in_channels // groups, *np.broadcast_to(kernel_size, 2))
            return np.prod(weight_shape) + (out_channels if bias else 0)
    """,
    "test_conv_mults": """
        import math

        def conv_mults(in_channels, out_channels, kernel_size, out_h, out_w):
            kernel = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
            return math.prod((in_channels, *kernel)) * math.prod((out_channels, out_h, out_w))
    """,
    "test_receptive_field": """
        import numpy as np

        def receptive_field(layers):
            if not layers:
                return 1
            k, s = np.array(layers).T
            jumps = np.concatenate([[1], np.cumprod(s)[:-1]])
            return 1 + int(((k - 1) * jumps).sum())
    """,
    "test_feature_map_shapes": """
        import contextlib

        def feature_map_shapes(model, input_shape):
            outputs = {}
            state = {name: m.training for name, m in model.named_modules()}
            with contextlib.ExitStack() as stack:
                for name, child in model.named_children():
                    handle = child.register_forward_hook(
                        lambda m, i, o, name=name: outputs.__setitem__(name, o.shape[1:]))
                    stack.callback(handle.remove)
                stack.callback(lambda: [m.train(state[name]) for name, m in model.named_modules()])
                model.eval()
                with torch.inference_mode():
                    model(torch.zeros((1, *input_shape)))
            return [outputs[name] for name, _ in model.named_children()]   # torch.Size items
    """,
}


def _full_marks_in_other_style(cell: str):
    # Not a test_ function: tests/submissions/a02_conv_arithmetic.py reads the literal sources passed to
    # assert_full_marks in the test_ functions as the demo's alternatives.
    assert_full_marks(cell, OTHER_STYLES[cell])


@pytest.mark.parametrize("cell", sorted(OTHER_STYLES))
def test_correct_answers_in_other_styles_get_full_marks(cell):
    _full_marks_in_other_style(cell)


def test_stubs_get_nothing():
    stubs = {name: f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n"
             for name in ("conv_out_size", "same_padding", "conv_params", "conv_mults", "receptive_field",
                          "feature_map_shapes")}
    results = check_code(AID, stubs)
    assert sum(r.points for r in results.values()) == 0, {n: r.points for n, r in results.items() if r.points}
    assert not [n for n, r in results.items() if r.status == "error"]


# -- whole notebooks -------------------------------------------------------------------------------

def _cell_values(nb) -> dict[str, tuple[float, float | None]]:
    out = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            values = [o["data"]["text/plain"] for o in cell.get("outputs", [])
                      if o.get("output_type") == "execute_result" and "text/plain" in o.get("data", {})]
            out[meta["grade_id"]] = (float(meta["points"]), float(values[-1]) if values else None)
    return out


@pytest.mark.slow
def test_solution_notebook_passes_its_public_checks_within_budget():
    from tests.conftest import failed_closed, run_solution_notebook

    nb, seconds = run_solution_notebook(SOLUTION)
    # Every public check passes and no other cell fails; the hidden blocks fail closed in a kernel (full marks
    # for the reference come from the engine: the end-to-end tests here and tests/nbgrader/test_agreement.py).
    assert len(failed_closed(nb)) == 6
    assert seconds < BUDGET_S, f"the solution notebook took {seconds:.0f} s (budget {BUDGET_S} s)"


def _reference_answers() -> dict[str, str]:
    from autograder.authoring.notebook_builder import solution_sources

    answers = {}
    for gid, source in solution_sources(nbformat.read(SOLUTION, as_version=4)).items():
        lines = [line for line in source.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line]
        answers[gid] = "\n".join(lines)
    return answers


@pytest.mark.slow
def test_graded_end_to_end_with_the_cli(tmp_path):
    from autograder.authoring.notebook_builder import fill_answers

    answers = _reference_answers()
    answers["conv_mults"] = _mults("2 * in_channels * kh * kw * out_channels * out_h * out_w")  # counts additions
    answers["receptive_field"] = "def receptive_field(layers):\n    raise NotImplementedError()\n"
    submission = tmp_path / f"{AID}.ipynb"
    nbformat.write(fill_answers(nbformat.read(RELEASE, as_version=4), answers), submission)
    results_path = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(results_path.read_text())
    tests = {t["name"]: t for t in results["tests"]}
    assert results["max_score"] == 32  # autograded points; the written questions are graded by hand
    assert results["score"] == 32 - 4 - 4  # counting additions loses all of conv_mults, the stub all of receptive_field
    by_check = {name.split(": ")[-1]: t for name, t in tests.items()}
    assert by_check["test_conv_mults_hand_counts"]["score"] == 0
    assert by_check["test_conv_mults_rectangular_kernel"]["score"] == 0
    assert by_check["test_receptive_field_small_examples"]["score"] == 0
    assert "NotImplementedError" in by_check["test_receptive_field_small_examples"]["output"]
    assert by_check["test_feature_map_shapes_removes_its_hooks"]["score"] == 1
    for name, t in by_check.items():
        assert t["visibility"] == ("after_published" if name in HIDDEN else "visible"), name
        assert {"name", "score", "max_score", "status", "visibility"} <= set(t)


HIDDEN = {
    "test_conv_out_size_matches_reference_wide_range", "test_conv_out_size_positional_arguments",
    "test_same_padding_matches_reference", "test_conv_params_matches_reference", "test_conv_mults_matches_reference",
    "test_receptive_field_matches_reference_deep_stacks", "test_feature_map_shapes_matches_reference",
    "test_feature_map_shapes_batchnorm_on_1x1_map",
}
