"""MIPairCollate with Hugging Face datasets style samples (issue 24 item 13): dict samples in, dict batch out."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mi_augment.transforms import MIPairTransform
from mi_augment.transforms.collate import MIPairCollate


def _samples(n, key="image"):
    g = np.random.default_rng(0)
    return [{key: Image.fromarray(g.integers(0, 256, (20, 24, 3), dtype=np.uint8)), "label": i, "name": f"s{i}"}
            for i in range(n)]


def test_dict_samples_give_a_dict_batch_with_views_under_the_image_key():
    loader = DataLoader(_samples(6), batch_size=3, collate_fn=MIPairCollate(MIPairTransform(8)))
    batches = list(loader)
    assert len(batches) == 2
    first = batches[0]
    assert set(first) == {"image", "label", "name"}
    view_a, view_b = first["image"]
    assert view_a.shape == view_b.shape == (3, 3, 8, 8) and view_a.dtype == torch.float32
    assert first["label"].tolist() == [0, 1, 2] and first["name"] == ["s0", "s1", "s2"]


def test_image_key_is_configurable_and_a_missing_key_is_named():
    collate = MIPairCollate(MIPairTransform(8), image_key="img")
    batch = collate(_samples(2, key="img"))
    assert set(batch) == {"img", "label", "name"} and batch["img"][0].shape == (2, 3, 8, 8)
    with pytest.raises(KeyError, match="'img'.*image_key"):
        collate(_samples(2, key="image"))
    with pytest.raises(TypeError, match="image_key"):
        MIPairCollate(MIPairTransform(8), image_key=3)


def test_dict_batch_views_equal_the_tuple_batch_views_for_the_same_seed():
    """The dict route changes only the container: the same images and seed give the same views."""
    samples = _samples(4)
    collate = MIPairCollate(MIPairTransform(8))
    torch.manual_seed(3)
    from_dicts = collate(samples)["image"]
    torch.manual_seed(3)
    from_tuples, labels = collate([(s["image"], s["label"]) for s in samples])
    for a, b in zip(from_dicts, from_tuples):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert labels.tolist() == [0, 1, 2, 3]


def test_dict_with_only_the_image_gives_only_the_views():
    batch = MIPairCollate(MIPairTransform(8))([{"image": torch.rand(3, 16, 16)} for _ in range(2)])
    assert list(batch) == ["image"] and len(batch["image"]) == 2
