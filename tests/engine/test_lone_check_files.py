"""Check files outside a package (a private checks folder without ``__init__.py``) are never shared.

pytest names such a file after its stem (``public``, ``hidden``), so two courses graded in one
process would reuse the first one's module: the second course's checks would silently be the
first's.  ``forget_other_checks`` drops the stale module before each run.
"""

import importlib.util
import sys

from autograder.course import forget_other_checks


def _import_as(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def test_a_same_named_lone_check_file_from_another_folder_is_forgotten(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "public", raising=False)
    first, second = tmp_path / "a" / "public.py", tmp_path / "b" / "public.py"
    for path, value in ((first, 1), (second, 2)):
        path.parent.mkdir()
        path.write_text(f"WHICH = {value}\n")
    _import_as("public", first)
    forget_other_checks([first])
    assert sys.modules["public"].WHICH == 1  # the same file: kept
    forget_other_checks([second])
    assert "public" not in sys.modules  # another folder's file of that name: dropped
