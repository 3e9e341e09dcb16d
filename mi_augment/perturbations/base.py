"""What every perturbation model shares: ``fit`` / ``sample`` / ``log_prob`` / ``apply`` / ``save`` / ``load``.

A model maps its :class:`~mi_augment.core.params.Params` to an unconstrained vector ``z`` (``params_to_vector``
and ``params_from_vector``); a swappable :class:`~mi_augment.perturbations.densities.Density` lives on ``z``.
``fit(data)`` = ``estimate(data)`` (per-observation parameters recovered from real footage) + ``density.fit``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..core.artifact import ArtifactError, expect_dict, expect_list, load_artifact, save_artifact
from ..core.params import Params
from ..core.random import sampling_device
from .densities import Density, GaussianMixtureDensity


@dataclass
class Estimates:
    """Output of ``estimate``: one row of unconstrained parameters per accepted observation."""

    vectors: Tensor  # (N, D)
    n_used: int
    n_rejected: int
    details: dict[str, Any] = field(default_factory=dict)  # JSON-able summary (reasons for rejection, ...)


class PerturbationModel:
    """Base class; subclasses set ``kind``, ``params_cls`` and implement the abstract methods."""

    kind: ClassVar[str] = "perturbation"
    params_cls: ClassVar[type[Params]] = Params
    format_version: ClassVar[int] = 1
    # Inclusive (low, high) bounds that loading enforces on integer config values before building the model,
    # for settings whose size drives allocation (e.g. a polynomial degree that sets the parameter count).
    config_limits: ClassVar[dict[str, tuple[int, int]]] = {}

    def __init__(self, density: Density | None = None, **config: Any):
        self.density = density if density is not None else GaussianMixtureDensity()
        self.config = dict(config)
        self.fit_info: dict[str, Any] = {}

    # ---- to implement ----
    @property
    def param_names(self) -> list[str]:
        """Names of the unconstrained vector's components (for summaries and docs)."""
        raise NotImplementedError

    def params_to_vector(self, params: Params) -> Tensor:
        raise NotImplementedError

    def params_from_vector(self, z: Tensor) -> Params:
        raise NotImplementedError

    def estimate(self, data: Any, progress: bool = False) -> Estimates:
        raise NotImplementedError

    def apply(self, images: Tensor, params: Params) -> Tensor:
        raise NotImplementedError

    # ---- shared ----
    @property
    def is_fitted(self) -> bool:
        try:
            self.density.dim  # noqa: B018 - raises when unfitted
        except RuntimeError:
            return False
        return True

    def fit(self, data: Any, progress: bool = False) -> PerturbationModel:
        est = self.estimate(data, progress=progress)
        if est.n_used < 2:
            raise ValueError(
                f"only {est.n_used} usable observations were found in the data ({est.n_rejected} rejected: "
                f"{est.details.get('rejected_reasons', {})}); need at least 2 to fit {type(self).__name__}"
            )
        self.density.fit(est.vectors)
        self.fit_info = {"n_used": est.n_used, "n_rejected": est.n_rejected, **est.details}
        self.estimates_ = est
        return self

    def _require_observations(self, estimates: Estimates) -> None:
        """Refuse to fit a density to fewer than 2 usable observations, saying why the others were dropped."""
        if estimates.n_used < 2:
            raise ValueError(f"only {estimates.n_used} usable observations were found in the data "
                             f"({estimates.n_rejected} rejected: {estimates.details.get('rejected_reasons', {})}); "
                             f"need at least 2 to fit {type(self).__name__}")

    def identity_params(self, n: int, device: Any = None) -> Params:
        """``n`` parameters that leave every image unchanged (the centre that ``strength`` scales about)."""
        raise NotImplementedError(f"{type(self).__name__} does not define identity_params, so it has no strength")

    def sample(self, n: int, generator: torch.Generator | None = None, device: Any = None,
               strength: float = 1.0) -> Params:
        """``n`` draws from the density.

        ``strength`` scales each draw's distance from the identity in the unconstrained vector space:
        ``z_id + strength * (z - z_id)`` with ``z_id = params_to_vector(identity_params(1))``. 0 gives the
        identity, 1 the fitted distribution (exactly, the same draws as without the argument), 2 twice as far
        from "no change"; the shape of the distribution (correlations between components, mixture weights)
        is kept. The same generator state gives the same underlying draws at every strength.

        A few draws on the CPU (``n <= FEW_DRAWS``: one image's views) from a density with ``sample_rows`` are
        computed on Python floats (:meth:`params_from_rows`): the same generator stream and components, the
        values within float32 rounding of the tensor computation that larger batches take.
        """
        strength = check_strength(strength)
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} has no fitted density; call fit(data) or use .default()")
        rows = self._few_rows(n, generator, device, strength)
        if rows is not None:
            return self.params_from_rows(rows)
        z = self.density.sample(n, generator=generator, device=device)
        if device is not None:
            z = z.to(device)
        if strength != 1.0:
            z_id = self.params_to_vector(self.identity_params(1, device=z.device)).to(z.dtype)
            z = z_id + strength * (z - z_id)
        return self.params_from_vector(z)

    def sample_views(self, batch: int, views: int, generator: torch.Generator | None = None, device: Any = None,
                     strength: float = 1.0) -> Params:
        """:meth:`sample` of ``batch * views`` draws as params ``(batch, views, ...)`` (sample-major: image ``i``'s
        view ``v`` is draw ``i * views + v``), what :func:`~mi_augment.pairs.plan.plan_candidates` draws for
        the views of a batch. One image's few draws are built in that shape (:meth:`params_from_rows`).

        Example:
            >>> from mi_augment.perturbations import MotionModel
            >>> MotionModel.default().sample_views(1, 2, torch.Generator().manual_seed(0)).translation.shape
            torch.Size([1, 2, 2])
        """
        strength = check_strength(strength)
        rows = self._few_rows(batch * views, generator, device, strength) if type(batch) is type(views) is int else None
        if rows is not None:
            return self.params_from_rows(rows, (batch, views))
        drawn = self.sample(batch * views, generator=generator, device=device, strength=strength)
        return drawn.map(lambda t: t.reshape(batch, views, *t.shape[1:]))

    def sample_view_rows(self, views: int, generator: torch.Generator | None = None,
                         strength: float = 1.0) -> list[dict[str, list]] | None:
        """One image's ``views`` draws of :meth:`sample_views` (``batch = 1``, on the CPU) as Python numbers, per
        field the list over the views of what ``params.<field>.tolist()[0]`` gives, without building params: the
        same draws and values. None (drawing nothing) where :meth:`sample_views` would not take its few-rows path
        (then call it).

        Example:
            >>> from mi_augment.perturbations import MotionModel
            >>> rows = MotionModel.default().sample_view_rows(2, torch.Generator().manual_seed(0))
            >>> len(rows["translation"]), len(rows["translation"][0])
            (2, 2)
        """
        strength = check_strength(strength)
        rows = self._few_rows(views, generator, None, strength) if type(views) is int else None
        return None if rows is None else self.fields_from_rows(rows)

    def fields_from_rows(self, rows: np.ndarray) -> dict[str, list]:
        """:meth:`params_from_rows` of float32 rows ``(N, D)`` as Python numbers: per field the ``N`` values
        ``params.<field>.tolist()`` gives. Models may compute it without tensors (the same values)."""
        return {name: t.tolist() for name, t in self.params_from_rows(rows).as_dict().items()}

    def _few_rows(self, n: Any, generator: torch.Generator | None, device: Any,
                  strength: float) -> np.ndarray | None:
        """One image's few draws (``n <= FEW_DRAWS`` on the CPU, a density with ``sample_rows``) as float32 rows
        ``(n, D)`` at ``strength``; None where :meth:`sample`'s tensor computation applies."""
        if not (type(n) is int and 0 < n <= FEW_DRAWS and callable(getattr(self.density, "sample_rows", None))
                and sampling_device(generator, device).type == "cpu"
                and (device is None or torch.device(device).type == "cpu")):
            return None
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} has no fitted density; call fit(data) or use .default()")
        draw = getattr(self.density, "sample_array", None)
        rows = draw(n, generator) if callable(draw) else np.asarray(self.density.sample_rows(n, generator), np.float32)
        return self._rows_at_strength(rows, strength)

    def _rows_at_strength(self, rows: np.ndarray, strength: float) -> np.ndarray:
        """``z_id + strength * (z - z_id)`` of :meth:`sample` on float32 rows ``(n, D)``, each operation in
        float32 as torch computes it (the Python scalar ``strength`` taken as float32)."""
        if strength == 1.0:
            return rows
        z_id = self.params_to_vector(self.identity_params(1)).numpy()[0].astype(np.float32)
        with np.errstate(over="ignore"):  # beyond float32's range: inf, as torch's
            return z_id + np.float32(strength) * (rows - z_id)

    def params_from_rows(self, rows: Any, shape: tuple[int, ...] | None = None) -> Params:
        """:meth:`params_from_vector` of vectors given as Python numbers (``N`` lists of ``D`` float32 values,
        e.g. :meth:`~mi_augment.perturbations.densities.GaussianMixtureDensity.sample_rows`, or a float32 array
        ``(N, D)``): how :meth:`sample` builds one image's few draws, with leading dims ``shape`` (default
        ``(N,)``). Models may compute it on Python floats (within float32 rounding of
        :meth:`params_from_vector`)."""
        params = self.params_from_vector(torch.as_tensor(np.asarray(rows, np.float32)))
        return params if shape is None else params.map(lambda t: t.reshape(*shape, *t.shape[1:]))

    def log_prob(self, params: Params) -> Tensor:
        return self.density.log_prob(self.params_to_vector(params))

    # ---- persistence ----
    def save(self, path: str | os.PathLike) -> Path:
        dmeta, dtensors = self.density.state()
        meta = {"config": self.config, "density": dmeta, "fit_info": _jsonable(self.fit_info)}
        return save_artifact(path, self.kind, self.format_version, meta, {f"density.{k}": v for k, v in dtensors.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> PerturbationModel:
        """Read a model written by :meth:`save`. The file is validated before anything is built: its size
        and nesting, the config (known keys, JSON scalars or short lists, ``config_limits``), the density
        (see :meth:`Density.from_state`) and that the density's dimension matches the model's parameter
        vector; any problem raises :class:`~mi_augment.core.artifact.ArtifactError` naming the file and field."""
        meta, tensors, _ = load_artifact(path, cls.kind, cls.format_version, max_bytes=MAX_MODEL_BYTES,
                                         max_elements=MAX_MODEL_ELEMENTS)
        meta = expect_dict(meta, path, "meta", keys=("config", "density", "fit_info"), required=("density",))
        config = _check_config(expect_dict(meta.get("config", {}), path, "meta.config"), cls.config_limits, path)
        unknown = sorted(k for k in tensors if not k.startswith("density."))
        if unknown:
            raise ArtifactError(f"{path}: unknown tensor(s) {unknown}; a model file holds only density.* tensors")
        dens = Density.from_state(meta["density"], {k[len("density."):]: v for k, v in tensors.items()}, path=path)
        if "draws" not in config and "draws" in inspect.signature(cls.__init__).parameters:
            config["draws"] = "changes"  # files from before the option were fitted on frame-to-frame changes
        try:
            model = cls(density=dens, **config)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ArtifactError(f"{path}: meta.config is not valid for {cls.__name__}: {exc}") from None
        try:
            expected = len(model.param_names)
        except NotImplementedError:
            expected = None
        if expected is not None and dens.dim != expected:
            raise ArtifactError(f"{path}: meta.density has {dens.dim} dimensions, but this {cls.__name__} "
                                f"configuration has {expected} parameters")
        model.fit_info = expect_dict(meta.get("fit_info", {}), path, "meta.fit_info")
        return model

    @classmethod
    def from_spec(cls, spec: Any, name: str = "model") -> PerturbationModel:
        """A model from what a user may pass: a model instance, ``"default"`` or the path of a saved model.

        Every class that takes a model (the natural transforms, :class:`~mi_augment.transforms.MIPairTransform`,
        the adapters) resolves its argument here, so each accepts the same three forms.

        Args:
            spec: an instance of this class (returned as is), ``"default"`` (:meth:`default`, the model shipped
                with the package) or a ``str`` / ``os.PathLike`` path of a file written by :meth:`save`.
            name: the argument's name, for error messages.

        Raises ``TypeError`` for anything else, and :class:`~mi_augment.core.artifact.ArtifactError` /
        ``FileNotFoundError`` for a file that is not a valid model of this class.

        Example:
            >>> from mi_augment.perturbations import IlluminationModel
            >>> type(IlluminationModel.from_spec("default")).__name__
            'IlluminationModel'
        """
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, PerturbationModel):
            raise TypeError(f"{name} must be a {cls.__name__}, got a {type(spec).__name__}")
        if isinstance(spec, str) and spec == "default":
            if cls.default is PerturbationModel.default:
                raise TypeError(f"{name}='default': {cls.__name__} ships no default model; call from_spec on a model class "
                                "(IlluminationModel, MotionModel) or pass a model")
            return cls.default()
        if isinstance(spec, (str, os.PathLike)):
            path = Path(spec)
            if not path.is_file():
                raise FileNotFoundError(f"{name}={str(path)!r}: no such file (expected a {cls.__name__}, "
                                        "'default' or the path of a file written by model.save)")
            return cls.load(path)
        raise TypeError(f"{name} must be a {cls.__name__}, 'default' (the shipped model) or the path of a saved "
                        f"model, got {type(spec).__name__}")

    @classmethod
    def default(cls) -> PerturbationModel:
        """The model shipped with the package (subclasses that ship one override this)."""
        raise NotImplementedError(f"{cls.__name__} ships no default model")

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({cfg}{', ' if cfg else ''}density={self.density!r})"


#: draws up to which :meth:`PerturbationModel.sample` computes on Python floats on the CPU (one image's views)
FEW_DRAWS = 8

# Caps for model files: a model is a few KB of JSON and a few small tensors.
MAX_MODEL_BYTES = 16 * 2**20
MAX_MODEL_ELEMENTS = 2**16
_MAX_CONFIG_INT = 2**31 - 1


def _check_config(config: dict[str, Any], limits: dict[str, tuple[int, int]], path: Any) -> dict[str, Any]:
    """Config values must be JSON scalars (finite numbers, strings, null) or short lists of them; integers
    named in ``limits`` must lie in their bounds, other integers in ``[-2**31 + 1, 2**31 - 1]``."""
    def scalar(value: Any, field: str) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, int):
            low, high = limits.get(field.split(".")[2].split("[")[0], (-_MAX_CONFIG_INT, _MAX_CONFIG_INT))
            if not low <= value <= high:
                raise ArtifactError(f"{path}: {field} must be an integer in [{low}, {high}], got {value}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ArtifactError(f"{path}: {field} must be finite, got {value}")
        elif isinstance(value, str):
            if len(value) > 256:
                raise ArtifactError(f"{path}: {field} is a string of {len(value)} characters (at most 256)")
        else:
            raise ArtifactError(f"{path}: {field} must be a number, string, boolean or null, "
                                f"got {type(value).__name__}")

    for key, value in config.items():
        field = f"meta.config.{key}"
        if isinstance(value, list):
            for i, item in enumerate(expect_list(value, path, field, 64)):
                scalar(item, f"{field}[{i}]")
        else:
            scalar(value, field)
    for key in limits:
        if key in config and (isinstance(config[key], bool) or not isinstance(config[key], int)):
            low, high = limits[key]
            raise ArtifactError(f"{path}: meta.config.{key} must be an integer in [{low}, {high}], "
                                f"got {str(config[key])[:60]!r}")
    return config


def check_strength(strength: Any, name: str = "strength") -> float:
    """``strength`` as a float, or a ``ValueError`` / ``TypeError`` naming what is wrong with it."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {type(strength).__name__} {strength!r}")
    value = float(strength)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0: identity, 1: as fitted), got {strength!r}")
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, float) and obj != obj:  # NaN is not valid JSON
        return None
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)
