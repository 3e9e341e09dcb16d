"""Datasets for self-supervised training, as uint8 image tensors ``[N, C, H, W]``.

Small datasets (Fashion-MNIST, CIFAR, the synthetic set) are held as one tensor, moved once to the training
device, and batched by indexing: no DataLoader, no per-image Python work (as airbench does). Large ones
(STL-10's unlabeled split, image folders) stay a :class:`torch.utils.data.Dataset` and are batched by a
DataLoader that yields the same uint8 batches. Either way augmentation happens afterwards, on the device.

Names accepted by :func:`load_dataset`:

``default``        the embedded default: a fixed 10,000 / 2,000 image subset of Fashion-MNIST
``fashion_mnist``  all of Fashion-MNIST (Debian ``dataset-fashion-mnist`` files, or torchvision's download)
``cifar10``, ``cifar100``, ``stl10``  through torchvision (``--download`` where the web is reachable)
``folder``         an ImageFolder tree under ``root`` (``root/train/<class>/*``, ``root/val/<class>/*``; ``root``
                   required), resized to 96 px unless ``image_size`` says otherwise
``synthetic``      a small labelled set of oriented stripes (256 train / 64 test, 16 px), generated in memory
                   (smoke tests)

Datasets read from a folder (``fashion_mnist``, ``cifar*``, ``stl10``) use ``root``, else
``$MI_AUGMENT_DATA_ROOT``, else ``./data`` (:func:`default_data_root`; :func:`data_root_used` says which).
``fmnist_scenes``  Fashion-MNIST garments tinted and composited onto crops of real video frames, 32 px by
                   default (:mod:`mi_augment.datasets.scenes`; 10,000 train / 10,000 test, generated once and
                   cached; clips from ``$MI_AUGMENT_SCENE_CLIPS`` or the shipped ones)
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

DATASETS = ("default", "fashion_mnist", "cifar10", "cifar100", "stl10", "folder", "synthetic", "fmnist_scenes")

#: the datasets that read (or download into) a data folder
ROOT_DATASETS = ("fashion_mnist", "cifar10", "cifar100", "stl10", "folder")

#: keep a dataset as one tensor (and on the GPU) when it is at most this many bytes
RESIDENT_LIMIT_BYTES = 4 * 1024**3


class ImageSet:
    """Images (a uint8 tensor ``[N, C, H, W]`` or a Dataset of ``(uint8 [C, H, W], label)``) and labels."""

    def __init__(self, images: Tensor | Dataset, labels: Tensor | None = None):
        if isinstance(images, Tensor):
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
            if labels is not None and len(labels) != len(images):
                raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images = images
        self.labels = labels

    @property
    def resident(self) -> bool:
        return isinstance(self.images, Tensor)

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device | str) -> ImageSet:
        """Move a resident set (images and labels) to ``device``; a Dataset-backed set is returned as is."""
        if not self.resident:
            return self
        labels = self.labels.to(device) if self.labels is not None else None
        return ImageSet(self.images.to(device), labels)

    def subset(self, indices: Tensor) -> ImageSet:
        indices = torch.as_tensor(indices, dtype=torch.long)
        labels = self.labels[indices.to(self.labels.device)] if self.labels is not None else None
        if self.resident:
            return ImageSet(self.images[indices.to(self.images.device)], labels)
        return ImageSet(torch.utils.data.Subset(self.images, indices.tolist()), labels)

    def batches(self, index_batches: list[Tensor] | Tensor, device: torch.device | str,
                num_workers: int = 0) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Yield ``(uint8 images [B, C, H, W], labels [B] or None)`` on ``device`` for each index batch."""
        if self.resident:
            for idx in index_batches:
                idx = idx.to(self.images.device)
                imgs = self.images[idx].to(device, non_blocking=True)
                labels = self.labels[idx.to(self.labels.device)].to(device) if self.labels is not None else None
                yield imgs, labels
            return
        batch_sampler = [b.tolist() for b in index_batches]
        loader = DataLoader(self.images, batch_sampler=batch_sampler, num_workers=num_workers,
                            pin_memory=torch.device(device).type == "cuda", collate_fn=_collate_uint8,
                            persistent_workers=False)
        for imgs, labels in loader:
            yield imgs.to(device, non_blocking=True), labels.to(device)

    def all_batches(self, batch_size: int, device: torch.device | str,
                    num_workers: int = 0) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Every image once, in order (for feature extraction)."""
        order = torch.arange(len(self))
        return self.batches(list(order.split(batch_size)), device, num_workers)


def _collate_uint8(items):
    images = torch.stack([torch.as_tensor(img) for img, _ in items])
    labels = torch.as_tensor([int(lab) for _, lab in items])
    return images, labels


@dataclass
class ImageData:
    """Everything a recipe needs about a dataset.

    ``train`` feeds self-supervised training (labels unused, may be unlabelled); ``memory`` is the labelled
    training set used by the kNN monitor and the linear probe; ``test`` is scored.
    """

    name: str
    train: ImageSet
    memory: ImageSet
    test: ImageSet
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to(self, device: torch.device | str) -> ImageData:
        return replace(self, train=self.train.to(device), memory=self.memory.to(device), test=self.test.to(device))


# --------------------------------------------------------------------------------------------- readers
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format, optionally gzipped) of unsigned bytes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported (type code {data[2]:#x})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values for shape {dims}, found {body.size}")
    return body.reshape(dims)


def _find_fashion_mnist(root: str | os.PathLike | None) -> Path | None:
    """A folder holding the four Fashion-MNIST files: ``root``, torchvision's ``root/FashionMNIST/raw``, or
    the Debian package's folder."""
    candidates = []
    if root is not None:
        candidates += [Path(root), Path(root) / "FashionMNIST" / "raw"]
    try:
        from .samples import fashion_mnist_dir

        candidates.append(fashion_mnist_dir())
    except FileNotFoundError:
        pass
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").is_file() or (c / "train-images-idx3-ubyte").is_file():
            return c
    return None


