"""Artifact loaders under malformed input (issue 13, item 3): model files, twin results, twin datasets and
mining manifests. Targeted regressions first, then a seeded fuzz run over mutated valid files in a
subprocess under an address-space cap, which must find only ``ArtifactError`` (or valid loads)."""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mi_augment.commands.mine import merge_outputs
from mi_augment.core.artifact import STALE_TEMP_SECONDS, ArtifactError, atomic_write_bytes
from mi_augment.perturbations import IlluminationModel, MotionModel
from mi_augment.video.twins import TwinPatchDataset, TwinPatches

# ------------------------------------------------------------------------------------------ valid files


def twin_result(p: int = 6, t: int = 10) -> TwinPatches:
    g = torch.Generator().manual_seed(0)
    xy = torch.arange(p, dtype=torch.float32)[:, None] * 16
    boxes = torch.cat([xy, torch.zeros(p, 1), xy + 16, torch.full((p, 1), 16.0)], dim=1)
    mi = torch.rand(p, p, generator=g)
    mi = (mi + mi.T) / 2
    mi.fill_diagonal_(0)
    twins = torch.full((p,), -1)
    twins[0], twins[1] = 1, 0
    centres = (boxes[:, :2] + 8).expand(t, p, 2).clone()
    centres[3:, 5] = float("nan")  # a patch lost after three frames
    return TwinPatches(boxes=boxes, mi=mi, twins=twins, significance=torch.rand(p, generator=g),
                       active=torch.ones(p, dtype=torch.bool), tracked=torch.ones(p, dtype=torch.bool),
                       centres=centres, frame_range=(4, 4 + t), settings={"patch_size": 16, "estimator": "kl3"})


