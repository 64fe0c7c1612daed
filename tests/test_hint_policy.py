"""The hint policy of docs/AUTHORING.md ("Hints and messages"), for all six assignments.

1. No hint while an exercise is a stub: the self-check of an untouched release attaches no hint to
   any failure (every failure there is "not implemented yet"). The runner leaves the hint out when
   ``autograder.authoring.hints.is_stub_failure`` says so; checked in-process on the releases' stubs of 01-03
   (fast) and on every untouched release graded in the sandbox (slow).
2. No hint and no message gives away the code of a solution: every hint and every string a check
   can print (public and hidden checks, their helpers), and every message printed for the wrong
   submissions of ``tests/submissions/``, shares no run of code tokens with the code of the solution
   cells (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) of any assignment. The check
   files are read statically (fast); the wrong submissions are graded (slow).

How "a shared run of code tokens" is measured
---------------------------------------------
The solution code is split with Python's ``tokenize`` (names, numbers and operators; comments,
line breaks and indentation dropped; a string literal ends a run, since its text is the code's
own error message, not code). A hint or message is split the same way with a regular expression
that yields the tokens ``tokenize`` would give for a code fragment inside prose (anything else, a
quote or a backtick, ends a run). A *run* is a sequence of consecutive tokens found in both. Its
weight counts its meaningful tokens only:

* grouping punctuation ``( ) [ ] { } , . : ;`` weighs nothing: ``(N, C, H, W)`` is a shape, not code;
* the names of the solution cell's contract weigh nothing: the function's name and its parameters
  (``img``, ``kernel``, ``padding``, ...), which every message names when it says what was called;
* everything else weighs 1: other names (``unfold``, ``reshape``, ``cols``, locals), numbers and
  operators (``=``, ``@``, ``//``, ``+``, ``-``).

A run of weight ``MAX_WEIGHT + 1`` or more fails the test. ``MAX_WEIGHT = 5``: the leaks this
policy was written against weigh 6 to 12 (``cols = F.unfold(x, (kh, kw))`` weighs 6 against
03's solution, ``(h + 2 * padding - kh) // stride + 1`` weighs 8), while what a good message must
be free to say weighs less: a call as the student wrote it and an API's name
(``F.conv2d(x, weight, bias, stride=stride, padding=padding)``: ``F``, ``conv2d``, two ``=``),
``raise ValueError``, ``torch.no_grad()``, ``model.eval()``, a shape. Names of the docstring are not
exempt: docstrings mention exactly the APIs (``F.unfold``) and locals (``kh``, ``kw``) that make a
line of code a solution.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from autograder.notebooks import grade_id

REPO = Path(__file__).resolve().parents[1]
AIDS = ("01_apply_kernel", "02_conv_arithmetic", "03_unfold", "04_cnn", "05_activation_stats",
        "06_transfer_learning")
MAX_WEIGHT = 5
PUNCTUATION = frozenset("()[]{},.:;")
BREAK = "\0"  # never equal to a code token

# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class SolutionCode:
    label: str                 # "03_unfold/conv2d_unfold"
    tokens: tuple[str, ...]
    contract: frozenset[str]   # names that weigh nothing: the function and its parameters

    def weight(self, token: str) -> int:
        return 0 if token in PUNCTUATION or token in self.contract else 1


def code_tokens(source: str) -> list[str]:
    """The code's tokens as ``tokenize`` gives them; a string literal becomes a break."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NAME, tokenize.NUMBER, tokenize.OP):
            out.append(tok.string)
        elif tok.type == tokenize.STRING or (hasattr(tokenize, "FSTRING_START") and tok.type == tokenize.FSTRING_START):
            out.append(BREAK)
    return out


