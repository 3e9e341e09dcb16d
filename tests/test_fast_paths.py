"""The speed paths agree with the public implementations they sit beside.

Each test runs a public function as shipped (speed paths on) and inside ``kernel_options(fast_paths=False)``
(the public implementation alone), or against an independent reference written here (torchvision's
``roi_align``, a float64 per-pixel map): fused sRGB/illumination, the affine warp grid, 3x3 blur taps, the
fused warp + blur, grid_sample crops, the one-pass crop + camera motion of ``MIPairTransform``, pyramid
proxies and the unit-range histogram scorer. Tolerances are float32 rounding bounds, stated per test.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from mi_augment import kernel_options
from mi_augment.functional import color as C
from mi_augment.functional import geometry as G
from mi_augment.functional.crops import pyramid_crop, resized_crop
from mi_augment.mi import histogram_mi
from mi_augment.pairs import BoxSampler
from mi_augment.pairs.scorers import PixelMIScorer
from mi_augment.perturbations import IlluminationParams, MotionModel, MotionParams
from mi_augment.transforms.pair import MIPairTransform


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fast_and_plain(fn, *args, **kwargs):
    """``fn`` with the speed paths (the default) and inside ``kernel_options(fast_paths=False)``."""
    fast = fn(*args, **kwargs)
    with kernel_options(fast_paths=False):
        plain = fn(*args, **kwargs)
    return fast, plain


# ------------------------------------------------------------------------------------------------- colour
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shading", [0, 2, 5, 9])
@pytest.mark.parametrize("spread", [0.02, 0.5, 2.0])
def test_fused_illumination_equals_reference(channels, shading, spread):
    g = _gen(shading)
    x = torch.rand(8, channels, 20, 30, generator=g)
    x[0, :, :4] = 0.0  # black: input on the linear segment of the sRGB curve
    x[1, :, :3] = 1.0  # white: clipped output
    x[2] = x[2] * 0.05  # dark image: most pixels near the knee
    x[3, :, 0, 0] = 1.5  # out of range input is clamped first
    x[3, :, 0, 1] = -0.2
    log_gain = torch.randn(8, 3, generator=g) * spread
    log_gamma = torch.randn(8, generator=g) * spread * 0.3
    coeffs = torch.randn(8, shading, generator=g) * spread * 0.3 if shading else None
    fast, ref = _fast_and_plain(C.apply_illumination, x, log_gain, log_gamma, coeffs)
    # float32: one exp/log instead of three pow; measured max 5e-7
    assert (fast - ref).abs().max() <= 2e-6
    assert fast.min() >= 0 and fast.max() <= 1


def test_fused_illumination_non_contiguous_and_float64():
    g = _gen(1)
    x = torch.rand(4, 16, 12, 3, generator=g).permute(0, 3, 1, 2)  # channels-last view
    log_gain, log_gamma, coeffs = torch.randn(4, 3, generator=g) * 0.3, torch.randn(4, generator=g) * 0.1, \
        torch.randn(4, 5, generator=g) * 0.1
    fast, ref = _fast_and_plain(C.apply_illumination, x, log_gain, log_gamma, coeffs)
    assert torch.allclose(fast, ref, atol=2e-6)
    fast64, ref64 = _fast_and_plain(C.apply_illumination, x.double(), log_gain, log_gamma, coeffs)
    assert fast64.dtype == ref64.dtype == torch.float64
    assert torch.allclose(fast64, ref64, atol=1e-12)


def test_illumination_with_ring_equals_padded_illumination():
    g = _gen(5)
    x = torch.rand(4, 3, 20, 30, generator=g)
    log_gain, log_gamma = 0.3 * torch.randn(4, 3, generator=g), 0.2 * torch.randn(4, generator=g)
    shading = 0.3 * torch.randn(4, 5, generator=g)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    for fast_paths in (True, False):
        with kernel_options(fast_paths=fast_paths):
            plain = C.apply_illumination(x, log_gain, log_gamma, shading)
            ringed = C.apply_illumination(padded, log_gain, log_gamma, shading, ring=True)
        # same formula on the same values; only SIMD-vs-tail rounding of log / exp differs (~1e-8)
        assert (ringed - F.pad(plain, (1, 1, 1, 1), mode="reflect")).abs().max() < 1e-6
    fast, ref = _fast_and_plain(C.apply_illumination, padded, log_gain, log_gamma, shading, ring=True)
    assert (fast - ref).abs().max() <= 2e-6


# ----------------------------------------------------------------------------------------------- geometry
def _matrices(b, h, w, g, spread=1.0):
    return G.similarity_matrices(torch.randn(b, generator=g).double() * 0.05 * spread,
                                 torch.randn(b, generator=g).double() * 0.1 * spread,
                                 torch.randn(b, 2, generator=g).double() * 0.05 * spread, h, w)


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (17, 23), (64, 48)])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_affine_grid_warp_equals_float64_grid(size, padding_mode):
    h, w = size
    g = _gen(h * w)
    x = torch.rand(6, 3, h, w, generator=g)
    m = _matrices(6, h, w, g)
    fast, plain = _fast_and_plain(G.warp_homography, x, m, padding_mode=padding_mode)
    # both grids are float32 roundings of the same coordinates (the plain one a float64 per-pixel product):
    # differences are ~1e-7 of the normalised range, i.e. < 1e-5 in value even on per-pixel noise
    assert (fast - plain).abs().max() < 2e-5


@pytest.mark.parametrize("longest", [0.3, 1.9, 3.5, 7.0])
@pytest.mark.parametrize("border", ["reflect", "replicate", "constant"])
def test_blur_taps_equal_dense_convolution(longest, border):
    g = _gen(int(longest * 10))
    x = torch.rand(7, 3, 19, 26, generator=g)
    length = torch.rand(7, generator=g) * longest
    length[0] = 0.0
    angle = torch.rand(7, generator=g) * 2 * math.pi
    fast, dense = _fast_and_plain(G.motion_blur, x, length, angle, border=border)
    assert torch.allclose(fast, dense, atol=1e-6)


def _motion_params(log_scale, rotation, translation, blur_length, blur_angle) -> MotionParams:
    return MotionParams(translation, rotation.reshape(-1, 1), log_scale.reshape(-1, 1), blur_length.reshape(-1, 1),
                        blur_angle.reshape(-1, 1))


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (17, 23), (40, 32)])
@pytest.mark.parametrize("longest", [0.0, 0.4, 1.99, 3.5])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_fused_warp_and_blur_equals_composition(size, longest, padding_mode):
    """MotionModel.apply (a warp, then a blur) fuses the two where it can; the plain route runs
    warp_homography then motion_blur."""
    h, w = size
    g = _gen(h + w)
    x = torch.rand(6, 3, h, w, generator=g)
    ls, rot, tr = (torch.randn(6, generator=g) * 0.05, torch.randn(6, generator=g) * 0.1,
                   torch.randn(6, 2, generator=g) * 0.05)
    length, angle = torch.rand(6, generator=g) * longest, torch.rand(6, generator=g) * 6.3
    params = _motion_params(ls, rot, tr, length / max(h, w), angle)  # blur length: fraction of the longer side
    fused, plain = _fast_and_plain(MotionModel.uniform(padding_mode=padding_mode).apply, x, params)
    assert (fused - plain).abs().max() < 2e-5  # the warp grids' float32 rounding (above); the blur is exact


@pytest.mark.parametrize("scale", [0.5, 6.0, 60.0])
def test_reflection_through_a_mirrored_margin_equals_grid_sample_reflection(scale):
    """Reflection padding is done by mirroring the image into a margin and sampling it with border mode
    (cheaper); that equals grid_sample's own reflection whether the samples stay inside the image, leave it
    by less than its size, or by more (then grid_sample's reflection is used)."""
    g = _gen(int(scale))
    x = torch.rand(4, 3, 30, 36, generator=g)
    ls, rot, tr = (torch.randn(4, generator=g) * 0.02 * scale, torch.randn(4, generator=g) * 0.05 * scale,
                   torch.randn(4, 2, generator=g) * 0.05 * scale)
    params = _motion_params(ls, rot, tr, torch.full((4,), 1.5 / 36), torch.rand(4, generator=g) * 6.3)
    fused, plain = _fast_and_plain(MotionModel.uniform().apply, x, params)
    assert (fused - plain).abs().max() < 1e-4  # float32 grid coordinates shifted by the margin


# -------------------------------------------------------------------------------------------------- crops
def _crop_reference(images, boxes, size, flip=None, sampling_ratio=-1):
    """torchvision's roi_align for every box, then torch.where for the flips."""
    b = images.shape[0]
    per_image = 1 if boxes.ndim == 2 else boxes.shape[1]
    flat = boxes.reshape(-1, 4).to(images.dtype)
    index = torch.arange(b, dtype=images.dtype).repeat_interleave(per_image)
    out = roi_align(images, torch.cat([index[:, None], flat], 1), size, 1.0, sampling_ratio, True)
    if flip is not None:
        out = torch.where(flip.reshape(-1, 1, 1, 1), out.flip(-1), out)
    return out if boxes.ndim == 2 else out.view(b, per_image, *out.shape[1:])


@pytest.mark.parametrize("case", [(32, 32, 32), (96, 96, 96), (256, 256, 224), (50, 70, (20, 30)), (5, 7, 9),
                                  (1, 6, 4), (64, 64, 16)])
@pytest.mark.parametrize("per_image", [None, 3])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
def test_grid_sample_crops_equal_roi_align(case, per_image, sampling_ratio):
    h, w, size = case
    g = _gen(h + w)
    x = torch.rand(4, 3, h, w, generator=g)
    shape = (4,) if per_image is None else (4, per_image)
    boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample(shape, h, w, generator=g)
    flip = torch.rand(shape, generator=g) < 0.5
    for f in (None, flip):
        ours, plain = _fast_and_plain(resized_crop, x, boxes, size, flip=f, sampling_ratio=sampling_ratio)
        ref = _crop_reference(x, boxes, size if isinstance(size, tuple) else (size, size), f, sampling_ratio)
        assert torch.equal(plain, ref)  # the public implementation is roi_align
        # both are float32 evaluations of the same bilinear samples; coordinates differ by ~1e-5 px at
        # 256 px, so values by < 1e-4 on per-pixel noise
        assert ours.shape == ref.shape and (ours - ref).abs().max() < 1e-4


def test_grid_sample_crops_are_as_accurate_as_roi_align():
    g = _gen(3)
    for side, size in ((96, 96), (256, 224)):
        x = torch.rand(8, 3, side, side, generator=g)
        boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((8, 4), side, side, generator=g)
        exact = _crop_reference(x.double(), boxes.double(), (size, size))
        ours, plain = _fast_and_plain(resized_crop, x, boxes, size)
        err_ours = (ours.double() - exact).abs().max()
        err_roi = (plain.double() - exact).abs().max()
        assert err_ours <= 1.5 * err_roi + 1e-6


def _pyramid_reference(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """pyramid_crop written plainly: per box, average-pool the image 2**l times and take one bilinear sample
    per bin (roi_align, sampling_ratio=1) of the box scaled by 2**-l."""
    b, k = boxes.shape[:2]
    out = torch.empty(b, k, x.shape[1], size, size, dtype=x.dtype)
    for i in range(b):
        for j in range(k):
            box = boxes[i, j]
            shrink = float(max((box[2] - box[0]) / size, (box[3] - box[1]) / size))
            level, img = 0, x[i:i + 1]
            while shrink >= 2.0 ** (level + 1) and min(img.shape[-2:]) >= 2:
                img, level = F.avg_pool2d(img, 2), level + 1
            rois = torch.cat([torch.zeros(1), box / 2 ** level])[None]
            out[i, j] = roi_align(img, rois, size, 1.0, sampling_ratio=1, aligned=True)[0]
    return out


@pytest.mark.parametrize("side", [32, 57, 96, 114])
def test_pyramid_proxy_crops_equal_plain_pyramid(side):
    g = _gen(side)
    x = torch.rand(3, 2, side, side, generator=g)
    boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((3, 8), side, side, generator=g)
    ours = pyramid_crop(x, boxes, 16)
    assert ours.shape == (3, 8, 2, 16, 16)
    # float32 coordinates, one bilinear sample per bin: differences are rounding, < 1e-4 on per-pixel noise
    assert (ours - _pyramid_reference(x, boxes, 16)).abs().max() < 1e-4
    small = boxes.clone()
    small[..., 2:] = small[..., :2] + (small[..., 2:] - small[..., :2]).clamp(max=15.5)  # level 0
    assert torch.equal(pyramid_crop(x, small, 16), resized_crop(x, small, 16))


def test_pyramid_proxy_crops_do_not_leak_across_levels():
    """Levels share one canvas: boxes at the right / bottom edge must read their own level only."""
    ramp = torch.linspace(0.5, 1.0, 96).expand(1, 1, 96, 96).contiguous()
    boxes = torch.tensor([[[20.0, 20.0, 96.0, 96.0], [0.0, 0.0, 96.0, 96.0], [60.0, 0.0, 96.0, 96.0]]])
    ours = pyramid_crop(ramp, boxes, 16)
    assert (ours - resized_crop(ramp, boxes, 16)).abs().max() < 0.02  # a linear ramp survives pooling
    assert float(ours.min()) > 0.49


def test_pyramid_proxies_keep_the_score_ranking_on_real_frames():
    """The scoring proxies of MIPairTransform (pyramid_crop) rank candidates like the exact area-averaged
    crops (roi_align) on real video frames: Spearman over all candidate scores >= 0.97, and >= 0.9 on
    average within an image's K = 8 candidates."""
    from mi_augment.datasets.samples import sample_path
    from mi_augment.pairs import render_proxies

    try:
        from mi_augment.video.io import read_video

        clip = read_video(sample_path("bikes"), max_frames=32, stride=2)
    except (FileNotFoundError, ImportError) as exc:
        pytest.skip(f"real clip unavailable: {exc}")

    def rank_corr(a, b):
        ra, rb = a.argsort(-1).argsort(-1).float(), b.argsort(-1).argsort(-1).float()
        ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
        return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1)).clamp_min(1e-12)

    frames = clip.float() / 255
    scorer = PixelMIScorer()
    for side in (96, 256):
        x = F.interpolate(frames, size=(side, side), mode="bilinear", antialias=True)
        # the working resolution MIPairTransform scores at: the smallest crop (scale 0.08) spans ~32 px
        small_side = min(side, math.ceil(side * 32 / math.sqrt(0.08 * side * side)))
        small = F.interpolate(x, size=(small_side, small_side), mode="bilinear", antialias=True)
        boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((x.shape[0], 2, 8), side, side,
                                                              generator=_gen(side)) * (small_side / side)
        old = scorer(render_proxies(small, boxes[:, 0], 32), render_proxies(small, boxes[:, 1], 32))
        new = scorer(render_proxies(small, boxes[:, 0], 32, pyramid=True),
                     render_proxies(small, boxes[:, 1], 32, pyramid=True))
        assert float(rank_corr(old.flatten(), new.flatten())) >= 0.97
        assert float(rank_corr(old, new).mean()) >= 0.9


