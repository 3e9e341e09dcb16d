"""No lost runs (issue 24 item 3): a recipe refuses an ``--out`` that holds a run unless ``--resume`` or
``--overwrite``, ``--resume`` with nothing to resume names the folder, and the folder is locked while a run
is in it (a stale lock from a dead process is taken over)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mi_augment.ssl.train import FolderLock, RunFolderError

from .test_recipes import run_recipe

COMMON = ["--backbone", "small_cnn", "--cnn-width", "8"]


@pytest.fixture
def finished(tmp_path):
    """A folder holding a finished run (2 steps)."""
    out = tmp_path / "run"
    assert run_recipe("simclr", out, *COMMON)["steps"] == 2
    return out


def test_a_folder_holding_a_run_is_refused_and_left_untouched(finished):
    before = (finished / "results.json").read_bytes()
    with pytest.raises(RunFolderError, match="already holds a run") as info:
        run_recipe("simclr", finished, *COMMON, "--epochs", "3")
    assert str(finished) in str(info.value) and "--overwrite" in str(info.value) and "--resume" in str(info.value)
    assert (finished / "results.json").read_bytes() == before
    assert not (finished / ".lock").exists()


def test_overwrite_replaces_the_run(finished):
    result = run_recipe("simclr", finished, *COMMON, "--epochs", "2", "--overwrite")
    assert result["steps"] == 4 == json.loads((finished / "results.json").read_text())["steps"]


def test_resume_without_a_checkpoint_names_the_folder(tmp_path):
    with pytest.raises(RunFolderError, match="holds no checkpoint.pt") as info:
        run_recipe("simclr", tmp_path / "empty", *COMMON, "--resume")
    assert str(tmp_path / "empty") in str(info.value)


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        run_recipe("simclr", tmp_path / "notes.txt", *COMMON)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_resume_and_overwrite_together_are_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_recipe("simclr", tmp_path, *COMMON, "--resume", "--overwrite")
    assert info.value.code == 2 and "pass one of them" in capsys.readouterr().err


def test_a_folder_in_use_by_another_run_is_refused(tmp_path):
    out = tmp_path / "busy"
    with FolderLock(out):
        with pytest.raises(RunFolderError, match="in use by another run"):
            run_recipe("simclr", out, *COMMON)
        assert not (out / "results.json").exists()
    assert run_recipe("simclr", out, *COMMON)["steps"] == 2  # free again once the lock is released


def test_a_run_in_another_process_keeps_a_second_run_out(tmp_path):
    out = tmp_path / "shared"
    code = ("import sys, time; from mi_augment.ssl.train import FolderLock; FolderLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"in use by another run \\(process {holder.pid} "):
            run_recipe("simclr", out, *COMMON)
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_from_a_dead_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "stale"
    code = ("import os, sys; from mi_augment.ssl.train import FolderLock; FolderLock(sys.argv[1]).acquire(); "
            "os._exit(0)")  # exits holding the lock, as a killed run would
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    assert (out / ".lock").is_file()
    assert run_recipe("simclr", out, *COMMON)["steps"] == 2
    assert "stale lock" in capsys.readouterr().out
    assert not (out / ".lock").exists()


def test_a_lock_is_exclusive_and_released():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with FolderLock(d):
            with pytest.raises(RunFolderError, match="process"):
                FolderLock(d).acquire()
        with FolderLock(d) as again:
            assert again.held
