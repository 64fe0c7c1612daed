"""The demo class's wrong and alternative answers (``make demo``), as data the package owns.

``<assignment id>.json`` holds two dicts of whole answer cells, each with the imports it uses:

- ``WRONG``: ``"<grade id>/<mistake>"`` -> ``{grade id of the answer cell: the cell's source}``, the
  functions taking turns (the demo gives each partly correct student every 3rd / 4th entry, so that
  each gets mistakes in several cells);
- ``ALTERNATIVE``: ``"<grade id>/<approach>"`` -> ``{grade id: source}``, other correct answers.

The files are generated from the wrong and correct variants of the repository's per-assignment tests
(``python -m tests.submissions.build`` rewrites them); the repository's tests grade these very files
(every wrong answer loses points, every alternative gets full marks) and fail when they drift from the
variants. An assignment without a file gets no wrong answers in the demo (its students submit the reference).
"""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def path_of(assignment_id: str) -> Path:
    return FOLDER / f"{assignment_id}.json"


def load(assignment_id: str) -> dict[str, dict[str, dict[str, str]]]:
    """``{"WRONG": {...}, "ALTERNATIVE": {...}}`` for ``assignment_id`` (both empty when it has none)."""
    path = path_of(assignment_id)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {"WRONG": data.get("WRONG", {}), "ALTERNATIVE": data.get("ALTERNATIVE", {})}