# ------------------------------------------------------------------ one-pass crop + camera motion (pair views)
def _crop_warp_reference(x, boxes, flips, inverse, out_h, out_w, padding_mode="reflection"):
    """The views of crop o camera motion written plainly in float64: every output pixel (and roi_align's
    ``ceil(box side / output side)`` sub-samples per axis for boxes larger than the output, averaged) mapped
    by a per-pixel matrix product through the inverse motion and the crop, then one grid_sample of its
    image. Returns ``(B * V, C, out_h, out_w)``."""
    b, v = boxes.shape[:2]
    h, w = x.shape[-2:]
    out = []
    for n in range(b * v):
        i, j = divmod(n, v)
        x1, y1, x2, y2 = boxes[i, j].double().tolist()
        sy, sx = max(1, math.ceil((y2 - y1) / out_h)), max(1, math.ceil((x2 - x1) / out_w))
        acc = 0.0
        for a in range(sy):
            for c in range(sx):
                px = torch.arange(out_w, dtype=torch.float64) + (c + 0.5) / sx - 0.5
                py = torch.arange(out_h, dtype=torch.float64) + (a + 0.5) / sy - 0.5
                pts = torch.stack([px[None, :].expand(out_h, -1), py[:, None].expand(-1, out_w),
                                   torch.ones(out_h, out_w, dtype=torch.float64)], -1)
                q = pts @ inverse[n].T  # view pixel moved by the inverse motion
                u = q[..., 0]
                if flips is not None and bool(flips[i, j]):
                    u = out_w - 1 - u
                ix = x1 + (u + 0.5) * (x2 - x1) / out_w - 0.5
                iy = y1 + (q[..., 1] + 0.5) * (y2 - y1) / out_h - 0.5
                grid = torch.stack([ix * 2 / (w - 1) - 1, iy * 2 / (h - 1) - 1], -1)[None]
                acc = acc + F.grid_sample(x[i:i + 1].double(), grid, mode="bilinear", padding_mode=padding_mode,
                                          align_corners=True)[0]
        out.append(acc / (sy * sx))
    return torch.stack(out)


