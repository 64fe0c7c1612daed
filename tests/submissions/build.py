"""Rewrite the demo's data (``autograder/integrations/demo_submissions/<id>.json``) from the tests' variants.

``python -m tests.submissions.build`` after changing a per-assignment test's wrong or correct variants;
``tests/submissions/test_registry.py`` fails while the data and the variants disagree.
"""

from __future__ import annotations

import json

from autograder.integrations import demo_submissions
from tests.submissions import a01_apply_kernel, a02_conv_arithmetic, a03_unfold

MODULES = {"01_apply_kernel": a01_apply_kernel, "02_conv_arithmetic": a02_conv_arithmetic, "03_unfold": a03_unfold}


def built(assignment_id: str) -> dict:
    module = MODULES[assignment_id]
    return {"WRONG": module.WRONG, "ALTERNATIVE": module.ALTERNATIVE}


def text(assignment_id: str) -> str:
    return json.dumps(built(assignment_id), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    for aid in MODULES:
        path = demo_submissions.path_of(aid)
        path.write_text(text(aid), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
