"""The one-line swap in a lightly script (issue 24 item 12): a script written for lightly's
``SimCLRTransform(input_size=32, normalize=...)`` over a ``LightlyDataset`` runs unchanged with
``MIPairTransform(32, normalize=...)`` in its place, through a DataLoader with ``default_collate`` and workers,
into lightly's own loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

lightly = pytest.importorskip("lightly")

from lightly.data import LightlyDataset  # noqa: E402
from lightly.loss import NTXentLoss  # noqa: E402
from lightly.transforms import SimCLRTransform  # noqa: E402
from lightly.transforms.utils import IMAGENET_NORMALIZE  # noqa: E402

from mi_augment.transforms import MIPairTransform  # noqa: E402


def _image_folder(root, n=8):
    """A small folder of RGB JPEG and PNG images of several sizes, as a user's unlabelled data."""
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = 40 + 4 * i, 56 - 2 * i
        pixels = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"img_{i}.{'png' if i % 2 else 'jpg'}")
    return root


def lightly_script(transform, input_dir) -> list[dict]:
    """A lightly SimCLR script as its docs write it, except for the transform passed in."""
    dataset = LightlyDataset(input_dir=str(input_dir), transform=transform)
    loader = DataLoader(dataset, batch_size=4, shuffle=True, drop_last=True, num_workers=2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16))
    criterion = NTXentLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []
    for views, targets, filenames in loader:
        x0, x1 = views
        loss = criterion(model(x0), model(x1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen.append({"shapes": (tuple(x0.shape), tuple(x1.shape)), "dtype": x0.dtype, "loss": loss.item(),
                     "range": (float(torch.stack([x0, x1]).min()), float(torch.stack([x0, x1]).max())),
                     "targets": tuple(targets.shape), "filenames": len(filenames)})
    return seen


def test_simclr_transform_swapped_for_mi_pair_transform_runs_unchanged(tmp_path):
    root = _image_folder(tmp_path)
    torch.manual_seed(0)
    reference = lightly_script(SimCLRTransform(input_size=32, normalize=IMAGENET_NORMALIZE), root)
    torch.manual_seed(0)
    swapped = lightly_script(MIPairTransform(32, normalize=IMAGENET_NORMALIZE), root)
    assert len(swapped) == len(reference) == 2
    for ours, theirs in zip(swapped, reference):
        for key in ("shapes", "dtype", "targets", "filenames"):
            assert ours[key] == theirs[key], key
        assert np.isfinite(ours["loss"])
        # normalised as lightly's: ImageNet statistics put black below 0 and white above 1
        assert ours["range"][0] < 0 < 1 < ours["range"][1]