def _pair_views(x, boxes, flips, motion, size, padding_mode="reflection", illumination=False, light=None):
    """``MIPairTransform`` views (stacked ``(B * V, C, h, w)``, sample-major) of the given boxes, flips and
    camera motion (image-frame :class:`MotionParams` ``(B, V, ...)``), with the speed paths."""
    t = MIPairTransform(size, illumination=illumination, motion=MotionModel.uniform(padding_mode=padding_mode),
                        policy="random", n_views=boxes.shape[1], view_transforms=None)
    params = t.make_params(x, generator=_gen(0))
    chain = (motion,) if light is None else (light, motion)
    params = dataclasses.replace(params, boxes=boxes, flip=flips, perturbations=chain)
    return torch.stack(t.render(x, params), 1).flatten(0, 1), t, params


def _view_motion(boxes, motion, height, width, out_h, out_w):
    """Inverse view-frame motion matrices ``(B * V, 3, 3)`` and blur lengths in view pixels ``(B * V,)``: a
    view enlarges its crop ``zoom = image side / crop side`` times, so translations and blur lengths (fractions
    of the image) scale by ``zoom`` (``MotionModel.to_view_frame``)."""
    side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]).double()
    zoom = (max(height, width) / side).flatten()
    translation = motion.translation.flatten(0, 1).double() * zoom[:, None]
    inverse = torch.linalg.inv(G.similarity_matrices(motion.log_scale.flatten().double(),
                                                     motion.rotation.flatten().double(), translation, out_h, out_w))
    length = motion.blur_length.flatten().double() * zoom * max(out_h, out_w)
    return inverse, length.float(), motion.blur_angle.flatten()


