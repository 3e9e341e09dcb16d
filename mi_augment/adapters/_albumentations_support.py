"""What :mod:`mi_augment.adapters.albumentations` builds on: numpy <-> tensor conversion, albumentations'
seeding driving a per-process ``torch.Generator``, and the plain-data form of arguments for ``A.save``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.validation import check_unit_images
from ..transforms.motion import NaturalMotion as MotionModule
from ..transforms.pair import MIPairTransform

_JSON_SCALARS = (str, int, float, bool, type(None))


def model_spec(model: Any) -> Any:
    """What ``to_dict`` records for a model argument: ``"default"``, a path as a string, or the instance."""
    if model is None:
        return "default"
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    return model


def serialisable(value: Any, field: str, owner: str) -> Any:
    """``value`` as plain JSON / YAML data (tuples as lists, paths as strings), or a ``TypeError`` saying how
    to make it serialisable."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [serialisable(v, f"{field}[{i}]", owner) for i, v in enumerate(value)]
    raise TypeError(f"{owner}: {field} is a {type(value).__name__}, which albumentations cannot serialise; "
                    "pass models as 'default' or as a saved model's path (model.save('model.json'), then "
                    "'model.json'), and other arguments as numbers, strings or lists")


# ------------------------------------------------------------------------------------------ image <-> tensor
def to_tensor(image: Any, name: str = "image") -> Tensor:
    """A numpy ``HxW`` / ``HxWxC`` image (uint8, or float in [0, 1]) as float ``[C, H, W]`` in [0, 1]."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (HxW or HxWxC), got {type(image).__name__}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty HxW or HxWxC array, got shape {image.shape}")
    arr = image[:, :, None] if image.ndim == 2 else image
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255.0)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or float (values in [0, 1]), got dtype {arr.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)
    # the core transforms' value checks and messages (any channel count, as albumentations allows)
    return check_unit_images(x[None], name, channels=(x.shape[0],))[0]


def view_to_numpy(x: Tensor, like: np.ndarray) -> np.ndarray:
    """A pair's view as :func:`to_numpy`, except that a view outside [0, 1] (``normalize=`` or a ``Normalize``
    in its pipeline) comes back as float32, unclamped, as albumentations' own ``Normalize`` returns it."""
    lo, hi = (float(v) for v in torch.aminmax(x))
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        out = x.detach().permute(1, 2, 0).numpy().astype(np.float32)
        return np.ascontiguousarray(out[:, :, 0] if like.ndim == 2 else out)
    return to_numpy(x, like)


def to_numpy(x: Tensor, like: np.ndarray) -> np.ndarray:
    """Float ``[C, h, w]`` in [0, 1] back to ``like``'s layout (``HxW`` stays 2-D) and dtype."""
    arr = x.clamp(0.0, 1.0).permute(1, 2, 0)
    if like.dtype == np.uint8:
        arr = arr.mul(255.0).round_().to(torch.uint8)
    out = arr.numpy().astype(like.dtype, copy=False)
    return np.ascontiguousarray(out[:, :, 0] if like.ndim == 2 else out)


def finish_bboxes(boxes: np.ndarray, dtype: np.dtype, clip: bool) -> np.ndarray:
    """Drop the boxes (normalised ``x1, y1, x2, y2, ...`` rows) that left the image entirely; clip the rest to it
    when ``clip`` (used alone). Inside a Compose they stay unclipped so its ``bbox_params`` filter sees how much
    is visible (``min_visibility``), and then clips them."""
    inside = np.clip(boxes[:, :4], 0.0, 1.0)
    boxes = boxes[(inside[:, 2] > inside[:, 0]) & (inside[:, 3] > inside[:, 1])]
    if clip:
        boxes[:, :4] = boxes[:, :4].clip(0.0, 1.0)
    return boxes.astype(dtype, copy=False)


def warps_views(pair: MIPairTransform) -> bool:
    """Whether the pair's perturbation chain or view pipelines move pixels (camera motion)."""
    from ..perturbations.motion import MotionModel

    models = list(getattr(pair, "perturbations", ())) + [getattr(pair, "motion", None)]
    pipelines = [t for p in getattr(pair, "view_transforms", ()) for t in p]
    return (any(isinstance(m, MotionModel) for m in models)
            or any(isinstance(t, MotionModule) for t in pipelines))


# ------------------------------------------------------------------------------------------ seeding
class TorchSeeded:
    """albumentations' seeding (``set_random_seed``, ``set_random_state``) driving a lazily built, per-process
    ``torch.Generator``; see the module docstring."""

    def set_random_seed(self, seed: int | None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
        super().set_random_seed(None if seed is None else int(seed))
        self._seed_source: Any = None if seed is None else int(seed)
        self._generator: torch.Generator | None = None
        self._generator_owner: tuple[int, int | None] | None = None

    def set_random_state(self, random_generator: np.random.Generator, py_random: Any) -> None:
        super().set_random_state(random_generator, py_random)
        self._seed_source = random_generator  # a seed is drawn from it when the generator is built
        self._generator = None
        self._generator_owner = None

    @property
    def generator(self) -> torch.Generator | None:
        """This process's generator (None: no seed was set, draws come from torch's global RNG)."""
        from torch.utils.data import get_worker_info

        worker = get_worker_info()
        owner = (os.getpid(), None if worker is None else worker.id)
        if self._generator_owner != owner:
            self._generator_owner = owner
            self._generator = None
            source = self._seed_source
            if source is not None:
                base = int(source.integers(2**63)) if isinstance(source, np.random.Generator) else source
                material = [base % 2**64] + ([torch.initial_seed() % 2**64] if worker is not None else [])
                state = np.random.SeedSequence(material).generate_state(1, np.uint64)[0]
                self._generator = torch.Generator().manual_seed(int(state) % (2**63 - 1))
        return self._generator

    def should_apply(self, force_apply: bool = False) -> bool:
        if self.p <= 0.0:
            return False
        if self.p >= 1.0 or force_apply:
            return True
        return bool(torch.rand((), generator=self.generator) < self.p)  # not python's RNG: shared by workers

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        gen = state.pop("_generator", None)
        # The generator's state as bytes (never a tensor: DataLoader's pickler moves tensors to shared memory).
        state["_generator_bytes"] = None if gen is None else bytes(gen.get_state().numpy().tobytes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        raw = state.pop("_generator_bytes", None)
        self.__dict__.update(state)
        self._generator = None
        if raw is not None:
            self._generator = torch.Generator()
            self._generator.set_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
