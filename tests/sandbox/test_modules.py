"""The sandbox's pieces on their own: pure functions and the probe cache, no root and no worker needed."""

from __future__ import annotations

import os
from pathlib import Path

from autograder.sandbox import bwrap, probe, zygote


def test_system_args_recreate_links_and_bind_only_what_exists(tmp_path):
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "etc" / "shadow").write_text("secret\n")
    args = bwrap.system_args(tmp_path)
    pairs = list(zip(args, args[1:], args[2:]))
    assert ("--symlink", "usr/bin", "/bin") in pairs
    assert ("--ro-bind", str(tmp_path / "usr"), "/usr") in pairs
    assert ("--ro-bind", str(tmp_path / "etc" / "passwd"), "/etc/passwd") in pairs
    assert not any("shadow" in a for a in args)
    assert "/lib64" not in args  # not on that machine: nothing to bind


def test_a_hidden_file_is_covered_and_the_scratch_folder_is_the_only_writable_bind(tmp_path):
    shown = tmp_path / "pkg"
    shown.mkdir()
    (shown / "answers.py").write_text("x = 1\n")
    scratch = tmp_path / "scratch"
    args = bwrap.bwrap_args("bwrap", readonly=[shown], hidden=[shown / "answers.py"], scratch=scratch, system=[])
    pairs = list(zip(args, args[1:], args[2:]))
    assert ("--ro-bind", "/dev/null", str(shown / "answers.py")) in pairs
    assert [a for a, b in zip(args, args[1:]) if a == "--bind"] == ["--bind"]
    assert ("--bind", str(scratch), str(scratch)) in pairs and args[args.index("--chdir") + 1] == str(scratch)
    assert {"--unshare-all", "--die-with-parent", "--new-session"} <= set(args)


def test_the_probe_is_cached_and_a_caller_cannot_rewrite_it(monkeypatch):
    calls = []

    def fake(readable):
        calls.append(readable)
        return {"root": False, "bwrap": True, "user": None, "problems": [], "cgroup": None, "bwrap_error": ""}

    monkeypatch.setattr(probe, "_PROBED", {})
    monkeypatch.setattr(probe, "_probe", fake)
    first = probe.machine_protections((Path("/b"), Path("/a")))
    first["bwrap"] = False
    first["problems"].append("a worker failed to start")
    again = probe.machine_protections(("/a", "/b"))
    assert calls == [("/a", "/b")]  # probed once per set of data folders, in any order
    assert again["bwrap"] is True and again["problems"] == []
    assert probe.strong_isolation(("/a", "/b")) == (True, "")


def test_a_replacement_lacking_a_layer_is_named():
    full = probe.layers_of({"dedicated_user": "cnn-sandbox", "bubblewrap": True, "memory_cap_mb": 512,
                            "process_cap": 64})
    assert all(full.values())
    weak = probe.layers_of({"dedicated_user": None, "bubblewrap": True, "memory_cap_mb": None, "process_cap": 64})
    assert probe.weaker_than(weak, full) == ["dedicated_user", "memory_cap"]
    assert probe.weaker_than(full, weak) == []


class _FakeZygote(zygote.Zygote):
    def __init__(self, name):  # no process: only the registry's bookkeeping is tested
        self.name, self.owner, self.running, self.stopped = name, os.getpid(), True, False

    def alive(self):
        return self.running

    def ready(self):
        pass

    def stop(self):
        self.stopped, self.running = True, False


def test_zygotes_are_few_restarted_once_and_a_failed_start_is_not_retried(monkeypatch):
    monkeypatch.setattr(zygote, "_ZYGOTES", {})
    monkeypatch.setattr(zygote, "_STARTS", {})
    a, _ = zygote.zygote_for("a", lambda: _FakeZygote("a"))
    b, _ = zygote.zygote_for("b", lambda: _FakeZygote("b"))
    assert zygote.zygote_for("a", lambda: None)[0] is a      # a used last: b is the oldest now
    c, _ = zygote.zygote_for("c", lambda: _FakeZygote("c"))
    assert b.stopped and not a.stopped and c.name == "c"
    a.running = False                                         # a worker killed it: started once more
    again, _ = zygote.zygote_for("a", lambda: _FakeZygote("a2"))
    assert again.name == "a2"
    again.running = False
    assert zygote.zygote_for("a", lambda: _FakeZygote("a3")) == (None, "the zygote died")

    def broken():
        raise OSError("bwrap: Unknown option --no-such-option")

    assert zygote.zygote_for("d", broken)[0] is None
    assert zygote.zygote_for("d", lambda: _FakeZygote("d"))[0] is None  # cold from then on, said why
    assert "no-such-option" in zygote.zygote_for("d", lambda: None)[1]
