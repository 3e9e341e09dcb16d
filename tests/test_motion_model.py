"""MotionModel: parameter recovery, density fit, real clips, persistence, bad input, properties."""

from __future__ import annotations

import json
import math
import pickle

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_augment.core.artifact import ArtifactError
from mi_augment.datasets.samples import sample_path
from mi_augment.perturbations.densities import GaussianMixtureDensity
from mi_augment.perturbations.motion import MotionModel, MotionParams
from mi_augment.video.io import VideoReadError

from .test_motion_support import cut_clip, random_motions, synthetic_clip

SIDE = 160  # longer side of the synthetic frames (120 x 160)


def _true_vectors(motions: np.ndarray, exposure: float = 0.5) -> np.ndarray:
    """The 6-D vectors MotionModel should estimate from synthetic_clip(motions) with gaps=(1,)."""
    shift = motions[:, :2] / SIDE
    rows = []
    for t in range(len(motions)):
        velocity = shift[t:t + 2].mean(0)  # the pairs either side of the target frame t+1
        rows.append([*(100 * shift[t]), motions[t, 2], 100 * math.log(motions[t, 3]), *(100 * exposure * velocity)])
    return np.asarray(rows)


@pytest.fixture(scope="module")
def synthetic_fit():
    motions = random_motions(48, seed=7)
    frames, _ = synthetic_clip(motions)
    model = MotionModel(density=GaussianMixtureDensity(n_components=1), max_side=None, draws="changes").fit(frames)
    return model, motions


# ---- recovery -------------------------------------------------------------------------------------------------


def test_per_pair_estimates_match_the_generating_motion(synthetic_fit):
    model, motions = synthetic_fit
    est = model.estimates_.vectors.numpy()
    truth = _true_vectors(motions)
    assert est.shape == truth.shape == (48, 6)
    err = np.abs(est - truth)
    px = 100 / SIDE  # one pixel in percent of the longer side
    assert err[:, 0:2].max() < 0.25 * px  # translation within 0.25 px
    assert err[:, 2].max() < 0.2  # rotation within 0.2 degrees
    assert err[:, 3].max() < 0.25  # zoom within 0.25 %
    assert err[:, 4:6].max() < 0.5 * 0.25 * px  # blur = 0.5 x velocity, within 0.125 px
    assert model.fit_info["n_used"] == 48 and model.fit_info["n_rejected"] == 0


def test_fitted_density_moments_match_the_generating_ones(synthetic_fit):
    model, motions = synthetic_fit
    truth = torch.from_numpy(_true_vectors(motions))
    mean, cov = model.density.mean(), model.density.covariance()
    std_true = truth.std(0, unbiased=False)
    assert torch.allclose(mean, truth.mean(0), atol=0.05)  # 0.05 % of the side = 0.08 px; 0.05 degree
    assert torch.allclose(cov.diagonal().sqrt(), std_true, rtol=0.05, atol=0.03)
    # the blur is correlated with the translation that causes it; the fit keeps that correlation
    corr = cov[0, 4] / (cov[0, 0] * cov[4, 4]).sqrt()
    assert corr > 0.5


def test_gaps_compose_consecutive_motions():
    motions = np.tile([1.0, -0.5, 0.2, 1.005], (9, 1))
    frames, _ = synthetic_clip(motions, foreground=False)
    est = MotionModel(gaps=(1, 4), max_side=None).estimate(frames)
    assert est.n_used == 9 + 6
    gap4 = est.vectors[9:].numpy()
    assert np.allclose(gap4[:, 2], 0.8, atol=0.2) and np.allclose(gap4[:, 3], 400 * math.log(1.005), atol=0.4)
    one = est.vectors[:9].numpy()
    assert np.allclose(gap4[:, 4:6], one[3:, 4:6], atol=0.05)  # blur still follows the per-frame velocity


# ---- real clips ------------------------------------------------------------------------------------------------


def _real(name):
    try:
        return sample_path(name)
    except FileNotFoundError as exc:
        pytest.skip(f"real clip missing: {exc}")


# name: (max_frames, DATA.md median Farneback flow px/frame at native resolution); order of magnitude agreement.
REAL = {"bikes": (None, 0.8), "carphone": (None, 0.3), "tree": (None, 0.2), "vtest": (60, 0.03)}