def _draw_motion(b, v, g, scale=1.0, blur=0.0):
    return MotionParams(0.05 * scale * torch.randn(b, v, 2, generator=g), 0.05 * scale * torch.randn(b, v, 1, generator=g),
                        0.02 * scale * torch.randn(b, v, 1, generator=g), blur * torch.rand(b, v, 1, generator=g),
                        6.3 * torch.rand(b, v, 1, generator=g))


@pytest.mark.parametrize("case", [(64, 64, 20, 20), (50, 70, 16, 24), (96, 96, 96, 96)])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_one_pass_crop_and_motion_equals_per_pixel_composition(case, padding_mode):
    """MIPairTransform samples crop o camera motion in one pass; that equals the float64 per-pixel map."""
    h, w, oh, ow = case
    g = _gen(h + ow)
    x = torch.rand(3, 3, h, w, generator=g)
    boxes = BoxSampler((0.05, 0.1), (3 / 4, 4 / 3)).sample((3, 2), h, w, generator=g)
    side = torch.minimum(boxes[..., 2:] - boxes[..., :2], torch.tensor([ow - 0.01, oh - 0.01]))
    boxes = torch.cat([boxes[..., :2], boxes[..., :2] + side], -1)  # one bilinear sample per pixel
    flips = torch.rand(3, 2, generator=g) < 0.5
    motion = _draw_motion(3, 2, g)
    views, _, _ = _pair_views(x, boxes, flips, motion, (oh, ow), padding_mode)
    inverse, _, _ = _view_motion(boxes, motion, h, w, oh, ow)
    ref = _crop_warp_reference(x, boxes, flips, inverse, oh, ow, padding_mode)
    assert views.shape == (6, 3, oh, ow)
    # float32 grid coordinates (< 1e-5 px off): < 1e-4 in value on per-pixel noise
    assert (views.double() - ref).abs().max() < 1e-4


