"""Vectorised RandomResizedCrop boxes: many candidates per image in one call, no Python retry loop.

The distribution follows torchvision's ``RandomResizedCrop``: the area fraction is uniform in ``scale``, the
aspect ratio is log-uniform in ``ratio``, a draw is kept when the box fits in the image, and the position is
uniform over the places where it fits. torchvision tries 10 times in a Python loop; here all tries are drawn as
one tensor and the first that fits is kept. When none fits (rare unless the bounds barely fit the image), the
last try is moved to the nearest box that satisfies the bounds, so the bounds hold whenever they can be met.
Only if no box of the image can meet them (e.g. ``scale=(1, 1)`` with a ratio far from the image's), the
largest box inside the image with the ratio closest to the allowed range is used, as torchvision does.

Boxes are continuous ``(x1, y1, x2, y2)`` in pixels (sub-pixel sizes, so the bounds hold exactly rather than
after rounding) and always satisfy ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core.options import current
from ..core.random import as_float32s, rand
from ..core.validation import check_positive_int, check_range

__all__ = ["BoxSampler", "box_iou_pairs"]


@dataclass(frozen=True)
class BoxSampler:
    """Draw crop boxes with RandomResizedCrop semantics.

    Args:
        scale: range of the box area as a fraction of the image area, ``0 < min <= max <= 1``.
        ratio: range of the aspect ratio ``width / height``, ``0 < min <= max``.
        tries: draws per box made at once (torchvision makes up to 10, one at a time).
    """

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    tries: int = 10

    def __post_init__(self):
        s = check_range(self.scale, "scale", 0.0, 1.0)
        if s[0] <= 0.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {self.scale!r}")
        r = check_range(self.ratio, "ratio", 0.0)
        if r[0] <= 0.0:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {self.ratio!r}")
        object.__setattr__(self, "scale", s)
        object.__setattr__(self, "ratio", r)
        object.__setattr__(self, "tries", check_positive_int(self.tries, "tries"))

    @property
    def draws_per_box(self) -> int:
        """The uniforms one box takes: ``2 * tries + 2`` (area and ratio per try, then the position)."""
        return 2 * self.tries + 2

    def sample(self, shape: tuple[int, ...], height: int, width: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> Tensor:
        """Boxes of shape ``(*shape, 4)`` for an image of ``height x width`` pixels.

        Uses exactly ``prod(shape) * draws_per_box`` uniform draws from ``generator`` (a fixed count, so
        later draws from the same generator do not depend on which tries were accepted).
        """
        u = rand((math.prod(shape), self.draws_per_box), generator, device)
        return self.boxes_from_uniforms(u, shape, height, width)

    def boxes_from_uniforms(self, u: Tensor, shape: tuple[int, ...], height: int, width: int) -> Tensor:
        """The boxes ``(*shape, 4)`` of :meth:`sample` from its uniform draws ``u (prod(shape), draws_per_box)``
        (float32 in [0, 1), e.g. a slice of a larger ``rand`` call: the same numbers as :meth:`sample` draws).

        Example:
            >>> s = BoxSampler()
            >>> u = torch.rand(6, s.draws_per_box)
            >>> s.boxes_from_uniforms(u, (2, 3), 32, 48).shape
            torch.Size([2, 3, 4])
        """
        height = check_positive_int(height, "height")
        width = check_positive_int(width, "width")
        if u.shape[0] <= 64 and u.device.type == "cpu" and current().fast_paths:  # a DataLoader worker's boxes
            return self._from_uniform_small(u, height, width).view(*shape, 4)
        return self._from_uniform(u, height, width).view(*shape, 4)

    def _bounds(self, height: int, width: int) -> tuple[float, float, float, float, float, float]:
        """``(lo_area, hi_area, lo_log, hi_log, feas_lo, feas_hi)``: the area bounds in pixels, the log ratio
        bounds, and the feasible log ratio interval (empty when ``feas_lo > feas_hi``, see :meth:`_project`)."""
        return _bounds(self.scale, self.ratio, height, width)

    def _from_uniform(self, u: Tensor, height: int, width: int) -> Tensor:
        """The boxes ``(n, 4)`` of :meth:`sample` from its uniform draws ``u (n, 2 * tries + 2)``."""
        t = self.tries
        u = u.double()  # float64: exact bounds for tiny boxes
        lo_area, hi_area, lo_log, hi_log, feas_lo, feas_hi = self._bounds(height, width)

        area = lo_area + (hi_area - lo_area) * u[:, :t]
        log_r = lo_log + (hi_log - lo_log) * u[:, t:2 * t]
        r = log_r.exp()
        fits = ((area * r).sqrt() <= width) & ((area / r).sqrt() <= height)
        # the first try that fits, else the last one (argmax finds the first maximum)
        first = torch.where(fits.any(1), fits.byte().argmax(1), t - 1)[:, None]
        # x and y together: (n, 2) tensors, the same arithmetic per axis in half the calls
        side = torch.tensor([float(width), float(height)], dtype=u.dtype, device=u.device)
        wh = self._project(area.gather(1, first)[:, 0], log_r.gather(1, first)[:, 0], height, width, side, lo_area,
                           hi_area, lo_log, hi_log, feas_lo, feas_hi)
        xy1 = (side - wh).clamp_min(0) * u[:, 2 * t:]
        return torch.cat([xy1, torch.minimum(xy1 + wh, side)], 1).float()

    def _from_uniform_small(self, u: Tensor, height: int, width: int) -> Tensor:
        """:meth:`_from_uniform` for a few boxes on the CPU (one image's, in a DataLoader worker): the same
        float64 arithmetic by numpy (IEEE operations in the same order) instead of ~40 tiny
        tensor ops; the two ``exp`` and the ``sqrt`` stay torch calls (numpy's differ in the last bit). Bounds that cannot be met and other devices take :meth:`_from_uniform`."""
        t = self.tries
        bounds = self._bounds(height, width)
        lo_area, hi_area, lo_log, hi_log, feas_lo, feas_hi = bounds
        if feas_lo > feas_hi or u.device.type != "cpu":
            return self._from_uniform(u, height, width)
        if u.shape[0] <= 16:  # one image's boxes (K = 8, 2 views): plain Python floats beat numpy's per-call overhead
            return self._from_uniform_python(u, height, width, bounds)
        ud = u.numpy().astype(np.float64)  # float32 values, exactly (as .double())
        area = lo_area + (hi_area - lo_area) * ud[:, :t]
        log_r = lo_log + (hi_log - lo_log) * ud[:, t:2 * t]  # a new contiguous (n, t) array, as in torch
        r = torch.from_numpy(log_r).exp().numpy()
        fits = (_torch_sqrt(area * r) <= width) & (_torch_sqrt(area / r) <= height)
        first = np.where(fits.any(1), fits.argmax(1), t - 1)  # the first try that fits, else the last
        rows = np.arange(len(first))
        area = area[rows, first]
        log_r = np.minimum(np.maximum(log_r[rows, first], feas_lo), feas_hi)
        r = torch.from_numpy(log_r).exp().numpy()  # the (n,) exp of _project
        max_area = np.minimum(np.minimum((1.0 / r) * width**2, height**2 * r), hi_area)  # torch's int / r
        area = np.minimum(np.maximum(area, lo_area), max_area)
        side = np.array([float(width), float(height)])
        wh = np.minimum(_torch_sqrt(np.stack([area * r, area / r], 1)), side)
        xy1 = np.maximum(side - wh, 0.0) * ud[:, 2 * t:]
        boxes = np.concatenate([xy1, np.minimum(xy1 + wh, side)], 1).astype(np.float32)  # rounded, as .float()
        return torch.from_numpy(boxes)

    def _from_uniform_python(self, u: Tensor, height: int, width: int,
                             bounds: tuple[float, float, float, float, float, float]) -> Tensor:
        """:meth:`_python_boxes` of a tensor's draws, as the ``(n, 4)`` float32 tensor."""
        flat = self._python_boxes(u.reshape(-1).tolist(), height, width, bounds)
        if flat is None:  # draws outside [0, 1): the tensor form's values (NaN, inf)
            return self._from_uniform(u, height, width)
        return torch.from_numpy(np.array(flat, np.float32).reshape(-1, 4))  # rounded to nearest, as .float() does

    def box_rows(self, u: Sequence[float], height: int, width: int) -> list[list[float]]:
        """The boxes of :meth:`boxes_from_uniforms` as Python numbers, one ``[x1, y1, x2, y2]`` per box (the
        float32 values), from the draws ``u`` as a flat sequence of ``n * draws_per_box`` floats (a ``rand``
        call's ``.tolist()``): one image's boxes without a tensor. Up to 16 feasible boxes on the fast paths
        it is the Python form every one-image call uses; else :meth:`boxes_from_uniforms` itself.

        Example:
            >>> s = BoxSampler()
            >>> rows = s.box_rows(torch.rand(2 * s.draws_per_box).tolist(), 32, 48)
            >>> len(rows), len(rows[0])
            (2, 4)
        """
        height = check_positive_int(height, "height")
        width = check_positive_int(width, "width")
        per = self.draws_per_box
        if len(u) % per:
            raise ValueError(f"u must hold a multiple of draws_per_box = {per} numbers, got {len(u)}")
        n, bounds = len(u) // per, self._bounds(height, width)
        if n <= 16 and current().fast_paths and bounds[4] <= bounds[5]:
            flat = self._python_boxes(list(u), height, width, bounds)  # float32 values, as .float() gives
            if flat is not None:
                return [flat[i:i + 4] for i in range(0, len(flat), 4)]
        draws = torch.tensor(list(u), dtype=torch.float32).view(n, per)
        if n <= 16:  # (the tensor form itself: draws outside [0, 1) give its NaN / inf, not math's errors)
            return self._from_uniform(draws, height, width).tolist()
        return self.boxes_from_uniforms(draws, (n,), height, width).tolist()

    def _python_boxes(self, flat: list[float], height: int, width: int,
                      bounds: tuple[float, float, float, float, float, float]) -> list[float] | None:
        """:meth:`_from_uniform_small` on Python floats: :func:`_boxes_by_math` (no torch call), or where it cannot
        vouch for a value, :meth:`_python_boxes_torch` rounded to float32. Both give the float32 boxes of
        :meth:`_from_uniform` (as one flat list); None for draws outside [0, 1) that ``math`` refuses (the caller
        then takes :meth:`_from_uniform`)."""
        try:
            out = _boxes_by_math(flat, self.tries, height, width, bounds)  # rounded already
            if out is None:
                out = list(as_float32s(self._python_boxes_torch(flat, height, width, bounds)))
            return out
        except (ValueError, OverflowError):  # draws outside [0, 1) (a caller's own numbers): math's sqrt / exp
            return None  # refuse them; the caller takes the tensor form (torch's NaN / inf)

    def _python_boxes_torch(self, flat: list[float], height: int, width: int,
                            bounds: tuple[float, float, float, float, float, float]) -> list[float]:
        """:meth:`_from_uniform_small` on Python floats (IEEE float64 operations, the same order) with one
        torch ``exp`` and one torch ``sqrt``: torch's float64 ``exp`` and ``sqrt`` are one vectorised function
        per element whatever its place in the tensor, so the ``(n,)`` exp of the clamped ratio (a try's own log
        ratio, ``feas_lo`` or ``feas_hi``) is read from the ``(n, t)`` exp with ``feas_lo`` and ``feas_hi``
        appended, and the sides are one ``sqrt`` call (torch's float64 ``sqrt`` is not always correctly rounded:
        1 ulp from ``math.sqrt`` in ~0.7% of values); whether a try fits is decided by ``math.sqrt`` unless a
        side lies within a relative ``2 ** -50`` of its bound (then by torch's ``sqrt``). Used up to 16 boxes
        (K = 8 candidates of 2 views): in a whole call it beats the numpy form's ~40 calls.
        tests/test_one_image_overhead.py holds the properties and the boxes against :meth:`_from_uniform`."""
        t = self.tries
        lo_area, hi_area, lo_log, hi_log, feas_lo, feas_hi = bounds  # flat: float32 values, exact as float64
        step, span, per = hi_log - lo_log, hi_area - lo_area, 2 * t + 2
        starts = range(0, len(flat), per)
        logs = [lo_log + step * v for i in starts for v in flat[i + t:i + 2 * t]]
        logs += (feas_lo, feas_hi)
        exps = torch.from_numpy(np.array(logs)).exp_().tolist()  # torch's exp (numpy's differs in the last bit)
        fw, fh, ww, hh = float(width), float(height), width**2, height**2
        # a side below lo_* fits and one above hi_* does not, whichever of math.sqrt and torch's sqrt (within
        # 1 ulp of each other: 1 ulp of a side near its bound is below bound * 2 ** -51) computed it
        lo_w, hi_w, lo_h, hi_h = fw * (1 - 2.0**-50), fw * (1 + 2.0**-50), fh * (1 - 2.0**-50), fh * (1 + 2.0**-50)
        sqrt, chosen_ar = math.sqrt, []
        for j, i in enumerate(starts):
            chosen = t - 1  # the first try that fits, else the last one
            for k in range(t):
                a, r = lo_area + span * flat[i + k], exps[j * t + k]
                bw, bh = sqrt(a * r), sqrt(a / r)
                if bw <= lo_w and bh <= lo_h:
                    chosen = k
                    break
                if bw > hi_w or bh > hi_h:
                    continue
                if _sqrt_at_most(a * r, width) and _sqrt_at_most(a / r, height):  # near a bound: torch's sqrt decides
                    chosen = k
                    break
            a, lr = lo_area + span * flat[i + chosen], logs[j * t + chosen]
            r = exps[-2] if lr < feas_lo else exps[-1] if lr > feas_hi else exps[j * t + chosen]  # exp of the clamp
            a = _clamped_area(a, r, lo_area, hi_area, ww, hh)
            chosen_ar += (a * r, a / r)
        sides = torch.from_numpy(np.array(chosen_ar)).sqrt_().tolist()  # torch's sqrt, as _project's
        out = []
        for j, i in enumerate(starts):
            bw, bh = sides[2 * j], sides[2 * j + 1]
            bw, bh = (bw if bw < fw else fw), (bh if bh < fh else fh)  # min(side, W): the same value
            x1, y1 = (fw - bw) * flat[i + 2 * t], (fh - bh) * flat[i + 2 * t + 1]  # fw - bw >= 0 now
            x2, y2 = x1 + bw, y1 + bh
            out += (x1, y1, x2 if x2 < fw else fw, y2 if y2 < fh else fh)
        return out

    @staticmethod
    def _project(area: Tensor, log_r: Tensor, height: int, width: int, side: Tensor, lo_area: float,
                 hi_area: float, lo_log: float, hi_log: float, feas_lo: float, feas_hi: float) -> Tensor:
        """Move (area, log ratio) to the nearest point whose box fits the image and meets the bounds.

        A box of area ``a`` and ratio ``r`` fits when ``a <= W^2 / r`` and ``a <= H^2 r``. For the smallest
        allowed area to fit, ``r`` must lie in ``[lo_area / H^2, W^2 / lo_area]``; intersected with the ratio
        range that is the feasible ratio interval. Draws that already fit are unchanged by the clamps.
        Returns the boxes' ``(width, height)`` as ``(n, 2)``, at most ``side`` (the image's ``(W, H)``).
        """
        if feas_lo <= feas_hi:
            log_r = log_r.clamp(feas_lo, feas_hi)
            r = log_r.exp()
            max_area = torch.minimum(width**2 / r, height**2 * r).clamp_max(hi_area)
            area = torch.minimum(area.clamp_min(lo_area), max_area)
        else:  # the bounds cannot be met: largest box inside the image, ratio as close to the range as possible
            image_log = math.log(width / height)
            log_r = torch.full_like(log_r, min(max(image_log, lo_log), hi_log))
            r = log_r.exp()
            area = torch.minimum(width**2 / r, height**2 * r)
        return torch.stack([area * r, area / r], 1).sqrt().clamp(max=side)


#: how far (relative) a box side must lie from the image side for ``math``'s exp and sqrt to decide whether it fits as
#: torch's do: theirs are within 2 ulp (2 ** -51) of each other, carried to the side within 2 ** -50
_DECIDED = 2.0 ** -46


def _boxes_by_math(flat: list[float], tries: int, height: int, width: int,
                   bounds: tuple[float, float, float, float, float, float]) -> list[float] | None:
    """:meth:`BoxSampler._python_boxes_torch`'s boxes with ``math.exp`` and ``math.sqrt`` instead of torch's
    vectorised float64 ``exp`` and ``sqrt`` (two torch calls, each tens of microseconds in a DataLoader worker's
    call, where the interpreter's and torch's code is out of cache): the float32 boxes, or None where a result
    cannot be vouched for, so the caller computes with torch.

    Why the float32 boxes are torch's: the two ``exp`` agree within 2 ulp (each within 1 ulp of the true value) and
    the two ``sqrt`` within 1 ulp, so every float64 side differs from torch's by less than ``2 ** -50`` of the image
    side and every coordinate by less than ``2 ** -48`` of it (the other operations are the same IEEE operations,
    and min / max / clamps are continuous). A try's fit is decided here only when its sides lie ``2 ** -46``
    (relative) inside or outside the image; each coordinate is kept only when everything within ``2 ** -46`` of
    the image's side around it rounds to one float32 value (a side clamped to the image's is exact: its box spans
    the image; about one square image's K = 8 call in 500 falls back, more with ratios that often fill the image).
    tests/test_one_image_overhead.py holds the boxes against :meth:`BoxSampler._from_uniform`,
    the fallbacks included."""
    lo_area, hi_area, lo_log, hi_log, feas_lo, feas_hi = bounds
    step, span, per = hi_log - lo_log, hi_area - lo_area, 2 * tries + 2
    fw, fh, ww, hh = float(width), float(height), width**2, height**2
    in_w, out_w, in_h, out_h = fw * (1 - _DECIDED), fw * (1 + _DECIDED), fh * (1 - _DECIDED), fh * (1 + _DECIDED)
    exp, sqrt, out, err, e = math.exp, math.sqrt, [], [], _DECIDED * max(fw, fh)
    for i in range(0, len(flat), per):
        chosen = tries - 1  # the first try that fits, else the last one
        for k in range(tries):
            a, r = lo_area + span * flat[i + k], exp(lo_log + step * flat[i + tries + k])
            bw, bh = sqrt(a * r), sqrt(a / r)
            if bw <= in_w and bh <= in_h:
                chosen = k
                break
            if not (bw > out_w or bh > out_h):
                return None  # a side within 2 ** -46 of the image's: too close to call here
        a, lr = lo_area + span * flat[i + chosen], lo_log + step * flat[i + tries + chosen]
        r = exp(feas_lo if lr < feas_lo else feas_hi if lr > feas_hi else lr)  # exp of the clamped log ratio
        a = _clamped_area(a, r, lo_area, hi_area, ww, hh)
        bw, bh = sqrt(a * r), sqrt(a / r)
        if in_w < bw <= out_w or in_h < bh <= out_h:
            return None  # a side within 2 ** -46 of the image's: is it clamped to the image in torch's?
        # a side clamped to the image's is exactly the image's in both (its box then spans 0 to the side, exactly)
        ex, ey = bw > out_w, bh > out_h
        bw, bh = (fw if ex else bw), (fh if ey else bh)
        x1, y1 = (fw - bw) * flat[i + 2 * tries], (fh - bh) * flat[i + 2 * tries + 1]
        x2, y2 = x1 + bw, y1 + bh
        box = (x1, y1, x2 if x2 < fw else fw, y2 if y2 < fh else fh)
        out += box
        err += (0.0 if ex else e, 0.0 if ey else e) * 2
    # a coordinate is torch's float32 value when its whole error interval rounds to one float32 (rounding is monotone)
    n = len(out)
    ends = as_float32s([v - d for v, d in zip(out, err)] + [v + d for v, d in zip(out, err)])
    return list(ends[:n]) if ends[:n] == ends[n:] else None


def _clamped_area(a: float, r: float, lo_area: float, hi_area: float, ww: int, hh: int) -> float:
    """:meth:`BoxSampler._project`'s area on Python floats: ``max_area = min((1 / r) * W^2, H^2 r, hi_area)``
    (torch's ``int / r``: reciprocal, then times), then ``a`` clamped to ``[lo_area, max_area]``, written as
    comparisons (no NaN here): the same values as torch's ``min`` / ``max``. ``ww``, ``hh``: ``W^2``, ``H^2``."""
    max_area = (1.0 / r) * ww
    if hh * r < max_area:
        max_area = hh * r
    if hi_area < max_area:
        max_area = hi_area
    if a < lo_area:
        a = lo_area
    return max_area if max_area < a else a


def _torch_sqrt(x: np.ndarray) -> np.ndarray:
    """torch's float64 ``sqrt`` of a numpy array (numpy's is correctly rounded, torch's not always)."""
    return torch.from_numpy(x).sqrt_().numpy()


def _sqrt_at_most(x: float, bound: int) -> bool:
    """Whether torch's float64 ``sqrt(x) <= bound``: ``math.sqrt`` decides unless the integer ``bound`` is
    within 1 ulp of it (torch's sqrt is within 1 ulp of the correctly rounded one), then torch's ``sqrt``."""
    root = math.sqrt(x)
    if abs(root - bound) > math.ulp(root):
        return root <= bound
    return torch.tensor([x], dtype=torch.float64).sqrt().item() <= bound


@functools.lru_cache(maxsize=256)
def _bounds(scale: tuple[float, float], ratio: tuple[float, float], height: int,
            width: int) -> tuple[float, float, float, float, float, float]:
    """:meth:`BoxSampler._bounds`, once per sampler bounds and image size (a dataset's few sizes)."""
    image_area = float(height * width)
    lo_area, hi_area = scale[0] * image_area, scale[1] * image_area
    lo_log, hi_log = math.log(ratio[0]), math.log(ratio[1])
    feas_lo = max(lo_log, math.log(lo_area / height**2))
    feas_hi = min(hi_log, math.log(width**2 / lo_area))
    return lo_area, hi_area, lo_log, hi_log, feas_lo, feas_hi


def box_iou_pairs(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of matching boxes ``a[..., 4]`` and ``b[..., 4]`` -> ``[...]``."""
    ax1, ay1, ax2, ay2 = a.unbind(-1)  # one call instead of an indexing per use
    bx1, by1, bx2, by2 = b.unbind(-1)
    iw = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp_min(0)
    ih = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp_min(0)
    inter = iw * ih
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    return inter / (area_a + area_b - inter).clamp_min(1e-12)