_NUMBER = r"(?:\d[\d_]*\.?[\d_]*(?:[eE][+-]?\d+)?|\.\d[\d_]*(?:[eE][+-]?\d+)?)j?"
_OPERATORS = sorted(["**=", "//=", ">>=", "<<=", "...", "->", ":=", "**", "//", "<<", ">>", "<=", ">=", "==", "!=",
                     "+=", "-=", "*=", "/=", "%=", "@=", "&=", "|=", "^=", *"+-*/%@&|^~<>()[]{},:;.=!"],
                    key=len, reverse=True)
_TEXT_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z_0-9]*)|(" + _NUMBER + r")|("
                         + "|".join(re.escape(op) for op in _OPERATORS) + r")|(\S))")


def text_tokens(text: str) -> list[str]:
    """The code tokens of a hint or message (prose included); other characters become breaks."""
    out = []
    for m in _TEXT_TOKEN.finditer(text):
        name, number, op, other = m.groups()
        out.append(name or number or op or BREAK)
    return out


def contract_names(cell_source: str) -> frozenset[str]:
    """The names every message may use: functions defined by the cell and their parameters."""
    try:
        tree = ast.parse(cell_source)
    except SyntaxError:
        return frozenset()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.FunctionDef):
            a = node.args
            names.update(arg.arg for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs])
            names.update(arg.arg for arg in (a.vararg, a.kwarg) if arg is not None)
    return frozenset(names)


def solution_block(source: str) -> str:
    """The lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, dedented."""
    lines, inside = [], False
    for line in source.splitlines():
        if "### BEGIN SOLUTION" in line:
            inside = True
        elif "### END SOLUTION" in line:
            inside = False
        elif inside:
            lines.append(line)
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines) + "\n"


