"""``MotionModel``: camera motion between frames and the motion blur it implies, fitted to real video.

What one observation is
    For a frame pair ``(t, t+g)`` (``g`` in ``gaps``, default 1) of a clip without a hard cut in between:

    * the global motion of the camera as a *similarity* about the image centre: translation of the centre
      (a fraction of the longer image side, so the parameters are resolution independent), rotation and
      log scale (zoom). It is estimated from tracked corners with a forward-backward check and RANSAC
      (:func:`mi_augment.video.motion_estimation.estimate_global_motion`, called from
      :mod:`mi_augment.perturbations.fitting`), so independently moving objects end up as outliers;
    * the motion blur of the target frame: a straight streak ``exposure_fraction`` times the velocity of the
      image centre at frame ``t+g``, the velocity being the mean of the displacements of the pairs on either
      side of that frame (one-sided at clip ends and cuts). With a shutter open half the frame interval
      (``exposure_fraction=0.5``) a camera panning 4 px/frame smears each frame over 2 px.

    Hard cuts (:func:`mi_augment.video.cuts.detect_cuts`) and pairs that cannot be aligned are rejected and
    never counted as motion; ``fit_info`` says how many and why. The residual local motion (inlier
    reprojection error, median motion of the outliers relative to the camera) is reported in ``fit_info`` but
    not sampled: a global warp cannot render it.

The density (a Gaussian mixture, component count by BIC) lives on the unconstrained vector
``[100 dx, 100 dy, rotation in degrees, 100 log scale, 100 bx, 100 by]``: translation and blur in percent of the
longer side, the blur as a 2-D vector ``(bx, by) = length * (cos angle, sin angle)``. A vector rather than
``(log length, angle)`` because the angle is circular and a static camera's zero-length blur would pile up at
``log(eps)``; a streak and its reverse are the same kernel, so the sign of the vector does not matter.

``apply`` warps each image by its sampled similarity (reflection at the borders, no black corners) and then
blurs it with its own line kernel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.params import Params
from ..core.validation import check_positive_int, restore, to_float_batch
from ..functional.geometry import motion_blur, similarity_matrices
from ..functional.warp import warp_and_blur
from .base import Estimates, PerturbationModel
from .densities import Density, GaussianMixtureDensity, UniformDensity

__all__ = ["MotionModel", "MotionParams"]

_RADIANS = float(np.float32(math.pi / 180.0))  # torch's deg2rad constant, as float32
_PARAM_NAMES = ["translation_x_percent", "translation_y_percent", "rotation_degrees", "scale_percent",
                "blur_x_percent", "blur_y_percent"]


@dataclass(frozen=True)
class MotionParams(Params):
    """Per-sample camera motion and blur (leading dimension B).

    Attributes:
        translation: ``(B, 2)`` displacement ``(dx, dy)`` of the image centre, fraction of the longer side.
        rotation: ``(B, 1)`` radians, positive from +x towards +y (clockwise on screen).
        log_scale: ``(B, 1)`` natural log of the zoom factor.
        blur_length: ``(B, 1)`` motion-blur streak length, fraction of the longer side (>= 0).
        blur_angle: ``(B, 1)`` streak direction, radians.
    """

    translation: Tensor
    rotation: Tensor
    log_scale: Tensor
    blur_length: Tensor
    blur_angle: Tensor


def _percentiles(x: np.ndarray, qs: Sequence[float] = (5, 50, 95)) -> list[float]:
    return [float(v) for v in np.percentile(x, qs)] if x.size else [float("nan")] * len(qs)


#: each :class:`MotionParams` field's columns in :meth:`MotionModel.params_from_rows`' ``(N, 6)`` array
_FIELD_COLUMNS = (("translation", 0, 2), ("rotation", 2, 3), ("log_scale", 3, 4), ("blur_length", 4, 5),
                  ("blur_angle", 5, 6))


class MotionModel(PerturbationModel):
    """Natural camera motion (similarity warp + motion blur), estimated from real video.

    Args:
        density: density over the 6-D parameter vector (default: Gaussian mixture, components by BIC).
        exposure_fraction: shutter-open fraction of the frame interval used to turn velocity into blur.
        gaps: frame gaps of the pairs used as observations (``(1,)``: consecutive frames; ``(1, 2, 4)`` also
            learns the larger motions between frames further apart, composed from the consecutive pairs).
        max_side: clips are analysed on a copy whose longer side is at most this (the parameters are
            resolution independent; this only bounds time and memory).
        max_frames, stride: passed to :func:`mi_augment.video.read_video` for paths.
        reference_size: longer side in pixels at which :meth:`summary` reports pixel quantities.
        padding_mode: border handling of the warp, ``"reflection"`` (default), ``"border"`` or ``"zeros"``.
        draws: what one draw of the fitted density is. ``"views"`` (default): the state of one view, fitted so
            that two independent draws differ like two real frames (use it when every view is perturbed, as
            :class:`~mi_augment.transforms.MIPairTransform` does). ``"changes"``: one observed frame-to-frame
            change, for perturbing one image against its unperturbed original. See :meth:`fit_estimates`.
        min_consistent_share: a clip whose share of frame pairs (hard cuts aside) that one camera motion
            explains is below this is refused by :meth:`estimate`: its few "consistent" pairs are chance
            RANSAC fits (measured: 0-10 % on noise-only clips, 98-100 % on the real clips of DATA.md).
    """

    kind = "motion"
    params_cls = MotionParams
    format_version = 1

    def __init__(self, density: Density | None = None, *, exposure_fraction: float = 0.5,
                 gaps: Sequence[int] = (1,), max_side: int | None = 480, max_frames: int | None = None,
                 stride: int = 1, reference_size: int = 640, padding_mode: str = "reflection",
                 draws: str = "views", min_consistent_share: float = 0.25):
        if not (0.0 <= float(exposure_fraction) <= 1.0):
            raise ValueError(f"exposure_fraction must be in [0, 1], got {exposure_fraction!r}")
        gaps = sorted({check_positive_int(g, "gaps entry") for g in gaps})
        if not gaps:
            raise ValueError("gaps must hold at least one positive integer")
        if max_side is not None:
            check_positive_int(max_side, "max_side", minimum=16)
        if max_frames is not None:
            check_positive_int(max_frames, "max_frames", minimum=2)
        check_positive_int(stride, "stride")
        check_positive_int(reference_size, "reference_size")
        if padding_mode not in ("reflection", "border", "zeros"):
            raise ValueError(f"padding_mode must be 'reflection', 'border' or 'zeros', got {padding_mode!r}")
        if draws not in ("views", "changes"):
            raise ValueError(f"draws must be 'views' or 'changes', got {draws!r}")
        if isinstance(min_consistent_share, bool) or not isinstance(min_consistent_share, (int, float)) \
                or not 0.0 <= min_consistent_share <= 1.0:
            raise ValueError(f"min_consistent_share must be a number in [0, 1], got {min_consistent_share!r}")
        super().__init__(density=density, exposure_fraction=float(exposure_fraction), gaps=gaps,
                         max_side=max_side, max_frames=max_frames, stride=int(stride),
                         reference_size=int(reference_size), padding_mode=padding_mode, draws=draws,
                         min_consistent_share=float(min_consistent_share))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, max_translation: float = 0.05, max_rotation: float = 5.0,
                scale: tuple[float, float] = (0.95, 1.05), max_blur: float = 0.01, **config: Any) -> MotionModel:
        """The hand-tuned prior: independent uniforms, like ``torchvision.transforms.RandomAffine``.

        Args:
            max_translation: each of ``dx, dy`` uniform in ``[-max_translation, max_translation]`` (fraction of
                the longer side).
            max_rotation: rotation uniform in ``[-max_rotation, max_rotation]`` degrees.
            scale: zoom factor range ``(min, max)``, log-uniform.
            max_blur: each component of the blur vector uniform in ``[-max_blur, max_blur]`` (fraction of the
                longer side), so streaks are up to ``sqrt(2) * max_blur`` long, in any direction.
        """
        for value, name in ((max_translation, "max_translation"), (max_rotation, "max_rotation"),
                            (max_blur, "max_blur")):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        lo, hi = (float(s) for s in scale)
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"scale must be a (min, max) pair with 0 < min <= max, got {scale!r}")
        t, r, b = 100.0 * max_translation, float(max_rotation), 100.0 * max_blur
        low = [-t, -t, -r, 100.0 * math.log(lo), -b, -b]
        high = [t, t, r, 100.0 * math.log(hi), b, b]
        return cls(density=UniformDensity(low, high), **config)

    @classmethod
    def default(cls) -> MotionModel:
        """The model shipped with the package, fitted on real footage by ``scripts/fit_default_motion.py``."""
        from importlib.resources import as_file, files

        resource = files("mi_augment").joinpath("assets", "motion_default.json")
        with as_file(resource) as path:
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"the default motion model {path} is missing from this installation; re-create it with "
                    "`python scripts/fit_default_motion.py`"
                )
            return cls.load(path)

    # ------------------------------------------------------------------ parameter vectors
    @property
    def param_names(self) -> list[str]:
        return list(_PARAM_NAMES)

    def identity_params(self, n: int, device: Any = None) -> MotionParams:
        """``n`` parameters that leave every image unchanged (the centre that ``sample(strength=)`` scales about)."""
        zero = torch.zeros(n, 1, device=device)
        return MotionParams(translation=torch.zeros(n, 2, device=device), rotation=zero, log_scale=zero.clone(),
                            blur_length=zero.clone(), blur_angle=zero.clone())

    def params_to_vector(self, params: Params) -> Tensor:
        if not isinstance(params, MotionParams):
            raise TypeError(f"expected MotionParams, got {type(params).__name__}")
        bx = params.blur_length * torch.cos(params.blur_angle)
        by = params.blur_length * torch.sin(params.blur_angle)
        return torch.cat([100.0 * params.translation, torch.rad2deg(params.rotation), 100.0 * params.log_scale,
                          100.0 * bx, 100.0 * by], dim=1)

    def params_from_vector(self, z: Tensor) -> MotionParams:
        if z.ndim != 2 or z.shape[1] != 6:
            raise ValueError(f"motion parameter vectors must have shape (N, 6), got {tuple(z.shape)}")
        z = z.float()
        blur = z[:, 4:6] / 100.0
        # (linalg.vector_norm: Tensor.norm's own kernel, without its Python dispatch)
        return MotionParams(translation=z[:, 0:2] / 100.0, rotation=torch.deg2rad(z[:, 2:3]),
                            log_scale=z[:, 3:4] / 100.0, blur_length=torch.linalg.vector_norm(blur, dim=1, keepdim=True),
                            blur_angle=torch.atan2(blur[:, 1:2], blur[:, 0:1]))

    def params_from_rows(self, rows: Any, shape: tuple[int, ...] | None = None) -> MotionParams:
        """:meth:`params_from_vector` on float64 numpy for a few vectors (``N`` lists of 6 numbers, or a float32
        array ``(N, 6)``): the divisions and ``deg2rad`` of the float32 values rounded as torch's float32 ones
        (the same values), the blur's length and angle by ``math.hypot`` / ``math.atan2`` rounded to float32
        (torch's float32 kernels within an ulp). The fields share one ``(*shape, 6)`` array (``shape`` default
        ``(N,)``).

        Example:
            >>> MotionModel.default().params_from_rows([[100.0, 0.0, 0.0, 0.0, 0.0, 50.0]]).blur_length.tolist()
            [[0.5]]
        """
        out = self._field_array(rows)
        if shape is not None:
            out = out.reshape(*shape, 6)
        return MotionParams(*(torch.from_numpy(out[..., a:b]) for _, a, b in _FIELD_COLUMNS))

    def fields_from_rows(self, rows: np.ndarray) -> dict[str, list]:
        """:meth:`params_from_rows`' values as Python numbers (one ``tolist`` of its array, no tensor)."""
        out = self._field_array(rows).tolist()
        return {name: [r[a:b] for r in out] for name, a, b in _FIELD_COLUMNS}

    @staticmethod
    def _field_array(rows: Any) -> np.ndarray:
        """:meth:`params_from_rows`' fields side by side, float32 ``(N, 6)``."""
        try:
            z = np.asarray(rows, dtype=np.float32)  # float32 values, as params_from_vector's .float()
        except ValueError:
            z = None
        if z is None or z.ndim != 2 or z.shape[1] != 6:
            raise ValueError(f"motion parameter vectors must have 6 entries, got {[len(r) for r in rows]}")
        z = z.astype(np.float64)
        # dx, dy, log_scale, bx, by: a float32 value over 100 in float64, rounded once, is the float32 division
        q = (z[:, [0, 1, 3, 4, 5]] / 100.0).astype(np.float32)
        out = np.empty((z.shape[0], 6), np.float32)
        out[:, 0:2], out[:, 3] = q[:, 0:2], q[:, 2]
        out[:, 2] = z[:, 2] * _RADIANS  # deg2rad multiplies by the float32 constant (exact in float64, rounded)
        blur = q[:, 3:5].tolist()
        out[:, 4] = [math.hypot(bx, by) for bx, by in blur]
        out[:, 5] = [math.atan2(by, bx) for bx, by in blur]
        return out

    # ------------------------------------------------------------------ estimation
    def fit(self, data: Any, progress: bool = False) -> MotionModel:
        """Estimate the frame-to-frame motion in ``data`` (:meth:`estimate`) and fit the density to it
        (:meth:`fit_estimates`). Returns ``self``; raises ``ValueError`` with fewer than 7 observations
        (:func:`~mi_augment.perturbations.fitting.minimum_observations`), saying how many frame pairs were
        used and rejected, and why."""
        return self.fit_estimates(self.estimate(data, progress=progress))

    def fit_estimates(self, estimates: Estimates) -> MotionModel:
        """Fit the density to observed frame-to-frame changes (the output of :meth:`estimate`); returns ``self``.

        With ``draws="views"`` each draw is one view: the changes are made time-symmetric (a reversed pair
        negates the motion; a streak and its reverse are the same blur) and their camera part (translation,
        rotation, zoom) is scaled by ``1 / sqrt(2)`` about the identity, so the difference of two independent
        draws has the second moments of the observed changes (two views differ like two frames). The blur is
        kept as observed: it belongs to one frame (its own exposure), not to a change between two. With
        ``draws="changes"`` the density is fitted to the changes as observed.
        """
        from .fitting.provenance import check_observations, library_version, minimum_observations

        vectors = estimates.vectors
        check_observations(type(self).__name__, estimates.n_used, minimum_observations(len(self.param_names)),
                           estimates.n_rejected, estimates.details.get("rejected_reasons", {}))
        if self.config["draws"] == "views":
            # two iid draws differ by ~z2 - z1 (first order), of twice a draw's covariance: 1/sqrt(2) undoes it
            vectors = torch.cat([vectors, -vectors])
            vectors[:, :4] /= math.sqrt(2.0)
        self.density.fit(vectors)
        self.fit_info = {"n_used": estimates.n_used, "n_rejected": estimates.n_rejected,
                         "library_version": library_version(), **estimates.details}
        self.estimates_ = estimates
        return self

    def estimate(self, data: Any, progress: bool = False) -> Estimates:
        """Per-pair motion observations from video(s): see the module docstring and
        :func:`~mi_augment.perturbations.fitting.estimate_motion` (where the work, and the only use of
        :mod:`mi_augment.video`, lives).

        Args:
            data: a video path, a ``(T, C, H, W)`` tensor (uint8 or float in [0, 1]), a ``(T, H, W, C)`` uint8
                array, or a list of those (or an ``(N, T, C, H, W)`` tensor).
            progress: show a progress bar over clips.

        Returns:
            :class:`Estimates`, one row per usable pair and gap (the changes between real frames, whatever
            ``draws`` is). Raises ``ValueError`` naming the clip when less than ``min_consistent_share`` of
            its frame pairs (hard cuts aside) are consistent with one camera motion.
        """
        from .fitting.motion import estimate_motion

        return estimate_motion(self, data, progress=progress)

    # ------------------------------------------------------------------ rendering
    def apply(self, images: Any, params: MotionParams) -> Any:
        """Warp each image by its similarity, then blur it with its motion kernel.

        ``images``: ``[B, C, H, W]`` or ``[C, H, W]`` (float in [0, 1] or uint8); returned as the same type.
        Translations and blur lengths scale with the longer side of the images.
        """
        if not isinstance(params, MotionParams):
            raise TypeError(f"params must be MotionParams, got {type(params).__name__}")
        x, spec = to_float_batch(images, "images", channels=(1, 3))
        params.check_batch(x.shape[0])
        for name, value in params.as_dict().items():
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"params.{name} contains NaN or inf values")
        return restore(self._apply_float(x, params), spec)

    def _apply_float(self, x: Tensor, params: MotionParams) -> Tensor:
        """:meth:`apply` on a validated float batch ``[B, C, H, W]`` with finite params (no input checks)."""
        b, _, h, w = x.shape
        p = params.to(x.device)
        length = p.blur_length.reshape(-1).clamp_min(0) * float(max(h, w))
        return warp_and_blur(x, self.warp_matrices(p, h, w), length, p.blur_angle.reshape(-1),
                             padding_mode=self.padding_mode)

    @property
    def padding_mode(self) -> str:
        """How :meth:`apply`'s warp fills what comes from outside the image (``"reflection"`` by default)."""
        return self.config["padding_mode"]

    def apply_after_warp(self, images: Tensor, params: MotionParams) -> Tensor:
        """What :meth:`apply` does after its warp (the motion blur), for renderers that fold the warp
        (:meth:`warp_matrices`) into their own sampling, as :class:`~mi_augment.transforms.MIPairTransform`
        does: ``apply(x, p)`` is ``apply_after_warp(warp_homography(x, warp_matrices(p, h, w),
        padding_mode=padding_mode), p)``.

        Args:
            images: ``[B, C, H, W]`` float, already warped.
            params: the draws, ``MotionParams`` with leading dim ``B``.

        Shape:
            - Output: ``[B, C, H, W]``, a new tensor.

        Example:
            >>> model = MotionModel.default()
            >>> model.apply_after_warp(torch.rand(2, 3, 16, 16), model.identity_params(2)).shape
            torch.Size([2, 3, 16, 16])
        """
        if not isinstance(params, MotionParams):
            raise TypeError(f"params must be MotionParams, got {type(params).__name__}")
        h, w = images.shape[-2:]
        params.check_batch(images.shape[0])
        p = params.to(images.device)
        return motion_blur(images, p.blur_length.reshape(-1).clamp_min(0) * float(max(h, w)),
                           p.blur_angle.reshape(-1))

    def warp_matrices(self, params: MotionParams, height: int, width: int) -> Tensor:
        """Each draw's similarity as ``(B, 3, 3)`` float64 pixel matrices, input to output, for images of
        ``height x width`` (the warp :meth:`apply` renders before its blur; boxes and points move by it)."""
        return similarity_matrices(params.log_scale.to(torch.float64), params.rotation.to(torch.float64),
                                   params.translation.to(torch.float64), height, width)

    # ------------------------------------------------------------------ rendering in a pair
    def to_view_frame(self, params: MotionParams, zoom: Tensor) -> MotionParams:
        """``params`` drawn for a whole image, for a view that enlarges a crop ``zoom`` times (``(B, V)``
        image side / crop side): translations and blur lengths are fractions of the image they are applied
        to, so they scale by ``zoom`` to move and smear the same number of scene pixels in the view."""
        factor = zoom.unsqueeze(-1).to(params.translation.dtype)
        return dataclasses.replace(params, translation=params.translation * factor,
                                   blur_length=params.blur_length * factor)

    # ------------------------------------------------------------------ reporting
    def summary(self, n: int = 20000, reference_size: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Fitted ranges from ``n`` samples of the density: 5th / 50th / 95th percentiles of the translation
        (px per frame at ``reference_size``, the longer side; default the config's), its magnitude, rotation
        (degrees), zoom (percent) and blur length (px), plus the fit's bookkeeping."""
        ref = float(reference_size or self.config["reference_size"])
        params = self.sample(n, generator=torch.Generator().manual_seed(seed))
        tx = params.translation[:, 0].numpy() * ref
        ty = params.translation[:, 1].numpy() * ref
        out: dict[str, Any] = {
            "reference_size": int(ref),
            "n_samples": n,
            "translation_x_px": _percentiles(tx),
            "translation_y_px": _percentiles(ty),
            "translation_magnitude_px": _percentiles(np.hypot(tx, ty)),
            "rotation_deg": _percentiles(np.degrees(params.rotation[:, 0].numpy())),
            "scale_percent": _percentiles(100 * np.expm1(params.log_scale[:, 0].numpy())),
            "blur_length_px": _percentiles(params.blur_length[:, 0].numpy() * ref),
        }
        if isinstance(self.density, GaussianMixtureDensity):
            out["components"] = self.density.components
        for key in ("n_used", "n_pairs_used", "n_rejected", "rejected_reasons"):
            if key in self.fit_info:
                out[key] = self.fit_info[key]
        return out
