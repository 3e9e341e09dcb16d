"""Odd input at the public edge (issue #13 items 1, 5, 6, 7): half precision, PIL modes, numpy dtypes, floats
outside [0, 1], tv_tensors. Every transform goes through the same checks, so each case runs on all three."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mi_augment.transforms import MIPairTransform, NaturalIllumination, NaturalMotion

tv_tensors = pytest.importorskip("torchvision.tv_tensors")

ILLUMINATION = NaturalIllumination()
MOTION = NaturalMotion(strength=2.0)
PAIR = MIPairTransform(8, n_candidates=2)
TRANSFORMS = {"illumination": ILLUMINATION, "motion": MOTION, "pair": PAIR}
HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(name: str, x, seed: int = 0):
    """One output of the named transform: the image, or the tuple of views of the pair transform."""
    return TRANSFORMS[name](x, generator=torch.Generator().manual_seed(seed))


def _outputs(name: str, x, seed: int = 0) -> list:
    out = _run(name, x, seed)
    return list(out) if name == "pair" else [out]


# ---------------------------------------------------------------- half precision (item 1)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["illumination", "motion", "pair"])
def test_half_precision_matches_float32_and_keeps_its_dtype(name, dtype):
    x = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(3)).to(dtype)
    half = _outputs(name, x, seed=5)
    full = _outputs(name, x.float(), seed=5)
    for h, f in zip(half, full):
        assert h.dtype == dtype and h.shape == f.shape
        assert bool(torch.isfinite(h.float()).all())
        assert (h.float() - f).abs().max() <= 1e-2


def test_motion_at_strength_zero_is_the_identity_in_float16():
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)).half()
    y = NaturalMotion(strength=0.0)(x, generator=torch.Generator().manual_seed(1))
    assert y.dtype == torch.float16
    assert (y.float() - x.float()).abs().max() <= 1e-2


def test_pair_without_illumination_renders_a_float16_image():
    x = torch.rand(1, 3, 600, 600, generator=torch.Generator().manual_seed(0)).half()
    views = MIPairTransform(16, illumination=False)(x, generator=torch.Generator().manual_seed(0))
    for v in views:
        assert v.dtype == torch.float16 and v.shape == (1, 3, 16, 16)
        assert bool(torch.isfinite(v.float()).all()) and 0 <= float(v.min()) and float(v.max()) <= 1


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["illumination", "motion", "pair"])
def test_half_precision_matches_float32_on_cuda(name, dtype):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)).cuda()
    half = _outputs(name, x.to(dtype), seed=5)
    full = _outputs(name, x.to(dtype).float(), seed=5)
    for h, f in zip(half, full):
        assert h.dtype == dtype and h.device.type == "cuda"
        assert (h.float() - f).abs().max() <= 1e-2


# ---------------------------------------------------------------- every accepted input type round-trips (items 5, 7)
def _make_input(kind: str, h: int, w: int, grey: bool, seed: int):
    """An input of ``kind`` with random content, and the pixel array that ``p=0`` must give back exactly."""
    rng = np.random.default_rng(seed)
    c = 1 if grey else 3
    unit = rng.random((h, w, c))
    if kind.startswith("tensor-"):
        dtype = getattr(torch, kind.split("-")[1])
        t = torch.from_numpy(unit).permute(2, 0, 1)
        t = (t * 255).round().to(dtype) if dtype == torch.uint8 else t.to(dtype)
        return t, t
    if kind.startswith("numpy-"):
        dtype = np.dtype(kind.split("-")[1])
        arr = (unit * np.iinfo(dtype).max).round().astype(dtype) if dtype.kind == "u" else unit.astype(dtype)
        arr = arr[:, :, 0] if grey else arr
        return arr, arr
    mode = kind.split("-")[1]
    if mode in ("I;16", "I;16B", "I"):
        levels = (unit[:, :, 0] * 65535).round()
        img = Image.fromarray(levels.astype({"I;16": np.uint16, "I;16B": ">u2", "I": np.int32}[mode]))
    elif mode == "F":
        img = Image.fromarray(unit[:, :, 0].astype(np.float32))
    elif mode == "L":
        img = Image.fromarray((unit[:, :, 0] * 255).round().astype(np.uint8))
    else:  # RGB, P: always three channels
        img = Image.fromarray((rng.random((h, w, 3)) * 255).round().astype(np.uint8)).convert(mode)
    assert img.mode == mode
    return img, np.asarray(img.convert("RGB") if mode == "P" else img)


KINDS = ["tensor-float32", "tensor-float64", "tensor-float16", "tensor-bfloat16", "tensor-uint8",
         "numpy-uint8", "numpy-uint16", "numpy-float32", "numpy-float64", "numpy-float16",
         "pil-L", "pil-RGB", "pil-P", "pil-I;16", "pil-I;16B", "pil-I", "pil-F"]


def _same_kind(out, ref) -> None:
    if isinstance(ref, torch.Tensor):
        assert type(out) is torch.Tensor and out.dtype == ref.dtype
    elif isinstance(ref, np.ndarray):
        assert isinstance(out, np.ndarray) and out.dtype == ref.dtype and out.ndim == ref.ndim
    else:
        assert isinstance(out, Image.Image) and out.mode == ref.mode


@given(kind=st.sampled_from(KINDS), h=st.integers(1, 20), w=st.integers(1, 20), grey=st.booleans(),
       seed=st.integers(0, 2**16))
@HYPOTHESIS
def test_every_accepted_input_comes_back_unchanged_at_p0_as_the_same_type(kind, h, w, grey, seed):
    x, pixels = _make_input(kind, h, w, grey, seed)
    for t in (NaturalIllumination(p=0.0), NaturalMotion(p=0.0)):
        out = t(x)
        expected_mode = "RGB" if kind == "pil-P" else None
        if expected_mode:
            assert isinstance(out, Image.Image) and out.mode == expected_mode
        else:
            _same_kind(out, x)
        got = out if isinstance(out, torch.Tensor) else torch.from_numpy(np.asarray(out).astype(np.float64))
        ref = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.asarray(pixels).astype(np.float64))
        assert torch.equal(got, ref)  # lossless: no clipping, no re-quantisation, alpha never silently dropped


@given(kind=st.sampled_from(KINDS), h=st.integers(8, 24), w=st.integers(8, 24), grey=st.booleans(),
       seed=st.integers(0, 2**16))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_perturbed_outputs_keep_the_input_type_and_range(kind, h, w, grey, seed):
    x, _ = _make_input(kind, h, w, grey, seed)
    for name in ("illumination", "motion", "pair"):
        for out in _outputs(name, x, seed):
            if kind == "pil-P":
                assert isinstance(out, Image.Image) and out.mode == "RGB"
                continue
            _same_kind(out, x)
            arr = out.float() if isinstance(out, torch.Tensor) else np.asarray(out).astype(np.float64)
            top = {"uint8": 255, "uint16": 65535, "I;16": 65535, "I;16B": 65535, "I": 65535, "L": 255,
                   "RGB": 255}.get(kind.split("-")[1], 1)
            assert 0 <= float(arr.min()) and float(arr.max()) <= top
            if name == "pair":
                size = arr.shape[-2:] if isinstance(out, torch.Tensor) else np.asarray(out).shape[:2]
                assert tuple(size) == (8, 8)


# ---------------------------------------------------------------- floats outside [0, 1] (item 6)
@given(low=st.floats(-300, 1.5), span=st.floats(0, 300), name=st.sampled_from(["illumination", "motion", "pair"]),
       as_numpy=st.booleans())
@HYPOTHESIS
def test_floats_outside_unit_range_are_refused_alike_by_every_transform(low, span, name, as_numpy):
    high = low + span
    t = torch.linspace(low, high, 3 * 8 * 8, dtype=torch.float64).reshape(3, 8, 8).float()
    lo, hi = float(t.min()), float(t.max())
    x = t.permute(1, 2, 0).numpy() if as_numpy else t
    if lo >= -1e-3 and hi <= 1 + 1e-3:  # float noise: accepted, clamped into [0, 1]
        for out in _outputs(name, x):
            out = torch.as_tensor(np.asarray(out))
            assert 0 <= float(out.min()) and float(out.max()) <= 1
    else:
        with pytest.raises(ValueError, match=r"images: expected floats in \[0, 1\]; got range \[") as err:
            _run(name, x)
        if lo >= 0 and 2 < hi <= 255:
            assert "divide by 255?" in str(err.value)


def test_tiny_overshoot_is_clamped_and_bfloat16_gets_one_rounding_step():
    x = torch.full((3, 8, 8), 1.0 + 5e-4)
    assert float(ILLUMINATION(x, generator=torch.Generator().manual_seed(0)).max()) <= 1.0
    xb = torch.full((3, 8, 8), 1.0 + 2**-7, dtype=torch.bfloat16)  # the next bfloat16 above 1
    assert float(NaturalIllumination(p=0.0)(xb).float().max()) == 1.0
    with pytest.raises(ValueError, match=r"got range \[1\.00\d+, 1\.00\d+\]"):
        NaturalIllumination(p=0.0)(torch.full((3, 8, 8), 1.0 + 2**-7))  # in float32 that is no rounding error


def test_normalised_input_is_refused_with_a_hint():
    x = (torch.rand(3, 8, 8) - 0.45) / 0.22
    with pytest.raises(ValueError, match="Normalize"):
        MOTION(x)


def test_pil_float_image_outside_unit_range_is_refused():
    img = Image.fromarray(np.full((6, 6), 200.0, np.float32))
    with pytest.raises(ValueError, match=r"expected floats in \[0, 1\]; got range \[200, 200\]; divide by 255\?"):
        ILLUMINATION(img)


# ---------------------------------------------------------------- refused inputs name what was expected (items 5, 7)
REFUSED = [
    (np.zeros((24, 24, 4), np.uint8), ValueError, r"1 or 3 channels, got 4 .*H x W x C"),
    (np.zeros((3, 24, 24), np.uint8), ValueError, r"1 or 3 channels, got 24 .*channels last"),
    (np.zeros((0, 5, 3), np.uint8), ValueError, "zero height or width"),
    (np.zeros((2, 8, 8, 3), np.uint8), ValueError, r"H x W or H x W x C array, got shape \(2, 8, 8, 3\)"),
    (np.zeros((8, 8, 3), np.int64), TypeError, "numpy input must have dtype .* got int64"),
    (np.zeros((8, 8, 3), bool), TypeError, "got bool"),
    (np.full((8, 8, 3), np.nan, np.float32), ValueError, "NaN or inf"),
    (Image.new("RGB", (0, 0)), ValueError, "zero height or width"),
    (Image.new("L", (5, 0)), ValueError, "zero height or width"),
    (Image.new("RGBA", (8, 8)), ValueError, r"PIL mode 'RGBA' has an alpha channel.*convert\('RGB'\)"),
    (Image.new("LA", (8, 8)), ValueError, r"PIL mode 'LA' has an alpha channel"),
    (Image.new("PA", (8, 8)), ValueError, r"PIL mode 'PA' has an alpha channel"),
    (Image.new("CMYK", (8, 8)), ValueError, r"PIL mode 'CMYK' is not supported.*convert\('RGB'\)"),
    (Image.new("1", (8, 8)), ValueError, r"PIL mode '1' is not supported"),
    (Image.fromarray(np.full((8, 8), 70000, np.int32)), ValueError, r"mode 'I' is read as 16-bit.*70000"),
    (Image.fromarray(np.full((8, 8), -1, np.int32)), ValueError, r"mode 'I' is read as 16-bit.*-1"),
    (torch.zeros(3, 8, 8, dtype=torch.int32), TypeError, "float .* or uint8, got dtype torch.int32"),
    (torch.rand(4, 8, 8), ValueError, "1 or 3 channels, got 4"),
    ("image.png", TypeError, "must be a torch.Tensor, PIL image or numpy array, got str"),
]


def _transparent_palette() -> Image.Image:
    img = Image.new("P", (8, 8))
    img.info["transparency"] = 0
    return img


@pytest.mark.parametrize("name", ["illumination", "motion", "pair"])
@pytest.mark.parametrize("bad,error,message", REFUSED + [(_transparent_palette(), ValueError, "mode 'P' has an alpha")],
                         ids=lambda v: None)
def test_refused_inputs_raise_a_named_error_in_every_transform(name, bad, error, message):
    with pytest.raises(error, match=message) as err:
        _run(name, bad)
    assert str(err.value).startswith("images")


def test_numpy_input_from_the_issue_gets_a_clear_error():
    with pytest.raises(ValueError, match="images must have 1 or 3 channels, got 4"):
        NaturalIllumination()(np.zeros((24, 24, 4), np.uint8))


# ---------------------------------------------------------------- tv_tensors (torchvision v2 pipelines)
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.float16])
@pytest.mark.parametrize("name", ["illumination", "motion", "pair"])
def test_tv_tensors_image_comes_back_as_tv_tensors_image(name, dtype):
    plain = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    plain = (plain * 255).to(dtype) if dtype == torch.uint8 else plain.to(dtype)
    image = tv_tensors.Image(plain)
    wrapped = _outputs(name, image, seed=1)
    bare = _outputs(name, plain, seed=1)
    for w, b in zip(wrapped, bare):
        assert type(w) is tv_tensors.Image and w.dtype == dtype
        assert type(b) is torch.Tensor
        assert torch.equal(w.as_subclass(torch.Tensor), b)


def test_tv_tensors_image_replays_and_single_images_stay_wrapped():
    image = tv_tensors.Image(torch.rand(3, 16, 16))
    out, params = MOTION(image, generator=torch.Generator().manual_seed(0), return_params=True)
    again = MOTION(image, params=params)
    assert type(out) is tv_tensors.Image and type(again) is tv_tensors.Image and out.shape == (3, 16, 16)
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", ["illumination", "motion", "pair"])
def test_tv_tensors_that_are_not_images_are_refused(name):
    with pytest.raises(TypeError, match="tv_tensors.Video"):
        _run(name, tv_tensors.Video(torch.rand(4, 3, 8, 8)))
    with pytest.raises(TypeError, match="Mask"):
        _run(name, tv_tensors.Mask(torch.zeros(1, 8, 8)))


def test_inputs_are_not_mutated():
    x = torch.full((3, 8, 8), 1.0 + 5e-4)  # clamped on the way in, but on a copy
    before = x.clone()
    for name in TRANSFORMS:
        _run(name, x)
    assert torch.equal(x, before)
    img = Image.fromarray((np.arange(64 * 3) % 256).astype(np.uint8).reshape(8, 8, 3))
    pixels = np.asarray(img).copy()
    _run("motion", img)
    assert np.array_equal(np.asarray(img), pixels)


# ---------------------------------------------------------------- the Kornia adapters check alike (issue 24 item 2)
@given(low=st.floats(-300, 1.5), span=st.floats(0, 300), motion=st.booleans(), nan=st.booleans())
@HYPOTHESIS
def test_kornia_adapters_accept_and_refuse_exactly_what_the_core_transforms_do(low, span, motion, nan):
    from mi_augment.adapters import kornia as adapters

    t = torch.linspace(low, low + span, 3 * 8 * 8, dtype=torch.float64).reshape(1, 3, 8, 8).float()
    if nan:
        t[0, 0, 0, 0] = float("nan")
    core = MOTION if motion else ILLUMINATION
    adapter = adapters.NaturalMotion() if motion else adapters.NaturalIllumination()
    try:
        core(t)
    except ValueError as core_error:
        with pytest.raises(ValueError) as adapter_error:
            adapter(t)
        assert str(adapter_error.value) == str(core_error).replace("images", "input", 1)
    else:
        out = adapter(t)
        assert 0 <= float(out.min()) and float(out.max()) <= 1