@pytest.mark.parametrize("name", list(REAL))
def test_real_clip_motion_matches_data_md(name):
    max_frames, expected = REAL[name]
    est = MotionModel(max_side=320, max_frames=max_frames).estimate(str(_real(name)))
    info = est.details["clips"][0]
    side = max(info["native_size"])
    median_px = info["displacement_median"] * side
    assert expected / 4 <= median_px <= expected * 4, f"{name}: median {median_px:.3f} px/frame"
    if name == "bikes":
        assert info["cuts"] == [30, 76, 137, 187, 242]
        assert est.details["rejected_reasons"] == {"hard cut": 5} and est.n_used == 244
        # no observation spans a cut: the largest camera move stays a plausible pan
        assert float(est.vectors[:, :2].abs().max()) < 5.0
    else:
        assert est.n_rejected == 0


# ---- sampling, apply, log_prob ----------------------------------------------------------------------------------


def test_default_model_loads_samples_and_applies():
    model = MotionModel.default()
    assert model.is_fitted and model.kind == "motion"
    params = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert isinstance(params, MotionParams) and params.translation.shape == (5, 2)
    assert params.blur_length.min() >= 0
    out = model.apply(torch.rand(5, 3, 32, 40), params)
    assert out.shape == (5, 3, 32, 40)
    assert torch.isfinite(model.log_prob(params)).all()
    summary = model.summary(n=2000)
    lo, mid, hi = summary["translation_magnitude_px"]
    assert 0 <= lo <= mid <= hi < 100 and summary["components"] >= 1
    assert model.fit_info["n_used"] > 100


def test_zero_motion_is_identity_and_uint8_round_trips():
    model = MotionModel.uniform()
    zeros = MotionParams(torch.zeros(2, 2), torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1),
                         torch.zeros(2, 1))
    x = torch.rand(2, 3, 20, 24)
    assert torch.allclose(model.apply(x, zeros), x, atol=1e-5)
    u8 = (x * 255).round().to(torch.uint8)
    out = model.apply(u8, zeros)
    assert out.dtype == torch.uint8 and torch.equal(out, u8)


def test_translation_is_a_fraction_of_the_longer_side():
    model = MotionModel.uniform()
    params = MotionParams(torch.tensor([[0.1, 0.0]]), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1),
                          torch.zeros(1, 1))
    x = torch.zeros(1, 1, 30, 50)
    x[..., 10, 10] = 1.0
    out = model.apply(x, params)
    assert out[0, 0, 10, 15] == pytest.approx(1.0, abs=1e-5)  # 0.1 x 50 px = 5 px to the right


def test_uniform_prior_ranges():
    model = MotionModel.uniform(max_translation=0.1, max_rotation=10.0, scale=(0.9, 1.2), max_blur=0.02)
    p = model.sample(4000, generator=torch.Generator().manual_seed(0))
    assert p.translation.abs().max() <= 0.1 + 1e-6 and p.translation.abs().max() > 0.09
    assert torch.rad2deg(p.rotation).abs().max() <= 10 + 1e-4
    scale = p.log_scale.exp()
    assert scale.min() >= 0.9 - 1e-5 and scale.max() <= 1.2 + 1e-5
    assert p.blur_length.max() <= 0.02 * math.sqrt(2) + 1e-6
    with pytest.raises(ValueError, match="max_rotation"):
        MotionModel.uniform(max_rotation=-1)
    with pytest.raises(ValueError, match="scale"):
        MotionModel.uniform(scale=(1.2, 0.9))


# ---- persistence ------------------------------------------------------------------------------------------------


