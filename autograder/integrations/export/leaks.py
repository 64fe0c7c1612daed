"""What must never leave the instructor's repository, and a scan of a folder for it.

The secrets are read from the course itself, never listed by hand:

- every line of the solution notebooks between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
  (code and the written answers' model answers) and between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``;
- every line of every ``hidden.py``;

less the lines that students see anyway: anything in a release notebook (05's setup cell holds
04's answers, which is why 05 ships after 04's deadline), the public checks and their helpers,
and lines too short to tell anything (``return out``).  :func:`scan` then reports every file of
a folder holding a secret line, and every file or folder that must not be there at all
(solutions, hidden checks, cached reference results, a gradebook, the instructor's nbgrader
configuration).  ``python -m autograder export student`` runs it on what it built and refuses
to finish when it finds anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

#: A line with fewer meaningful tokens than this says nothing about a solution.
MIN_TOKENS = 4
#: A secret line at least this long is found anywhere inside a line, not only as a whole line.
LONG = 40
MARKERS = (("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
#: Names that must not appear anywhere in a student export.
FORBIDDEN_NAMES = {"hidden.py", "solutions", ".autograder_cache", "gradebook.db", "nbgrader_config.py",
                   "submitted", "autograded", "feedback", "source", "release"}
#: Text that only the instructor's files contain.
FORBIDDEN_TEXT = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_GROUPING = set("()[]{},:;.'\"")


def normalize(line: str) -> str:
    return " ".join(line.split())


def meaningful(line: str) -> bool:
    tokens = [t for t in _TOKEN.findall(line) if t not in _GROUPING]
    return len(tokens) >= MIN_TOKENS


def _cell_sources(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of every cell of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        out.append((cell.get("cell_type", ""), "".join(src) if isinstance(src, list) else src))
    return out


def _between_markers(source: str) -> list[str]:
    lines, inside = [], None
    for line in source.splitlines():
        stripped = line.strip()
        if inside is None:
            for begin, end in MARKERS:
                if stripped.startswith(begin):
                    inside = end
                    break
        elif stripped.startswith(inside):
            inside = None
        else:
            lines.append(line)
    return lines


@dataclass(frozen=True)
class Leak:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def public_lines(root: Path) -> set[str]:
    """Every normalized line students may see: the releases, the public checks and their helpers."""
    seen: set[str] = set()
    for nb in sorted((root / "assignments").glob("*/*.ipynb")):
        for _, source in _cell_sources(nb):
            seen.update(normalize(line) for line in source.splitlines())
    for path in sorted((root / "autograder" / "checks").glob("*/*.py")):
        if path.name != "hidden.py":
            seen.update(normalize(line) for line in path.read_text(encoding="utf-8").splitlines())
    return seen


def secret_lines(root: Path) -> dict[str, str]:
    """normalized secret line -> where it comes from (a solution notebook or a hidden.py).

    A line that students see anyway, even as part of a longer line, is no secret.
    """
    public = public_lines(root)
    corpus = "\n".join(sorted(public))
    secrets: dict[str, str] = {}

    def add(line: str, origin: str) -> None:
        norm = normalize(line)
        if norm and norm not in public and meaningful(norm) and norm not in corpus:
            secrets.setdefault(norm, origin)

    for nb in sorted((root / "solutions").glob("*/*.ipynb")):
        origin = str(nb.relative_to(root))
        for _, source in _cell_sources(nb):
            for line in _between_markers(source):
                add(line, origin)
    for path in sorted((root / "autograder" / "checks").glob("*/hidden.py")):
        origin = str(path.relative_to(root))
        for line in path.read_text(encoding="utf-8").splitlines():
            add(line, origin)
    return secrets


def _texts(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return [path.read_bytes().decode("utf-8", "replace")]
        texts = []
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            texts.append("".join(src) if isinstance(src, list) else src)
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain", "")
                texts.append("".join(text) if isinstance(text, list) else str(text))
        return texts
    return [path.read_bytes().decode("utf-8", "replace")]


def scan(folder: Path, secrets: dict[str, str]) -> list[Leak]:
    """Every leak in ``folder``: forbidden files or folders, instructor-only markers, secret lines."""
    folder = Path(folder)
    leaks: list[Leak] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in FORBIDDEN_NAMES for part in rel.parts):
            if path.name in FORBIDDEN_NAMES:
                leaks.append(Leak(str(rel), "must not be in a student repository"))
            continue
        if path.name.startswith("hidden") and path.suffix == ".py":
            leaks.append(Leak(str(rel), "looks like hidden checks"))
        if not path.is_file() or path.is_symlink():
            continue
        for text in _texts(path):
            for marker in FORBIDDEN_TEXT:
                if marker in text:
                    leaks.append(Leak(str(rel), f"contains {marker!r}"))
            lines = [normalize(line) for line in text.splitlines()]
            seen = set(lines) | {_unquoted(line) for line in lines}
            flat = "\n".join(lines)
            for secret, origin in secrets.items():
                # A whole line (also as a comment or a string), or a long one anywhere (whitespace runs: one space).
                if secret in seen or (len(secret) >= LONG and secret in flat):
                    leaks.append(Leak(str(rel), f"contains a line of {origin}: {secret[:120]!r}"))
    return leaks


def _unquoted(line: str) -> str:
    """A line without what would make it a comment or a string: ``# x``, ``"x",``, ``'x'``."""
    return line.lstrip("#/*-'\" ").rstrip(",;'\" ")
