"""The fast CPU/GPU paths of the kernels agree with their plain reference formulations.

Each optimised kernel is compared with the straightforward implementation it replaced (kept here or in the
module as the definition): fused sRGB/illumination, the affine warp grid, 3x3 blur taps, the fused
warp + blur, grid_sample crops, the unit-range histogram scorer, and luma-first scoring perturbations.
Tolerances are float32 rounding bounds, stated per test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from mi_augment.crops import BoxSampler
from mi_augment.crops.scoring import PixelMIScorer, _unit_range_histogram_mi
from mi_augment.functional import color as C
from mi_augment.functional import geometry as G
from mi_augment.functional.crops import pyramid_crop, resized_crop
from mi_augment.mi import histogram_mi


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
    fast = C.apply_illumination(x, log_gain, log_gamma, coeffs)
    ref = C._apply_illumination_reference(x, log_gain, log_gamma, coeffs)
    # float32: one exp/log instead of three pow; measured max 5e-7
    assert (fast - ref).abs().max() <= 2e-6
    assert fast.min() >= 0 and fast.max() <= 1


def test_fused_illumination_non_contiguous_and_float64():
    g = _gen(1)
    x = torch.rand(4, 16, 12, 3, generator=g).permute(0, 3, 1, 2)  # channels-last view
    log_gain, log_gamma, coeffs = torch.randn(4, 3, generator=g) * 0.3, torch.randn(4, generator=g) * 0.1, \
        torch.randn(4, 5, generator=g) * 0.1
    fast = C.apply_illumination(x, log_gain, log_gamma, coeffs)
    assert torch.allclose(fast, C._apply_illumination_reference(x, log_gain, log_gamma, coeffs), atol=2e-6)
    x64 = x.double()
    fast64 = C.apply_illumination(x64, log_gain, log_gamma, coeffs)
    assert fast64.dtype == torch.float64
    assert torch.allclose(fast64, C._apply_illumination_reference(x64, log_gain, log_gamma, coeffs), atol=1e-12)


# ----------------------------------------------------------------------------------------------- geometry
def _warp_reference(images: torch.Tensor, matrices: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """The float64 per-pixel grid of the original warp_homography."""
    b, _, h, w = images.shape
    inverse = torch.linalg.inv(matrices.double())
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
    src = points @ inverse.transpose(1, 2)
    src = src[..., :2] / src[..., 2:3]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64)
    grid = (src * scale - 1.0).reshape(b, h, w, 2).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


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
    # both grids are float32 roundings of the same coordinates: differences are ~1e-7 of the normalised
    # range, i.e. < 1e-5 in value even on per-pixel noise (gradients up to 1 per pixel)
    assert (G.warp_homography(x, m, padding_mode=padding_mode) - _warp_reference(x, m, padding_mode)).abs().max() < 2e-5


@pytest.mark.parametrize("longest", [0.3, 1.9, 3.5, 7.0])
@pytest.mark.parametrize("border", ["reflect", "replicate", "constant"])
def test_blur_taps_equal_dense_convolution(longest, border):
    g = _gen(int(longest * 10))
    x = torch.rand(7, 3, 19, 26, generator=g)
    length = torch.rand(7, generator=g) * longest
    length[0] = 0.0
    angle = torch.rand(7, generator=g) * 2 * math.pi
    kernels = G.motion_blur_kernels(length, angle)
    ref = G._blur_conv(x, kernels, border)
    assert torch.allclose(G.motion_blur(x, length, angle, border=border), ref, atol=1e-6)


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (17, 23), (40, 32)])
@pytest.mark.parametrize("longest", [0.0, 0.4, 1.99, 3.5])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_fused_warp_and_blur_equals_composition(size, longest, padding_mode):
    h, w = size
    g = _gen(h + w)
    x = torch.rand(6, 3, h, w, generator=g)
    m = _matrices(6, h, w, g)
    length, angle = torch.rand(6, generator=g) * longest, torch.rand(6, generator=g) * 6.3
    fused = G._warp_and_blur(x, m, length, angle, padding_mode=padding_mode)
    ref = G.motion_blur(_warp_reference(x, m, padding_mode), length, angle)
    assert (fused - ref).abs().max() < 2e-5  # the warp grids' float32 rounding (above); the blur is exact


# -------------------------------------------------------------------------------------------------- crops
def _crop_reference(images, boxes, size, flip=None, sampling_ratio=-1):
    """The original resized_crop: roi_align for every box, then torch.where for the flips."""
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
        ours = resized_crop(x, boxes, size, flip=f, sampling_ratio=sampling_ratio)
        ref = _crop_reference(x, boxes, size if isinstance(size, tuple) else (size, size), f, sampling_ratio)
        # both are float32 evaluations of the same bilinear samples; coordinates differ by ~1e-5 px at
        # 256 px, so values by < 1e-4 on per-pixel noise
        assert ours.shape == ref.shape and (ours - ref).abs().max() < 1e-4


def test_grid_sample_crops_are_as_accurate_as_roi_align():
    g = _gen(3)
    for side, size in ((96, 96), (256, 224)):
        x = torch.rand(8, 3, side, side, generator=g)
        boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((8, 4), side, side, generator=g)
        exact = _crop_reference(x.double(), boxes.double(), (size, size))
        err_ours = (resized_crop(x, boxes, size).double() - exact).abs().max()
        err_roi = (_crop_reference(x, boxes, (size, size)).double() - exact).abs().max()
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
    from mi_augment.crops import render_proxies
    from mi_augment.data.samples import sample_path
    from mi_augment.transforms.pair import MIPairTransform

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
        small, factor = MIPairTransform(side, illumination=False, motion=False)._working_images(x)
        boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((x.shape[0], 2, 8), side, side,
                                                              generator=_gen(side)) * factor
        old = scorer(render_proxies(small, boxes[:, 0], 32), render_proxies(small, boxes[:, 1], 32))
        new = scorer(render_proxies(small, boxes[:, 0], 32, pyramid=True),
                     render_proxies(small, boxes[:, 1], 32, pyramid=True))
        assert float(rank_corr(old.flatten(), new.flatten())) >= 0.97
        assert float(rank_corr(old, new).mean()) >= 0.9


def _crop_warp_reference(x, boxes, flips, inverse, out_h, out_w, padding_mode="reflection"):
    """_crop_warp_ring for boxes no larger than the output, written plainly in float64: every output pixel
    (ring pixels take the mirrored pixel's coordinates) mapped by a per-pixel matrix product through the
    inverse motion and the crop, then one grid_sample of its image."""
    b, v = boxes.shape[:2]
    c, h, w = x.shape[1:]
    xs = torch.arange(-1, out_w + 1, dtype=torch.float64).abs()
    xs = torch.where(xs > out_w - 1, 2 * (out_w - 1) - xs, xs)
    xs[0] = 1.0
    ys = torch.arange(-1, out_h + 1, dtype=torch.float64).abs()
    ys = torch.where(ys > out_h - 1, 2 * (out_h - 1) - ys, ys)
    ys[0] = 1.0
    pts = torch.stack([xs[None, :].expand(out_h + 2, -1), ys[:, None].expand(-1, out_w + 2),
                       torch.ones(out_h + 2, out_w + 2, dtype=torch.float64)], -1)  # (Hg, Wg, 3)
    out = []
    for n in range(b * v):
        i, j = divmod(n, v)
        x1, y1, x2, y2 = boxes[i, j].double().tolist()
        q = pts @ inverse[n].T  # view pixel moved by the inverse motion
        u = q[..., 0]
        if flips is not None and bool(flips[i, j]):
            u = out_w - 1 - u
        ix = x1 + (u + 0.5) * (x2 - x1) / out_w - 0.5
        iy = y1 + (q[..., 1] + 0.5) * (y2 - y1) / out_h - 0.5
        grid = torch.stack([ix * 2 / (w - 1) - 1, iy * 2 / (h - 1) - 1], -1)[None]
        out.append(F.grid_sample(x[i:i + 1].double(), grid, mode="bilinear", padding_mode=padding_mode,
                                 align_corners=True)[0])
    return torch.stack(out)


def _small_motions(n, h, w, g, scale=1.0):
    ls = 0.02 * scale * torch.randn(n, generator=g, dtype=torch.float64)
    rot = 0.05 * scale * torch.randn(n, generator=g, dtype=torch.float64)
    tr = 0.05 * scale * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return torch.linalg.inv(G.similarity_matrices(ls, rot, tr, h, w))


@pytest.mark.parametrize("case", [(64, 64, 20, 20), (50, 70, 16, 24), (96, 96, 96, 96)])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_crop_warp_ring_equals_per_pixel_composition(case, padding_mode):
    """One sampling pass of crop o motion (with its mirrored ring) equals the float64 per-pixel map."""
    h, w, oh, ow = case
    g = _gen(h + ow)
    x = torch.rand(3, 3, h, w, generator=g)
    boxes = BoxSampler((0.05, 0.1), (3 / 4, 4 / 3)).sample((3, 2), h, w, generator=g)
    side = torch.minimum(boxes[..., 2:] - boxes[..., :2], torch.tensor([ow - 0.01, oh - 0.01]))
    boxes = torch.cat([boxes[..., :2], boxes[..., :2] + side], -1)  # one bilinear sample per pixel
    flips = torch.rand(3, 2, generator=g) < 0.5
    inverse = _small_motions(6, oh, ow, g)
    ours = G._crop_warp_ring(x, boxes, flips, inverse, oh, ow, padding_mode=padding_mode)
    ref = _crop_warp_reference(x, boxes, flips, inverse, oh, ow, padding_mode)
    assert ours.shape == (6, 3, oh + 2, ow + 2)
    # float32 grid coordinates (< 1e-5 px off): < 1e-4 in value on per-pixel noise
    assert (ours.double() - ref).abs().max() < 1e-4


@pytest.mark.parametrize("motion_scale, expect", [(0.0, "border"), (6.0, "border"), (60.0, "reflection")])
def test_reflection_through_a_mirrored_margin_equals_grid_sample_reflection(motion_scale, expect, monkeypatch):
    """Reflection padding is done by mirroring the image into a margin and sampling it with border mode
    (cheaper); that equals grid_sample's own reflection, for one-sample and area-averaged views, and falls
    back to it when the samples leave the image by more than its size."""
    h, w, size = 40, 56, 24
    g = _gen(int(motion_scale) + 1)
    x = torch.rand(3, 3, h, w, generator=g)
    boxes = BoxSampler((0.2, 1.0), (3 / 4, 4 / 3)).sample((3, 2), h, w, generator=g)  # many touch the edges
    flips = torch.rand(3, 2, generator=g) < 0.5
    inverse = _small_motions(6, size, size, g, scale=motion_scale)
    modes = []
    original = G._reflect_by_padding

    def spy(*args):
        out = original(*args)
        modes.append(out[2])
        return out

    monkeypatch.setattr(G, "_reflect_by_padding", spy)
    fast = G._crop_warp_ring(x, boxes, flips, inverse, size, size)
    assert modes == [expect]
    monkeypatch.setattr(G, "_reflect_by_padding", lambda images, theta, oh, ow: (images, theta, "reflection"))
    plain = G._crop_warp_ring(x, boxes, flips, inverse, size, size)
    assert (fast - plain).abs().max() < 1e-4  # float32 grid coordinates shifted by the margin


@pytest.mark.parametrize("case", [(96, 96, 32), (256, 256, 224), (80, 60, 24)])
def test_crop_warp_ring_without_motion_is_the_resized_crop(case):
    """Identity motion: the interior is resized_crop (roi_align area averaging for boxes larger than the
    output, one bilinear sample for the others), the ring its reflect padding."""
    h, w, size = case
    g = _gen(size)
    x = torch.rand(4, 3, h, w, generator=g)
    boxes = BoxSampler((0.08, 1.0), (3 / 4, 4 / 3)).sample((4, 2), h, w, generator=g)
    boxes = torch.cat([boxes[..., :2].clamp(min=0.5), boxes[..., 2:].clamp(max=torch.tensor([w - 0.5, h - 0.5]))],
                      -1)  # away from the edge: roi_align clamps there, the warp reflects
    flips = torch.rand(4, 2, generator=g) < 0.5
    eye = torch.eye(3, dtype=torch.float64).expand(8, 3, 3)
    ours = G._crop_warp_ring(x, boxes, flips, eye, size, size)
    ref = resized_crop(x, boxes, size, flip=flips).flatten(0, 1)
    assert (ours[:, :, 1:-1, 1:-1] - ref).abs().max() < 1e-4
    # the ring repeats the mirrored pixels' samples (vectorised kernels may round the last bit differently)
    assert (ours - F.pad(ours[:, :, 1:-1, 1:-1], (1, 1, 1, 1), mode="reflect")).abs().max() < 1e-6


def test_illumination_with_ring_equals_padded_illumination():
    g = _gen(5)
    x = torch.rand(4, 3, 20, 30, generator=g)
    log_gain, log_gamma = 0.3 * torch.randn(4, 3, generator=g), 0.2 * torch.randn(4, generator=g)
    shading = 0.3 * torch.randn(4, 5, generator=g)
    plain = C.apply_illumination(x, log_gain, log_gamma, shading)
    ringed = C.apply_illumination(F.pad(x, (1, 1, 1, 1), mode="reflect"), log_gain, log_gamma, shading, ring=True)
    # same formula on the same values; only SIMD-vs-tail rounding of log / exp differs (~1e-8)
    assert (ringed - F.pad(plain, (1, 1, 1, 1), mode="reflect")).abs().max() < 1e-6


def test_illumination_kernel_on_the_view_major_layout_equals_per_view_calls():
    """The pair renderer illuminates views inside each image, (B, C, V, H, W), with broadcast parameters; that
    equals apply_illumination on each view, dark (linear-segment) pixels included."""
    g = _gen(6)
    b, v, h, w = 2, 3, 10, 12
    x = torch.rand(b, 3, v, h, w, generator=g) ** 3  # many pixels on the linear segment of the sRGB curve
    log_gain, log_gamma = 0.4 * torch.randn(b, v, 3, generator=g), 0.2 * torch.randn(b, v, generator=g)
    shading = 0.3 * torch.randn(b, v, 5, generator=g)
    basis = C.shading_basis(h, w, 2)
    log_field = torch.einsum("bvs,shw->bvhw", shading, basis).unsqueeze(1)
    ours = C._illuminate(x, log_gamma.exp().view(b, 1, v, 1, 1), log_gain.transpose(1, 2).reshape(b, 3, v, 1, 1),
                         log_field)
    for i in range(v):
        ref = C.apply_illumination(x[:, :, i], log_gain[:, i], log_gamma[:, i], shading[:, i])
        assert (ours[:, :, i] - ref).abs().max() < 1e-6


# ------------------------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("shape", [(16, 8, 1024), (3, 5, 100), (7, 50)])
@pytest.mark.parametrize("bins", [2, 7, 16])
def test_unit_range_histogram_is_exactly_histogram_mi(shape, bins):
    g = _gen(bins)
    a = torch.rand(shape, generator=g)
    b = (a + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    a[0, ..., :5] = 1.0  # the maximum goes to the last bin
    b[0, ..., :3] = 0.0
    assert torch.equal(_unit_range_histogram_mi(a, b, bins), histogram_mi(a, b, bins=bins, range=(0.0, 1.0)))
    assert torch.equal(PixelMIScorer(bins=bins)(a, b), histogram_mi(a, b, bins=bins, range=(0.0, 1.0)))


def test_unit_range_histogram_defers_bad_input_to_the_estimator():
    a = torch.rand(2, 4, 64)
    b = a.clone()
    b[0, 0, 0] = float("nan")
    assert _unit_range_histogram_mi(a, b, 16) is None
    with pytest.raises(ValueError):
        PixelMIScorer()(a, b)
    assert _unit_range_histogram_mi(a, b.double(), 16) is None
