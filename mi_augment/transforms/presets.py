"""Per-view pipelines of the standard contrastive recipes, for :class:`~mi_augment.transforms.MIPairTransform`'s
presets (``MIPairTransform.simclr`` / ``.byol`` / ``.moco_v3``): everything a view gets after its crop and flip.

* SimCLR (Chen et al. 2020): colour jitter (0.8 strength s: brightness, contrast, saturation ``0.8 s``, hue
  ``0.2 s``; with ``s = 0.5`` that is torchvision's usual ``ColorJitter(0.4, 0.4, 0.4, 0.1)``) with p 0.8,
  grayscale p 0.2, Gaussian blur p 0.5 (sigma 0.1-2, kernel a tenth of the view) on ImageNet-sized views only.
* BYOL (Grill et al. 2020), also MoCo v3's recipe (Chen et al. 2021): jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
  grayscale p 0.2; view 0: blur p 1.0, no solarize; view 1: blur p 0.1, solarize p 0.2.
"""

from __future__ import annotations

from .photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize

__all__ = ["byol_views", "simclr_views"]


def _side(size: int | tuple[int, int]) -> int:
    return min(size) if isinstance(size, (tuple, list)) else int(size)


def simclr_views(size: int | tuple[int, int], *, jitter: float = 0.4, blur: bool | None = None) -> list:
    """One pipeline for both views: jitter ``(jitter, jitter, jitter, jitter / 4)`` p 0.8, grayscale p 0.2, and
    Gaussian blur p 0.5 when ``blur`` (None: only for views larger than 64 px, as the paper does for
    ImageNet but not CIFAR)."""
    pipeline = [ColorJitter(jitter, jitter, jitter, jitter / 4, p=0.8), RandomGrayscale(p=0.2)]
    if blur if blur is not None else _side(size) > 64:
        pipeline.append(GaussianBlur(sigma=(0.1, 2.0), p=0.5))
    return pipeline


def byol_views(size: int | tuple[int, int]) -> list[list]:
    """Two pipelines, one per view (BYOL's asymmetric blur and solarisation)."""
    def common() -> list:
        return [ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8), RandomGrayscale(p=0.2)]

    return [common() + [GaussianBlur(sigma=(0.1, 2.0), p=1.0)],
            common() + [GaussianBlur(sigma=(0.1, 2.0), p=0.1), RandomSolarize(0.5, p=0.2)]]