def test_save_load_gives_identical_samples(tmp_path, synthetic_fit):
    model, _ = synthetic_fit
    path = model.save(tmp_path / "motion.json")
    loaded = MotionModel.load(path)
    a = model.sample(64, generator=torch.Generator().manual_seed(3))
    b = loaded.sample(64, generator=torch.Generator().manual_seed(3))
    for name in ("translation", "rotation", "log_scale", "blur_length", "blur_angle"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert loaded.config == model.config and loaded.fit_info["n_used"] == 48
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_corrupt_newer_and_pickle_files_error_clearly(tmp_path):
    good = MotionModel.uniform().save(tmp_path / "good.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="corrupt"):
        MotionModel.load(corrupt)
    doc = json.loads(good.read_text())
    doc["version"] = 99
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="newer"):
        MotionModel.load(newer)
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    crafted = tmp_path / "crafted.json"
    crafted.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ArtifactError, match="pickle"):
        MotionModel.load(crafted)
    assert not marker.exists()
    doc["version"], doc["kind"] = 1, "illumination"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="motion"):
        MotionModel.load(other)


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_bad_video_input_errors(tmp_path):
    model = MotionModel(max_side=None)
    with pytest.raises(ValueError, match="at least 2 frames"):
        model.fit(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(torch.full((3, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="channels"):
        model.fit(torch.zeros(3, 2, 32, 32))
    with pytest.raises(ValueError, match="empty list"):
        model.fit([])
    with pytest.raises(TypeError, match="path"):
        model.fit(42)
    frames, _ = cut_clip([1, 1, 1, 1, 1])  # every frame a different scene: all cuts
    with pytest.raises(ValueError, match="no usable frame pairs.*hard cut"):
        model.fit(frames)
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoReadError):
        model.fit(str(garbage))
    with pytest.raises(FileNotFoundError):
        model.fit(str(tmp_path / "missing.mp4"))


def test_one_frame_video_file_errors_and_a_real_file_fits(tmp_path):
    frames, _ = synthetic_clip(np.tile([1.0, 0.5, 0.0, 1.0], (11, 1)), foreground=False)
    arr = frames.permute(0, 2, 3, 1).numpy()[..., ::-1]  # BGR for OpenCV
    for name, count in (("one.avi", 1), ("clip.avi", 12)):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
        for f in arr[:count]:
            writer.write(np.ascontiguousarray(f))
        writer.release()
    with pytest.raises(ValueError, match="1 frame"):
        MotionModel().fit(str(tmp_path / "one.avi"))
    est = MotionModel().estimate([str(tmp_path / "clip.avi"), frames])
    assert est.n_used == 22 and est.details["clips"][0]["native_size"] == [120, 160]
    assert np.allclose(est.vectors[:, 0].numpy(), 100 / SIDE, atol=0.3 * 100 / SIDE)  # MJPEG: 0.3 px


def test_bad_params_and_images_error():
    model = MotionModel.uniform()
    params = model.sample(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="batch size"):
        model.apply(torch.rand(3, 3, 16, 16), params)
    with pytest.raises(ValueError, match="channels"):
        model.apply(torch.rand(2, 4, 16, 16), params)
    with pytest.raises(ValueError, match="empty"):
        model.apply(torch.rand(0, 3, 16, 16), model.sample(0))
    with pytest.raises(ValueError, match="NaN"):
        model.apply(torch.full((2, 3, 16, 16), float("nan")), params)
    bad = MotionParams(params.translation * float("nan"), params.rotation, params.log_scale, params.blur_length,
                       params.blur_angle)
    with pytest.raises(ValueError, match="translation"):
        model.apply(torch.rand(2, 3, 16, 16), bad)
    with pytest.raises(RuntimeError, match="fit"):
        MotionModel().sample(2)
    with pytest.raises(ValueError, match="exposure_fraction"):
        MotionModel(exposure_fraction=2.0)
    with pytest.raises(ValueError, match="gaps"):
        MotionModel(gaps=(0,))


# ---- properties --------------------------------------------------------------------------------------------------

finite = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(finite, finite, finite, st.floats(-20, 20), finite, finite), min_size=1, max_size=6))
def test_vector_params_round_trip(rows):
    model = MotionModel.uniform()
    z = torch.tensor(rows, dtype=torch.float32)
    params = model.params_from_vector(z)
    params.check_batch(len(rows))
    assert (params.blur_length >= 0).all()
    assert torch.allclose(model.params_to_vector(params), z, atol=1e-3)


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 4), c=st.sampled_from([1, 3]), h=st.integers(2, 30), w=st.integers(2, 30),
       seed=st.integers(0, 1000))
def test_apply_keeps_shape_and_range(b, c, h, w, seed):
    model = MotionModel.uniform(max_translation=0.2, max_rotation=30, scale=(0.7, 1.4), max_blur=0.1)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=gen)
    out = model.apply(x, model.sample(b, generator=gen))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5


def test_fit_on_fewer_observations_than_the_minimum_is_refused_with_counts():
    frames, _ = synthetic_clip(random_motions(5, seed=3))  # 6 frames: 5 usable pairs, one short of the 6-D minimum
    model = MotionModel(max_side=None)
    with pytest.raises(ValueError, match=r"only \d usable frame pairs \(\d rejected.*at least 7"):
        model.fit(frames)
    assert not model.is_fitted
    estimates = model.estimate(frames)  # estimating alone is allowed: the counts are there to inspect
    assert estimates.n_used + estimates.n_rejected == 5