@pytest.mark.parametrize("motion_scale", [0.0, 6.0, 60.0])
def test_one_pass_reflection_and_area_averaging_equal_per_pixel_composition(motion_scale):
    """Views whose samples stay inside the image, leave it by less than its size (mirrored into a margin) or
    by more (grid_sample's reflection), one-sample and area-averaged (boxes larger than the output) alike,
    with each view's blur read through the mirrored one-pixel ring: the per-pixel composition, then
    motion_blur (whose reflect border is that ring)."""
    h, w, size = 40, 56, 24
    g = _gen(int(motion_scale) + 1)
    x = torch.rand(3, 3, h, w, generator=g)
    boxes = BoxSampler((0.2, 1.0), (3 / 4, 4 / 3)).sample((3, 2), h, w, generator=g)  # many touch the edges
    flips = torch.rand(3, 2, generator=g) < 0.5
    motion = _draw_motion(3, 2, g, scale=motion_scale, blur=0.02)
    views, _, _ = _pair_views(x, boxes, flips, motion, size)
    inverse, length, angle = _view_motion(boxes, motion, h, w, size, size)
    assert bool((length > 0.3).any()) and bool((length < 2.0).all())  # the 3x3 taps, not all identity
    ref = G.motion_blur(_crop_warp_reference(x, boxes, flips, inverse, size, size).float(), length, angle)
    assert (views - ref).abs().max() < 1e-4  # float32 grid coordinates shifted by the margin