@functools.cache
def solutions() -> tuple[SolutionCode, ...]:
    """The solution code of every assignment's answer cells."""
    course = Course()
    out = []
    for aid in AIDS:
        nb = nbformat.read(course.get(aid).solution_notebook, as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("solution") or "### BEGIN SOLUTION" not in cell.source:
                continue
            out.append(SolutionCode(f"{aid}/{grade_id(cell)}", tuple(code_tokens(solution_block(cell.source))),
                                    contract_names(cell.source)))
    return tuple(out)


def shared_runs(text: str, codes=None) -> list[str]:
    """Every run of tokens of ``text`` found in a solution's code that weighs more than MAX_WEIGHT."""
    words = text_tokens(text)
    found = []
    for code in codes or solutions():
        positions: dict[str, list[int]] = {}
        for j, tok in enumerate(code.tokens):
            positions.setdefault(tok, []).append(j)
        for i, tok in enumerate(words):
            for j in positions.get(tok, ()):
                if i and j and words[i - 1] == code.tokens[j - 1]:
                    continue  # not the start of a run
                length, weight = 0, 0
                while (i + length < len(words) and j + length < len(code.tokens)
                       and words[i + length] == code.tokens[j + length] != BREAK):
                    weight += code.weight(words[i + length])
                    length += 1
                if weight > MAX_WEIGHT:
                    found.append(f"{code.label}: {' '.join(words[i:i + length])!r} (weight {weight})")
    return sorted(set(found))


# ---------------------------------------------------------------------------------------------
# What the checks can print


@dataclass(frozen=True)
class Text:
    where: str   # file:line
    kind: str    # "hint" or "message"
    text: str


def _string_of(node: ast.AST) -> str | None:
    """A string constant, or an f-string with BREAK where each value goes."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else BREAK for v in node.values)
    return None


def _is_code(text: str) -> bool:
    """Grader code run next to the notebook (a model's source, a counter): never shown to a student."""
    if "\n" not in text.strip():
        return False
    try:
        compile(text, "<check source>", "exec")
    except SyntaxError:
        return False
    return True


def check_texts(path: Path) -> list[Text]:
    """Hints (``@check(hint=...)``) and every other string of a check file, docstrings and grader code left out."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    hints: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and _string_of(body[0].value) is not None:
                skip.add(id(body[0].value))                                    # a docstring
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("exec", "eval"):
            skip.update(id(a) for a in node.args[:1])                          # grader code, run in the notebook
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check":
            hints.update(id(k.value) for k in node.keywords if k.arg == "hint")
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)                            # parts of an f-string
    out = []
    for node in ast.walk(tree):
        text = None if id(node) in skip else _string_of(node)
        if text is None or _is_code(text):
            continue
        out.append(Text(f"{path.relative_to(REPO)}:{node.lineno}", "hint" if id(node) in hints else "message", text))
    return out


def check_files(aid: str) -> list[Path]:
    folder = Course().get(aid).public_checks.parent
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("aid", AIDS)
def test_hints_and_messages_of_the_checks_share_no_solution_code(aid):
    leaks = [f"{t.where} ({t.kind}): {run}" for path in check_files(aid) for t in check_texts(path)
             for run in shared_runs(t.text)]
    assert not leaks, "hints or messages that quote solution code:\n" + "\n".join(leaks)


# ---------------------------------------------------------------------------------------------
# The detector itself


def test_the_detector_finds_the_leaks_it_was_written_for():
    unfold = [c for c in solutions() if c.label == "03_unfold/conv2d_unfold"]
    col2im = [c for c in solutions() if c.label == "03_unfold/col2im_shape"]
    assert unfold and col2im, "the solution cells moved: update this test"
    assert shared_runs("cols = F.unfold(x, (kh, kw)); out = weight.reshape(F, -1) @ cols", unfold)
    assert shared_runs("h_out = (h + 2 * padding - kh) // stride + 1 (integer division)", col2im)
    # What a message must be free to say: the call, the contract's names, an API, a shape.
    for fine in ("conv2d_unfold(x, weight, bias, padding=1, stride=2) raised ValueError: channel mismatch",
                 "Compare with F.conv2d(x, weight, bias, stride=stride, padding=padding).",
                 "expected shape (2, 3, 4, 5), got shape (2, 3, 5, 4)",
                 "Add the bias once per filter, whatever the batch size: reread the table of section 4."):
        assert not shared_runs(fine, unfold), fine


def test_prose_is_tokenised_like_code():
    assert text_tokens("out[i, j] = (img[i:i+kh] * kernel).sum()") == code_tokens(
        "out[i, j] = (img[i:i+kh] * kernel).sum()")
    assert BREAK in text_tokens("don't `x`")


# ---------------------------------------------------------------------------------------------
# Stubs: failures, no hints


def test_stub_failures_are_recognised():
    from autograder.authoring.compare import CheckFailure
    from autograder.authoring.hints import NotImplementedYet, hint_for, is_stub_failure
    from autograder.submission.namespace import StudentError

    def wrapped(error):
        try:
            try:
                raise error
            except StudentError as err:
                raise CheckFailure(f"f(x) {err.describe()}") from None
        except CheckFailure as exc:
            return exc

    stub = StudentError({"type": "NotImplementedError", "mro": ["NotImplementedError", "RuntimeError"]}, "f()")
    bug = StudentError({"type": "IndexError", "message": "index 3 is out of bounds"}, "f()")
    assert is_stub_failure(stub) and is_stub_failure(wrapped(stub)) and is_stub_failure(NotImplementedYet("x"))
    assert not is_stub_failure(bug) and not is_stub_failure(wrapped(bug)) and not is_stub_failure(CheckFailure("x"))
    assert hint_for(wrapped(stub), "a hint") == "" and hint_for(wrapped(bug), "a hint") == "a hint"


def _release_stubs(aid: str) -> dict[str, str]:
    """The release's answer cells as code for ``check_code``: stub functions as they are; a cell that raises
    at once (constants still to type in) becomes the deletion of the names its solution defines."""
    course = Course()
    release = nbformat.read(course.get(aid).release_notebook, as_version=4)
    solution = nbformat.read(course.get(aid).solution_notebook, as_version=4)
    defined = {grade_id(c): c.source for c in solution.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    out = {}
    for cell in release.cells:
        gid = grade_id(cell)
        if cell.cell_type != "code" or not cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            continue
        tree = ast.parse(cell.source)
        if any(isinstance(node, ast.Raise) for node in tree.body):
            names = sorted({t.id for node in ast.parse(defined[gid]).body if isinstance(node, ast.Assign)
                            for t in node.targets if isinstance(t, ast.Name)})
            out[gid] = "".join(f"globals().pop({n!r}, None)\n" for n in names)
        else:
            out[gid] = cell.source
    return out


# 04-06: their checks train and evaluate models; their untouched releases are covered by the (slow)
# sandboxed self-check below.
@pytest.mark.parametrize("aid", AIDS[:3])
def test_checks_of_stubs_attach_no_hint(aid):
    from autograder.grading.from_source import check_code

    results = check_code(aid, _release_stubs(aid))
    failed = [r for r in results.values() if not r.passed]
    assert failed and all(r.status == "failed" for r in failed), [(r.name, r.message) for r in failed
                                                                    if r.status != "failed"]
    assert not {r.name: r.hint for r in failed if r.hint}
    assert all("not implemented yet" in r.message for r in failed), [(r.name, r.message) for r in failed]


# ---------------------------------------------------------------------------------------------
# Untouched releases: failures, no hints


@functools.cache
def release_report(aid: str):
    from autograder.grading.grade_notebook import grade_notebook

    return grade_notebook(Course().get(aid).release_notebook, assignment_id=aid, hidden=False, threads=1)


@pytest.mark.slow
@pytest.mark.parametrize("aid", AIDS)
def test_self_check_of_the_untouched_release_prints_no_hint(aid, fashion_mnist_root, request):
    from autograder.integrations.incell import format_result

    if aid == "06_transfer_learning":   # its checks build the pretrained AlexNet: the stand-in weights
        request.getfixturevalue("standin_torch_home")
    report = release_report(aid)
    assert report.results and not report.errors, report.summary()
    failed = [r for r in report.results if not r.passed]
    assert failed, "a public check passes on the untouched release"
    with_hint = {r.name: r.hint for r in failed if r.hint}
    assert not with_hint, f"failures of stubs that carry a hint: {with_hint}"
    printed = "\n".join(format_result(r) for r in report.results)
    assert "Hint:" not in printed
    for r in failed:
        assert "not implemented yet" in r.message, (r.name, r.message)
    leaks = [run for r in failed for run in shared_runs(r.message)]
    assert not leaks, leaks


# ---------------------------------------------------------------------------------------------
# Wrong submissions: what they are told shares no solution code


def _registry(aid: str) -> dict[str, dict[str, str]]:
    path = REPO / "tests" / "submissions" / f"a{aid}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"hint_policy_submissions_{aid}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "WRONG", {}))


def _batches(wrong: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """Batch i: the i-th wrong answer of every answer cell (each check calls only its own cell's names)."""
    by_cell: dict[str, list[dict[str, str]]] = {}
    for answer in wrong.values():
        by_cell.setdefault(tuple(sorted(answer)), []).append(answer)
    size = max((len(v) for v in by_cell.values()), default=0)
    out = []
    for i in range(size):
        batch: dict[str, str] = {}
        for answers in by_cell.values():
            if i < len(answers):
                batch.update(answers[i])
        out.append(batch)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("aid", [a for a in AIDS if (REPO / "tests" / "submissions" / f"a{a}.py").exists()])
def test_messages_for_wrong_submissions_share_no_solution_code(aid):
    from autograder.grading.from_source import check_code

    wrong = _registry(aid)
    assert wrong
    leaks, failures = [], 0
    for batch in _batches(wrong):
        for name, r in check_code(aid, batch).items():
            if r.passed:
                continue
            failures += 1
            leaks += [f"{name} ({part}): {run}" for part, text in (("message", r.message), ("hint", r.hint))
                      for run in shared_runs(text)]
    assert failures
    assert not leaks, "\n".join(leaks)
