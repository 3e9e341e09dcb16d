"""The one definition of each self-supervised method's views: what a view gets after its crop and flip.

Every user of a method's views builds them here: :class:`~mi_augment.transforms.MIPairTransform`'s presets
(``.simclr`` / ``.byol`` / ``.moco_v3``) and the recipes' ``--augment`` arms (:mod:`mi_augment.ssl.views`),
so the baseline and the MI arm of a comparison differ only in how the crop pair is chosen.

* SimCLR (Chen et al. 2020), also SimSiam's (Chen & He 2021): colour jitter (brightness, contrast,
  saturation ``jitter``, hue ``jitter / 4``; 0.4 is torchvision's usual ``ColorJitter(0.4, 0.4, 0.4, 0.1)``)
  with p 0.8, grayscale p 0.2, Gaussian blur p 0.5 (sigma 0.1-2 px) on both views.
* BYOL (Grill et al. 2020), also Barlow Twins', VICReg's and MoCo v3's: jitter (0.4, 0.4, 0.2, 0.1) p 0.8,
  grayscale p 0.2; view 0: blur p 1.0, no solarize; view 1: blur p 0.1, solarize p 0.2.

Blur is on for views of at least :data:`BLUR_MIN_SIZE` px only: the papers blur ImageNet-sized views, and
the CIFAR recipes (SimCLR's appendix, solo-learn) leave it out for 32 px images.
"""

from __future__ import annotations

from .photometric import ColorJitter, GaussianBlur, RandomGrayscale, RandomSolarize

__all__ = ["BLUR_MIN_SIZE", "METHOD_VIEWS", "blur_applies", "byol_views", "method_views", "simclr_views"]

#: views whose shorter side is at least this many pixels are blurred (smaller ones are not)
BLUR_MIN_SIZE = 64


def _side(size: int | tuple[int, int]) -> int:
    return min(size) if isinstance(size, (tuple, list)) else int(size)


def blur_applies(size: int | tuple[int, int]) -> bool:
    """Whether a method's views of ``size`` get Gaussian blur: shorter side ``>= BLUR_MIN_SIZE``.

    Example:
        >>> blur_applies(32), blur_applies(64), blur_applies((96, 48))
        (False, True, False)
    """
    return _side(size) >= BLUR_MIN_SIZE


def simclr_views(size: int | tuple[int, int], *, jitter: float = 0.4, blur: bool | None = None,
                 color_jitter: bool = True) -> list:
    """SimCLR's pipeline, the same for both views.

    Args:
        size: the view's size (an int or ``(H, W)``), which decides the blur.
        jitter: brightness, contrast and saturation strength (hue ``jitter / 4``).
        blur: Gaussian blur p 0.5 on (True) or off (False); None: :func:`blur_applies`.
        color_jitter: False leaves the colour jitter out (an arm that puts its own colour change in its place).

    Example:
        >>> [type(t).__name__ for t in simclr_views(96)]
        ['ColorJitter', 'RandomGrayscale', 'GaussianBlur']
        >>> [type(t).__name__ for t in simclr_views(32)]
        ['ColorJitter', 'RandomGrayscale']
    """
    pipeline = [ColorJitter(jitter, jitter, jitter, jitter / 4, p=0.8)] if color_jitter else []
    pipeline.append(RandomGrayscale(p=0.2))
    if blur if blur is not None else blur_applies(size):
        pipeline.append(GaussianBlur(sigma=(0.1, 2.0), p=0.5))
    return pipeline


def byol_views(size: int | tuple[int, int], *, blur: bool | None = None, color_jitter: bool = True) -> list[list]:
    """BYOL's two pipelines, one per view (asymmetric blur and solarisation).

    Args:
        size: the view's size, which decides the blur.
        blur: the asymmetric blur (p 1.0 and 0.1) on or off; None: :func:`blur_applies`.
        color_jitter: False leaves the colour jitter (0.4, 0.4, 0.2, 0.1) out.

    Example:
        >>> [[type(t).__name__ for t in view] for view in byol_views(32)]
        [['ColorJitter', 'RandomGrayscale'], ['ColorJitter', 'RandomGrayscale', 'RandomSolarize']]
    """
    blur = blur_applies(size) if blur is None else blur

    def view(blur_p: float, solarize_p: float) -> list:
        pipeline = [ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8)] if color_jitter else []
        pipeline.append(RandomGrayscale(p=0.2))
        if blur:
            pipeline.append(GaussianBlur(sigma=(0.1, 2.0), p=blur_p))
        if solarize_p > 0:
            pipeline.append(RandomSolarize(0.5, p=solarize_p))
        return pipeline

    return [view(1.0, 0.0), view(0.1, 0.2)]


#: each method's views: its name -> the recipe it follows (``"simclr"``: symmetric, ``"byol"``: asymmetric)
METHOD_VIEWS = {"simclr": "simclr", "simsiam": "simclr", "byol": "byol", "barlow_twins": "byol",
                "vicreg": "byol", "moco_v3": "byol"}


def method_views(method: str, size: int | tuple[int, int], *, color_jitter: bool = True) -> list[list]:
    """A method's two per-view pipelines (lists of transforms applied after the crop and flip).

    Args:
        method: a key of :data:`METHOD_VIEWS` (``simclr``, ``simsiam``, ``byol``, ``barlow_twins``,
            ``vicreg``, ``moco_v3``).
        size: the view's size.
        color_jitter: False leaves the colour jitter out of both views (the natural arm's models replace it).

    Example:
        >>> [[type(t).__name__ for t in view] for view in method_views("vicreg", 64)][1]
        ['ColorJitter', 'RandomGrayscale', 'GaussianBlur', 'RandomSolarize']
    """
    if method not in METHOD_VIEWS:
        raise ValueError(f"method must be one of {sorted(METHOD_VIEWS)}, got {method!r}")
    if METHOD_VIEWS[method] == "byol":
        return byol_views(size, color_jitter=color_jitter)
    return [simclr_views(size, color_jitter=color_jitter) for _ in range(2)]