@pytest.mark.parametrize("case", [(96, 96, 32), (256, 256, 224), (80, 60, 24)])
def test_one_pass_views_without_motion_are_the_resized_crops(case):
    """Camera at rest: the views are resized_crop (roi_align area averaging for boxes larger than the output,
    one bilinear sample for the others), blurred by motion_blur (its reflect border is the mirrored ring)."""
    h, w, size = case
    g = _gen(size)
    x = torch.rand(4, 3, h, w, generator=g)
    boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((4, 2), h, w, generator=g)
    boxes = torch.cat([boxes[..., :2].clamp(min=0.5), boxes[..., 2:].clamp(max=torch.tensor([w - 0.5, h - 0.5]))],
                      -1)  # away from the edge: roi_align clamps there, the warp reflects
    flips = torch.rand(4, 2, generator=g) < 0.5
    rest = _draw_motion(4, 2, g, scale=0.0)
    views, _, _ = _pair_views(x, boxes, flips, rest, size)
    crops = resized_crop(x, boxes, size, flip=flips).flatten(0, 1)
    assert (views - crops).abs().max() < 1e-4
    # 1.3 px streaks in every view (not a multiple of the kernel's 0.25 px point spacing, where float rounding
    # of the view-frame length would change the number of points)
    side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])
    streaks = dataclasses.replace(rest, blur_length=(1.3 / size * side / max(h, w))[..., None])
    blurred, _, _ = _pair_views(x, boxes, flips, streaks, size)
    ref = G.motion_blur(crops, torch.full((8,), 1.3), streaks.blur_angle.flatten())
    assert (blurred - ref).abs().max() < 1e-4