def _idx_file(folder: Path, stem: str) -> Path:
    gz = folder / f"{stem}.gz"
    return gz if gz.is_file() else folder / stem


def fashion_mnist(root: str | os.PathLike | None = None, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """Fashion-MNIST ``(train, test)`` as ``[N, 1, 28, 28]`` uint8 with labels."""
    folder = _find_fashion_mnist(root)
    if folder is None:
        if not download:
            raise FileNotFoundError(
                "Fashion-MNIST not found. Install Debian's dataset-fashion-mnist (apt-get install -y "
                "dataset-fashion-mnist), set MI_AUGMENT_FASHION_MNIST, point --data-root at the *-ubyte.gz files, "
                "or pass --download.")
        import torchvision

        torchvision.datasets.FashionMNIST(str(root or "data"), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root or "data"), train=False, download=True)
        folder = Path(root or "data") / "FashionMNIST" / "raw"
    sets = []
    for split in ("train", "t10k"):
        images = read_idx(_idx_file(folder, f"{split}-images-idx3-ubyte"))
        labels = read_idx(_idx_file(folder, f"{split}-labels-idx1-ubyte"))
        sets.append(ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    return sets[0], sets[1]


def _cifar(name: str, root: str | os.PathLike, download: bool) -> tuple[ImageSet, ImageSet]:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    out = []
    for train in (True, False):
        ds = cls(str(root), train=train, download=download)
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        out.append(ImageSet(images, torch.as_tensor(ds.targets, dtype=torch.long)))
    return out[0], out[1]


def _stl10(root: str | os.PathLike, download: bool) -> tuple[ImageSet, ImageSet, ImageSet]:
    import torchvision

    splits = {}
    for split in ("unlabeled", "train", "test"):
        ds = torchvision.datasets.STL10(str(root), split=split, download=download)
        splits[split] = ImageSet(torch.from_numpy(ds.data), torch.as_tensor(ds.labels, dtype=torch.long))
    train = ImageSet(torch.cat([splits["unlabeled"].images, splits["train"].images]))
    return train, splits["train"], splits["test"]


class _FolderImages(Dataset):
    """An ImageFolder whose items are uint8 ``[C, H, W]`` tensors of one fixed size."""

    def __init__(self, root: Path, image_size: int):
        import torchvision
        from torchvision.transforms import v2

        transform = v2.Compose([v2.PILToTensor(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)])
        self.folder = torchvision.datasets.ImageFolder(str(root), transform=transform)
        self.classes = self.folder.classes

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        img, label = self.folder[i]
        if img.shape[0] == 4:
            img = img[:3]
        elif img.shape[0] == 1:
            img = img.expand(3, -1, -1).contiguous()
        return img, label


def _folder(root: str | os.PathLike, image_size: int) -> tuple[ImageSet, ImageSet, int]:
    root = Path(root)
    split_names = [("train", "val"), ("train", "test")]
    for train_name, test_name in split_names:
        if (root / train_name).is_dir() and (root / test_name).is_dir():
            break
    else:
        raise FileNotFoundError(f"--dataset folder: {root} must hold train/<class>/* and val/<class>/* (or "
                                "test/<class>/*) images")
    train_ds, test_ds = _FolderImages(root / train_name, image_size), _FolderImages(root / test_name, image_size)
    sets = []
    for ds in (train_ds, test_ds):
        labels = torch.as_tensor(ds.folder.targets, dtype=torch.long)
        n_bytes = len(ds) * 3 * image_size * image_size
        if n_bytes <= RESIDENT_LIMIT_BYTES // 4:  # small: decode once into one tensor
            images = torch.stack([ds[i][0] for i in range(len(ds))]) if len(ds) else torch.zeros(0, 3, image_size,
                                                                                                image_size, dtype=torch.uint8)
            sets.append(ImageSet(images, labels))
        else:
            sets.append(ImageSet(ds, labels))
    return sets[0], sets[1], len(train_ds.classes)


def synthetic(n_train: int = 256, n_test: int = 64, image_size: int = 16, channels: int = 3, num_classes: int = 4,
              seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A small labelled set: class ``k`` is a stripe pattern at angle ``k * pi / num_classes`` with a random
    phase, frequency, tint and noise. Learnable in a few steps, so smoke tests also see non-trivial kNN; 256
    training images fill one batch of the recipes' default size.

    Args:
        n_train, n_test: images per split; image_size: their side; channels: 1 or 3;
        num_classes: stripe angles; seed: the generator's seed (same seed, same images).

    Example:
        >>> train, test = synthetic(n_train=8, n_test=4, image_size=16)
        >>> tuple(train.images.shape), train.images.dtype, train.labels.tolist()[:4]
        ((8, 3, 16, 16), torch.uint8, [0, 1, 2, 3])
    """
    g = torch.Generator().manual_seed(seed)
    sets = []
    for n in (n_train, n_test):
        labels = torch.arange(n) % num_classes
        angle = labels.float() * torch.pi / num_classes + 0.1 * torch.randn(n, generator=g)
        freq = 0.6 + 0.3 * torch.rand(n, generator=g)
        phase = 2 * torch.pi * torch.rand(n, generator=g)
        coords = torch.arange(image_size, dtype=torch.float32)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        proj = xx * torch.cos(angle).view(-1, 1, 1) + yy * torch.sin(angle).view(-1, 1, 1)
        stripes = 0.5 + 0.4 * torch.sin(freq.view(-1, 1, 1) * proj + phase.view(-1, 1, 1))
        tint = 0.7 + 0.3 * torch.rand(n, channels, 1, 1, generator=g)
        img = stripes.unsqueeze(1) * tint + 0.05 * torch.randn(n, channels, image_size, image_size, generator=g)
        sets.append(ImageSet((img.clamp(0, 1) * 255).round().to(torch.uint8), labels))
    return sets[0], sets[1]


# --------------------------------------------------------------------------------------------- helpers
def fixed_subset(images: ImageSet, n: int | None, seed: int = 0) -> ImageSet:
    """The first ``n`` images of a permutation fixed by ``seed`` (independent of the training seed, so
    every run of a comparison sees the same subset). ``None`` or ``n >= len`` keeps everything."""
    if n is None or n >= len(images):
        return images
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images.subset(perm[:n].sort().values)


def resize_images(images: Tensor, size: int) -> Tensor:
    """Resize a uint8 batch so its shorter side is ``size`` and centre-crop to ``size x size``."""
    if images.shape[-2:] == (size, size):
        return images
    x = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False) \
        if images.shape[-1] == images.shape[-2] else _resize_short_side(images.float(), size)
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size].round().clamp(0, 255).to(torch.uint8)


def _resize_short_side(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    s = size / min(h, w)
    return F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bilinear",
                         antialias=True, align_corners=False)


def channel_stats(images: ImageSet, max_images: int = 10_000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (up to ``max_images`` of) a resident set; ImageNet's for other sets."""
    if not images.resident or len(images) == 0:
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = images.images[:max_images].float() / 255.0
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())


def default_data_root() -> str:
    """The data folder used when none is given: ``$MI_AUGMENT_DATA_ROOT``, else ``"data"`` (relative to the
    working directory).

    Example:
        >>> isinstance(default_data_root(), str)
        True
    """
    return os.environ.get("MI_AUGMENT_DATA_ROOT", "data")


def data_root_used(name: str, root: str | os.PathLike | None = None) -> str | None:
    """The folder :func:`load_dataset` reads ``name`` from (None for the datasets that read no folder), with
    where it comes from, for the run's log.

    Example:
        >>> data_root_used("cifar10", "/datasets")
        '/datasets (--data-root)'
        >>> data_root_used("synthetic") is None
        True
    """
    if name not in ROOT_DATASETS:
        return None
    if root is not None:
        return f"{root} (--data-root)"
    source = "$MI_AUGMENT_DATA_ROOT" if "MI_AUGMENT_DATA_ROOT" in os.environ else "the default; --data-root to change"
    return f"{default_data_root()} ({source})"


def load_dataset(name: str, root: str | os.PathLike | None = None, *, image_size: int | None = None,
                 train_subset: int | None = None, test_subset: int | None = None, download: bool = False,
                 synthetic_channels: int = 3) -> ImageData:
    """Load a dataset by name (see the module docstring) as :class:`ImageData` on the CPU.

    Args:
        root: data folder (for ``folder`` the ImageFolder root; for ``fashion_mnist`` optional).
        image_size: resize to this square size (default: the dataset's own; ImageFolder default 96).
        train_subset, test_subset: keep a fixed subset of this many images (``default`` uses 10,000 / 2,000).
        download: let torchvision download missing files (needs the web).
        synthetic_channels: channels of the synthetic set (1 or 3).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if name == "folder" and root is None and "MI_AUGMENT_DATA_ROOT" not in os.environ:
        raise ValueError("--dataset folder needs a root holding train/<class>/* and val/<class>/* images")
    root = root if root is not None else default_data_root()
    num_classes = 10
    if name in ("default", "fashion_mnist"):
        train, test = fashion_mnist(root if name == "fashion_mnist" else None, download=download)
        if name == "default":
            train_subset = train_subset or 10_000
            test_subset = test_subset or 2_000
        memory = train
    elif name in ("cifar10", "cifar100"):
        train, test = _cifar(name, root, download)
        num_classes = 10 if name == "cifar10" else 100
        memory = train
    elif name == "stl10":
        train, memory, test = _stl10(root, download)
    elif name == "fmnist_scenes":
        from .scenes import SceneConfig, fmnist_scenes

        scenes = fmnist_scenes(SceneConfig(image_size=image_size or 32), fashion_root=root)
        train = ImageSet(scenes.train_images, scenes.train_labels)
        test = ImageSet(scenes.test_images, scenes.test_labels)
        memory = train
    elif name == "folder":
        size = image_size or 96
        train, test, num_classes = _folder(root, size)
        memory = train
    else:
        size = image_size or 16
        train, test = synthetic(image_size=size, channels=synthetic_channels)
        num_classes = 4
        memory = train
    same = memory is train
    train = fixed_subset(train, train_subset)
    memory = train if same else fixed_subset(memory, train_subset)
    test = fixed_subset(test, test_subset)
    if image_size is not None:
        train, memory, test = (_resized(s, image_size) for s in (train, memory, test))
    first = train.images[0] if train.resident else train.images[0][0]
    channels, size = int(first.shape[0]), int(first.shape[-1])
    mean, std = channel_stats(memory)
    return ImageData(name, train, memory, test, num_classes, channels, size, mean, std)


def _resized(images: ImageSet, size: int) -> ImageSet:
    if not images.resident:
        return images
    return ImageSet(resize_images(images.images, size), images.labels)


# --------------------------------------------------------------------------------------------- batching
class EpochSampler:
    """Deterministic, shardable batches of indices: epoch ``e`` uses the permutation seeded by
    ``(seed, e)``; rank ``r`` of ``world`` takes every ``world``-th index; incomplete batches are dropped.

    The order depends only on ``(seed, epoch)``, so a resumed run sees exactly the batches it would have.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.steps_per_epoch = (n // world_size) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{n} training images cannot fill one batch of {batch_size} per process "
                             f"({world_size} process(es)); lower --batch-size")

    def epoch(self, epoch: int, start_step: int = 0) -> list[Tensor]:
        """Index batches of ``epoch`` from batch ``start_step`` on."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        mine = perm[self.rank::self.world_size][: self.steps_per_epoch * self.batch_size]
        return list(mine.view(self.steps_per_epoch, self.batch_size)[start_step:])
