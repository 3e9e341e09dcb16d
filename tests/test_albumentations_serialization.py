"""albumentations serialization of pipelines holding every mi_augment adapter (issue 24 items 14 and 15):
``A.to_dict`` is plain data, ``A.save`` / ``A.load`` round-trip in JSON and YAML, and a new process that loads
the file makes the same outputs for the same seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

A = pytest.importorskip("albumentations")

from mi_augment.adapters.albumentations import MIPair, NaturalIllumination, NaturalMotion  # noqa: E402
from mi_augment.perturbations import IlluminationModel, MotionModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
import albumentations as A
import numpy as np
import mi_augment.adapters.albumentations  # registers the classes with albumentations
path, fmt, image, out = sys.argv[1:5]
pipeline = A.load(path, data_format=fmt)
pipeline.set_random_seed(7)
result = pipeline(image=np.load(image))
np.savez(out, image=result["image"], *result["views"])
"""


def _pipeline(tmp_path: Path) -> A.Compose:
    model_path = IlluminationModel.uniform(0.4, 0.4, 0.4, 0.1).save(tmp_path / "jitter.json")
    return A.Compose([NaturalMotion("default", strength=0.5), NaturalIllumination(str(model_path), p=0.7),
                      NaturalIllumination(), MIPair(size=16, illumination="default", n_candidates=4,
                                                    scale=(0.3, 1.0))])


def test_to_dict_is_plain_data_with_models_as_names_or_paths(tmp_path):
    pipeline = _pipeline(tmp_path)
    data = json.loads(json.dumps(A.to_dict(pipeline)))
    models = [t.get("model") for t in data["transform"]["transforms"]]
    assert models == ["default", str(tmp_path / "jitter.json"), "default", None]
    assert data["transform"]["transforms"][3]["illumination"] == "default"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_save_and_load_in_a_new_process_gives_the_same_outputs(tmp_path, fmt):
    pytest.importorskip("yaml")
    pipeline = _pipeline(tmp_path)
    path = tmp_path / f"pipeline.{fmt}"
    A.save(pipeline, str(path), data_format=fmt)
    image = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "image.npy", image)
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), fmt, str(tmp_path / "image.npy"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pipeline.set_random_seed(7)
    here = pipeline(image=image)
    there = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(there["image"], here["image"])
    for i, view in enumerate(here["views"]):
        np.testing.assert_array_equal(there[f"arr_{i}"], view)


@pytest.mark.parametrize("cls,model_class", [(NaturalIllumination, IlluminationModel), (NaturalMotion, MotionModel)])
def test_every_model_form_is_accepted_and_an_in_memory_model_says_how_to_save_it(tmp_path, cls, model_class):
    path = model_class.default().save(tmp_path / "model.json")
    image = (np.random.default_rng(1).random((24, 24, 3)) * 255).astype(np.uint8)
    outputs = [cls(spec, seed=3)(image=image)["image"] for spec in (model_class.default(), "default", path, str(path))]
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])
    with pytest.raises(TypeError, match=r"model\.save"):
        A.to_dict(A.Compose([cls(model_class.default())]))
    with pytest.raises(FileNotFoundError, match="no such file"):
        cls(str(tmp_path / "missing.json"))


def test_pair_from_a_ready_transform_says_to_use_keyword_arguments():
    from mi_augment.transforms import MIPairTransform

    with pytest.raises(TypeError, match="keyword arguments"):
        A.to_dict(A.Compose([MIPair(MIPairTransform(16))]))
    with pytest.raises(ValueError, match="p must be 1"):
        MIPair(size=16, p=0.5)