def test_illuminated_views_equal_the_illumination_kernel_per_view():
    """The pair renderer illuminates all views of an image in one pass over the layout its sampling writes,
    dark (linear-segment) pixels included; that equals apply_illumination on each view, with or without the
    speed paths."""
    g = _gen(6)
    b, v, h, w = 2, 3, 10, 12
    x = torch.rand(b, 3, h + 4, w + 4, generator=g) ** 3  # many pixels on the linear segment of the sRGB curve
    boxes = torch.tensor([2.0, 2.0, 2.0 + w, 2.0 + h]).expand(b, v, 4)  # pixel-aligned crops, at rest
    flips = torch.zeros(b, v, dtype=torch.bool)
    ones = torch.ones(b, v, 1)
    light = IlluminationParams(0.4 * torch.randn(b, v, 3, generator=g), 0.2 * torch.randn(b, v, 1, generator=g),
                               0.3 * torch.randn(b, v, 5, generator=g), ones, ones, ones, torch.zeros(b, v, 1))
    views, t, params = _pair_views(x, boxes, flips, _draw_motion(b, v, g, scale=0.0), (h, w),
                                   illumination="default", light=light)
    crops = x[:, :, 2:2 + h, 2:2 + w]
    for i in range(v):
        for fast_paths in (True, False):
            with kernel_options(fast_paths=fast_paths):
                ref = C.apply_illumination(crops, light.log_gain[:, i], light.log_gamma[:, i], light.shading[:, i])
            assert (views.view(b, v, 3, h, w)[:, i] - ref).abs().max() < 1e-5
    plain = _fast_and_plain(t.render, x, params)[1]
    assert (torch.stack(plain, 1).flatten(0, 1) - views).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("shape", [(16, 8, 1024), (3, 5, 100), (7, 50)])
@pytest.mark.parametrize("bins", [2, 7, 16])
def test_unit_range_histogram_is_exactly_histogram_mi(shape, bins):
    g = _gen(bins)
    a = torch.rand(shape, generator=g)
    b = (a + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    a[0, ..., :5] = 1.0  # the maximum goes to the last bin
    b[0, ..., :3] = 0.0
    fast, plain = _fast_and_plain(PixelMIScorer(bins=bins), a, b)
    assert torch.equal(fast, plain)
    assert torch.equal(fast, histogram_mi(a, b, bins=bins, range=(0.0, 1.0)))


def test_unit_range_histogram_defers_bad_input_to_the_estimator():
    a = torch.rand(2, 4, 64)
    b = a.clone()
    b[0, 0, 0] = float("nan")
    for fast_paths in (True, False):
        with kernel_options(fast_paths=fast_paths), pytest.raises(ValueError):
            PixelMIScorer()(a, b)
    fast, plain = _fast_and_plain(PixelMIScorer(), a, a.double())  # mixed dtypes: the estimator's answer
    assert torch.equal(fast, plain)