def twin_dataset(n: int = 3) -> TwinPatchDataset:
    crops = torch.randint(0, 256, (n, 2, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    info = {"patch": torch.arange(n), "twin": torch.arange(n) + 1, "frame": torch.arange(n),
            "mi": torch.full((n,), 0.5), "p_value": torch.full((n,), 0.01), "source": torch.zeros(n, dtype=torch.long)}
    return TwinPatchDataset(crops, info, ["clip.mp4"])


MANIFEST = {"mi_augment": "0", "shard": [0, 1], "patch_size": 16, "options": {"estimator": "kl3"},
            "video_options": {"max_frames": None}, "videos": [
                {"video": "/data/a.mp4", "key": "a", "pairs": 3, "dataset": "a.dataset.json"},
                {"video": "/data/b.mp4", "key": "b", "error": "cannot read"}]}


def make_valid_files(folder: Path) -> dict[str, Path]:
    """One valid file of every kind, written with the public API."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "illumination": IlluminationModel.default().save(folder / "illumination.json"),
        "jitter": IlluminationModel.uniform().save(folder / "jitter.json"),
        "motion": MotionModel.default().save(folder / "motion.json"),
        "twins": twin_result().save(folder / "clip.shot000004-000014.twins.json"),
        "dataset": twin_dataset().save(folder / "a.dataset.json"),
    }
    files["manifest"] = atomic_write_bytes(folder / "manifest-0-of-1.json", json.dumps(MANIFEST).encode())
    return files


def load(kind: str, path: Path, out: Path) -> None:
    """Load ``path`` as ``kind`` and use the result a little (a valid load must give usable data)."""
    if kind in ("illumination", "jitter", "motion"):
        model = (MotionModel if kind == "motion" else IlluminationModel).load(path)
        z = model.density.sample(4, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(z).all() and torch.isfinite(model.density.log_prob(z.double())).all()
    elif kind == "twins":
        result = TwinPatches.load(path)
        result.twin_mi(), result.summary(), result.pairs()
    elif kind == "dataset":
        data = TwinPatchDataset.load(path)
        for i in range(len(data)):
            data.describe(i)
    else:  # manifest: merged with the dataset next to it
        merge_outputs([path.parent], out)


def write_doc(path: Path, doc) -> None:
    path.write_text(json.dumps(doc))


def mutated(files: dict[str, Path], kind: str, folder: Path, mutate) -> Path:
    doc = json.loads(files[kind].read_text())
    mutate(doc)
    target = folder / files[kind].name
    write_doc(target, doc)
    return target


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return make_valid_files(tmp_path_factory.mktemp("valid"))


def copy_folder(files: dict[str, Path], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, path in files.items():
        out[kind] = folder / path.name
        out[kind].write_bytes(path.read_bytes())
    return out


# ------------------------------------------------------------------------------------ targeted regressions


def test_valid_files_load(valid, tmp_path):
    for kind, path in valid.items():
        load(kind, path, tmp_path / "merged")


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["meta"]["config"].update(shading_degree=1_000_000), "shading_degree"),  # used to need ~24 GB
    (lambda d: d["meta"]["config"].update(shading_degree="2"), "shading_degree"),
    (lambda d: d["meta"]["config"].update(bogus=1), "meta.config"),
    (lambda d: d["meta"].update(config=[1, 2]), "meta.config"),
    (lambda d: d["meta"].update(density="gaussian_mixture"), "meta.density"),
    (lambda d: d["meta"].update(extra={}), "meta"),
    (lambda d: d.update(extra=1), "top-level"),
    (lambda d: d["meta"]["config"].update(groups=["photometric", "jitter"]), "dimensions"),  # wrong density dim
    (lambda d: d["meta"]["density"].update(max_components=[[[[1]]]]), "max_components"),
    (lambda d: d["tensors"]["density.means"].update(shape=[10**9, 10**9]), "density.means"),
    (lambda d: d["tensors"]["density.means"].update(dtype="complex64"), "density.means.dtype"),
    (lambda d: d["tensors"]["density.weights"].update(data="AAAA"), "density.weights"),
    (lambda d: d["tensors"].update(junk=d["tensors"]["density.weights"]), "junk"),
    (lambda d: d["meta"].update(fit_info=json.loads("[" * 60 + "]" * 60)), "nested"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_model_fields_raise_artifact_error_naming_the_field(valid, tmp_path, mutate, field):
    path = mutated(valid, "illumination", tmp_path, mutate)
    with pytest.raises(ArtifactError, match=field) as info:
        IlluminationModel.load(path)
    assert str(path) in str(info.value)


def _negate_first(w: torch.Tensor) -> torch.Tensor:
    """Mixture weights with the first one negative, still summing to 1 (any number of components)."""
    sign = torch.ones_like(w)
    sign[0] = -1.0
    return w * sign / (w * sign).sum()


def _set_tensor(doc: dict, name: str, value: torch.Tensor) -> None:
    arr = value.numpy().astype("<f8")
    doc["tensors"][name] = {"dtype": "float64", "shape": list(arr.shape),
                            "data": base64.b64encode(arr.tobytes()).decode()}


@pytest.mark.parametrize("change, field", [
    (lambda w, m, s: (w, m.fill_(float("nan")), s), "means.*NaN"),
    (lambda w, m, s: (w, m.fill_(1e300), s), "means.*above"),
    (lambda w, m, s: (_negate_first(w), m, s), "weights.*below"),
    (lambda w, m, s: (w * 2, m, s), "weights must sum to 1"),
    (lambda w, m, s: (w, m, s * -1), "positive diagonal"),
    (lambda w, m, s: (w, m, s.transpose(-1, -2)), "lower-triangular"),
    (lambda w, m, s: (w, m[:, :4], s[:, :4, :4]), "dimensions"),
], ids=["nan", "huge", "negative-weight", "weights-sum", "not-positive-definite", "upper", "wrong-dim"])
def test_invalid_density_values_raise_artifact_error(tmp_path, change, field):
    model = IlluminationModel.default()
    state = model.density.state()[1]
    weights, means, tril = change(state["weights"].clone(), state["means"].clone(), state["scale_tril"].clone())
    doc = json.loads(model.save(tmp_path / "m.json").read_text())
    for name, value in (("weights", weights), ("means", means), ("scale_tril", tril)):
        _set_tensor(doc, f"density.{name}", value)
    write_doc(tmp_path / "m.json", doc)
    with pytest.raises(ArtifactError, match=field):
        IlluminationModel.load(tmp_path / "m.json")


def test_uniform_density_checks_its_box(valid, tmp_path):
    doc = json.loads(valid["jitter"].read_text())
    doc["tensors"]["density.low"], doc["tensors"]["density.high"] = (doc["tensors"]["density.high"],
                                                                      doc["tensors"]["density.low"])
    write_doc(tmp_path / "j.json", doc)
    with pytest.raises(ArtifactError, match="high must be >= low"):
        IlluminationModel.load(tmp_path / "j.json")


def test_oversized_and_deeply_nested_files_are_refused_before_parsing(valid, tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(valid["motion"].read_bytes()[:-1] + b" " * (17 * 2**20) + b"}")
    with pytest.raises(ArtifactError, match="bytes"):
        MotionModel.load(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ArtifactError, match="nested"):
        MotionModel.load(deep)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["tensors"]["twins"].update(data=base64.b64encode(
        torch.tensor([1, 0, 9, -1, -1, -1]).numpy().astype("<i8").tobytes()).decode()), "tensors.twins.*above"),
    (lambda d: d["tensors"]["twins"].update(data=base64.b64encode(
        torch.tensor([0, 0, -1, -1, -1, -1]).numpy().astype("<i8").tobytes()).decode()), "itself"),
    (lambda d: d["tensors"].update(mi=d["tensors"]["significance"]), "tensors.mi.*shape"),
    (lambda d: d["meta"].update(frame_range=[4, 5]), "frame_range"),  # a single frame
    (lambda d: d["meta"].update(frame_range=[4, 30]), "tensors.centres.*shape"),  # centres for 10 frames only
    (lambda d: d["meta"].update(frame_range="4-14"), "frame_range"),
    (lambda d: d["meta"].update(settings=[]), "meta.settings"),
    (lambda d: d["tensors"]["active"].update(dtype="float32"), "active"),
], ids=["twin-out-of-range", "self-twin", "mi-shape", "one-frame", "centres-frames", "range-string", "settings",
        "dtype"])
def test_malformed_twin_results_raise_artifact_error(valid, tmp_path, mutate, field):
    path = mutated(valid, "twins", tmp_path, mutate)
    with pytest.raises(ArtifactError, match=field):
        TwinPatches.load(path)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["meta"].update(sources="abc"), "meta.sources"),  # used to become three sources
    (lambda d: d["meta"].update(sources=[1]), r"meta.sources\[0\]"),
    (lambda d: d["meta"].update(sources=[]), "info.source"),
    (lambda d: d["tensors"].update({"info.mi": d["tensors"]["info.patch"]}), "info.mi"),
    (lambda d: d["tensors"].pop("crops"), "crops"),
], ids=["sources-string", "source-number", "no-sources", "mi-dtype", "no-crops"])
def test_malformed_twin_datasets_raise_artifact_error(valid, tmp_path, mutate, field):
    path = mutated(valid, "dataset", tmp_path, mutate)
    with pytest.raises(ArtifactError, match=field):
        TwinPatchDataset.load(path)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(videos="abc"), "videos"),
    (lambda d: d.update(videos=[1]), r"videos\[0\]"),
    (lambda d: d.update(shard=[3, 2]), r"shard\[0\]"),
    (lambda d: d.update(options=[]), "options"),
], ids=["videos-string", "video-number", "shard", "options"])
def test_merge_with_a_malformed_manifest_names_the_file(valid, tmp_path, mutate, field):
    files = copy_folder(valid, tmp_path / "run")
    doc = json.loads(files["manifest"].read_text())
    mutate(doc)
    write_doc(files["manifest"], doc)
    with pytest.raises(ArtifactError, match=field) as info:
        merge_outputs([files["manifest"].parent], tmp_path / "merged")
    assert str(files["manifest"]) in str(info.value)
    files["manifest"].write_text('{"shard": [0, 1], "videos": [')  # truncated
    with pytest.raises(ArtifactError, match="manifest-0-of-1.json"):
        merge_outputs([files["manifest"].parent], tmp_path / "merged")


# ------------------------------------------------------------------------------------- temporary files


def test_a_killed_save_leaves_a_recognisable_temporary_that_a_later_save_removes(tmp_path):
    # A save killed between writing and renaming (here: the process exits inside fsync).
    script = ("import os, sys; from mi_augment.core.artifact import atomic_write_bytes; "
              "os.fsync = lambda fd: os._exit(9); atomic_write_bytes(sys.argv[1], b'x' * 1000)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.json")], capture_output=True)
    assert done.returncode == 9
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".model.json.mi_augment-") and left[0].suffix == ".tmp"
    fresh = tmp_path / ".other.json.mi_augment-abc.tmp"  # a save in progress right now: must be kept
    fresh.write_bytes(b"busy")
    foreign = tmp_path / ".notes.tmp"  # not ours: never touched
    foreign.write_bytes(b"keep")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(left[0], (old, old))
    os.utime(foreign, (old, old))
    atomic_write_bytes(tmp_path / "model.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".notes.tmp", fresh.name, "model.json"])


# ------------------------------------------------------------------------------------------------- fuzz

_VALUES = [None, True, False, 0, -1, 1.5, 10**30, 1e308, "abc", "", [], {}, [1, 2, 3], {"a": 1},
           "NaN-marker", "Infinity-marker", "x" * 5000]


def _nodes(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:8]):
            yield from _nodes(v, (*path, i))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _mutate_doc(doc, rng: random.Random):
    paths = [p for p in _nodes(doc) if p]
    path = rng.choice(paths)
    parent, key = _get(doc, path[:-1]), path[-1]
    op = rng.randrange(7)
    if op == 0:
        parent[key] = copy.deepcopy(rng.choice(_VALUES))
    elif op == 1 and isinstance(parent, dict):
        del parent[key]
    elif op == 2 and isinstance(parent, dict):
        parent[f"unknown_{rng.randrange(100)}"] = rng.choice(_VALUES)
    elif op == 3:  # nesting, spliced into the text after encoding (json.dumps itself recurses)
        parent[key] = f"DEEP-marker-{rng.choice([20, 200, 5000])}"
    elif op == 4:  # a tensor's shape or dtype
        tensors = list(doc.get("tensors", {}).values()) if isinstance(doc.get("tensors"), dict) else []
        entries = [t for t in tensors if isinstance(t, dict) and isinstance(t.get("data"), str)]
        if entries:
            entry = rng.choice(entries)
            choice = rng.randrange(4)
            if choice == 0:
                entry["shape"] = [rng.choice([0, 1, 2, 3, 10**12]) for _ in range(rng.randrange(0, 10))]
            elif choice == 1:
                entry["dtype"] = rng.choice(["float32", "int64", "bool", "uint8", "float16", "object"])
            elif choice == 2:
                entry["data"] = entry["data"][: rng.randrange(len(entry["data"]) + 1)]
            else:  # same length, random bytes: arbitrary values, NaN and inf included
                raw = bytes(rng.randrange(256) for _ in range(len(entry["data"]) * 3 // 4))
                entry["data"] = base64.b64encode(raw).decode()
    else:  # a number nudged to an extreme
        value = parent[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = rng.choice([-value, value * 1e6, value + 1, 2**31, -(2**31), 0])
        else:
            parent[key] = rng.choice(_VALUES)


def _mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    op = rng.randrange(4)
    if op == 0:
        return raw[: rng.randrange(len(raw))]
    if op == 1:
        data = bytearray(raw)
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if op == 2:
        at = rng.randrange(len(raw))
        return raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + raw[at:]
    return rng.choice([b"", b"\x80\x04K\x01.", b"PK\x03\x04", b"[" * 100_000, b"null", b"[]", b'"abc"'])


def run_fuzz(folder: Path, seed: int, per_kind: int) -> list[str]:
    """Mutate every valid file ``per_kind`` times; return descriptions of loads that failed with anything
    other than ``ArtifactError``."""
    rng = random.Random(seed)
    valid = make_valid_files(folder / "valid")
    failures = []
    for kind, source in valid.items():
        original = source.read_bytes()
        for i in range(per_kind):
            case = copy_folder(valid, folder / f"{kind}-{i}")
            target = case[kind]
            if rng.random() < 0.75:
                doc = json.loads(original)
                for _ in range(rng.randrange(1, 4)):
                    _mutate_doc(doc, rng)
                text = json.dumps(doc).replace('"NaN-marker"', "NaN").replace('"Infinity-marker"', "-Infinity")
                for depth in (20, 200, 5000):
                    text = text.replace(f'"DEEP-marker-{depth}"', "[" * depth + "1" + "]" * depth)
                target.write_text(text)
            else:
                target.write_bytes(_mutate_bytes(original, rng))
            try:
                load(kind, target, folder / f"{kind}-{i}-merged")
            except ArtifactError:
                pass
            except BaseException as exc:  # noqa: BLE001 - anything else is a finding
                failures.append(f"{kind} #{i}: {type(exc).__name__}: {str(exc)[:200]}")
    return failures


def _fuzz_child(folder: str, seed: int, per_kind: int, cap_bytes: int) -> None:
    """Entry point of the capped subprocess: limit the address space, fuzz, print the failures as JSON."""
    import resource

    with open("/proc/self/statm") as fh:
        in_use = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (in_use + cap_bytes, in_use + cap_bytes))
    print(json.dumps(run_fuzz(Path(folder), seed, per_kind)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux-only")
def test_fuzzed_files_give_only_artifact_errors_under_a_memory_cap(tmp_path):
    # 6 kinds x 30 mutations; 1 GiB of address space above what the loaded interpreter already maps.
    root = Path(__file__).resolve().parent.parent
    code = f"import tests.test_artifact_fuzz as m; m._fuzz_child({str(tmp_path)!r}, 13, 30, 2**30)"
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert failures == []
