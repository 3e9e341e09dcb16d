import json
import os
import pickle

import pytest
import torch

from mi_augment.core.artifact import ArtifactError, atomic_write_bytes, load_artifact, save_artifact


def test_round_trip_keeps_dtype_shape_and_values(tmp_path):
    tensors = {"a": torch.randn(3, 4, dtype=torch.float64), "b": torch.arange(5), "c": torch.rand(2) > 0.5,
               "d": torch.randint(0, 255, (2, 2), dtype=torch.uint8), "e": torch.randn(2, 3)}
    path = save_artifact(tmp_path / "m.json", "thing", 1, {"x": [1, 2], "name": "n"}, tensors)
    meta, loaded, version = load_artifact(path, "thing", 1)
    assert version == 1 and meta == {"x": [1, 2], "name": "n"}
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v)


def test_wrong_kind_newer_version_and_corruption_are_clear_errors(tmp_path):
    path = save_artifact(tmp_path / "m.json", "thing", 2, {}, {"a": torch.zeros(2)})
    with pytest.raises(ArtifactError, match="expected 'other'"):
        load_artifact(path, "other", 2)
    with pytest.raises(ArtifactError, match="newer mi_augment"):
        load_artifact(path, "thing", 1)
    text = path.read_text()
    (tmp_path / "trunc.json").write_text(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        load_artifact(tmp_path / "trunc.json", "thing", 2)
    doc = json.loads(text)
    doc["tensors"]["a"]["data"] = "!!!notbase64"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="tensor 'a' is corrupt"):
        load_artifact(tmp_path / "bad.json", "thing", 2)
    with pytest.raises(FileNotFoundError):
        load_artifact(tmp_path / "missing.json", "thing", 2)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickle_payload_is_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.json").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ArtifactError, match="pickle"):
        load_artifact(tmp_path / "evil.json", "thing", 1)
    torch.save({"x": _Boom()}, tmp_path / "evil.pt")
    with pytest.raises(ArtifactError, match="pickle"):
        load_artifact(tmp_path / "evil.pt", "thing", 1)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_bytes(target, b"old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_nan_in_meta_is_refused(tmp_path):
    with pytest.raises(ValueError):
        save_artifact(tmp_path / "m.json", "thing", 1, {"x": float("nan")}, {})
    assert not (tmp_path / "m.json").exists()
