"""The README's Python examples run as written, in order, as a user would paste them (the names they assume,
`image`, `batch`, `data` and `sample_images`, are defined first; on a machine without CUDA `.cuda()` is
dropped, which is the only change made to the text)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_readme_python_examples_run(tmp_path, monkeypatch):
    from mi_augment.perturbations import IlluminationModel

    blocks = _blocks()
    assert len(blocks) >= 3, "the README lost its examples"
    monkeypatch.chdir(tmp_path)
    IlluminationModel.default().save(tmp_path / "illum.json")  # what `mi-augment fit illumination` writes
    rng = np.random.default_rng(0)
    pil = [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(24)]
    ns: dict = {"image": pil[0], "batch": torch.rand(4, 3, 40, 48), "data": pil,
                "sample_images": torch.rand(64, 3, 32, 32) * 0.6 + 0.2}
    for code in blocks:
        if not torch.cuda.is_available():
            code = code.replace(".cuda()", "")
        exec(compile(code, str(README), "exec"), ns)  # noqa: S102 - our own README

    a, b = ns["view_a"], ns["view_b"]
    assert a.shape == b.shape == (4, 3, 32, 32)
    views = next(iter(ns["loader"]))
    assert [tuple(v.shape) for v in views[:2]] == [(24, 3, 32, 32)] * 2
    natural = ns["illumination"]
    assert natural.strength > 10  # matched to ColorJitter, not the fitted strength
    out = ns["augment"](pil[1])
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
