"""MIPairTransform: semantics of the policies on images with a known answer, and the transform contract."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mi_augment import kernel_options
from mi_augment.pairs import BandPolicy, FeatureScorer, PixelMIScorer
from mi_augment.perturbations.illumination import IlluminationModel
from mi_augment.perturbations.motion import MotionModel
from mi_augment.transforms.pair import MIPairTransform, PairInfo, PairParams

# Small fast models for most tests; the shipped defaults are exercised in test_defaults_*.
MODELS = dict(illumination=IlluminationModel.uniform(0.3, 0.3, 0.3, 0.05), motion=MotionModel.uniform())
CLEAN = dict(illumination=None, motion=None, view_transforms=None)  # crops and flips only
SHIPPED = dict(illumination="default", motion="default", view_transforms=None)  # the natural models alone


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def half_flat_half_textured(b: int, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    """Left half a constant grey, right half uniform noise: crops inside the left half share nothing."""
    x = torch.full((b, 1, h, w), 0.47)  # not on a bin edge of the 16-bin histogram
    x[..., w // 2:] = torch.rand(b, 1, h, w - w // 2, generator=_gen(seed))
    return x


def _in_left_half(boxes: torch.Tensor, w: int) -> torch.Tensor:
    return boxes[..., 2] <= w / 2


# ---------------------------------------------------------------------------------------------------------
# policy semantics on an image with a known answer
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flat_textured():
    return half_flat_half_textured(128)


def test_threshold_keeps_informative_pairs_and_never_two_flat_crops(flat_textured):
    x = flat_textured
    t = MIPairTransform(32, scale=(0.05, 0.3), **CLEAN)  # small crops: many lie in the flat half
    _, info = t(x, generator=_gen(1), return_info=True)
    scores, keep = info.scores[:, 0], info.keep
    boxes = info.candidates.boxes  # (B, V, K, 4)
    both_flat = _in_left_half(boxes[:, 0], 64) & _in_left_half(boxes[:, 1], 64)
    assert int(both_flat.sum()) >= 10, "the test needs candidates with both crops in the flat half"
    assert not bool((both_flat & keep).any()), "a kept pair lies entirely in the flat half"
    chosen_boxes = info.params.boxes
    assert not bool(_in_left_half(chosen_boxes, 64).all(1).any())
    clear_of_edge = (boxes[:, 0, :, 2] <= 31) & (boxes[:, 1, :, 2] <= 31)  # no bilinear leak
    assert torch.allclose(scores[clear_of_edge], torch.zeros(()), atol=1e-3)  # nothing shared
    # kept / chosen pairs score higher on average than the plain RandomResizedCrop baseline
    _, rinfo = MIPairTransform(32, scale=(0.05, 0.3), policy="random", **CLEAN)(x, generator=_gen(1),
                                                                              return_info=True)
    random_scores = PixelMIScorer()(*_proxies(x, rinfo.params.boxes))
    assert float(info.chosen_score.mean()) > float(random_scores.mean()) + 0.02
    assert float(scores[keep].mean()) > float(scores.mean())


def _proxies(x, boxes):
    from mi_augment.pairs import render_proxies

    return render_proxies(x, boxes[:, :1], 32)[:, 0:1], render_proxies(x, boxes[:, 1:2], 32)[:, 0:1]


@pytest.mark.parametrize("policy", ["max", "min"])
def test_max_and_min_pick_the_extreme_candidate(flat_textured, policy):
    t = MIPairTransform(32, n_candidates=6, policy=policy, **MODELS)
    _, info = t(flat_textured[:16], generator=_gen(2), return_info=True)
    s = info.scores[:, 0]
    expect = s.argmax(1) if policy == "max" else s.argmin(1)
    assert torch.equal(info.chosen, expect)
    assert torch.equal(info.chosen_score, s.gather(1, expect[:, None])[:, 0])


def test_band_respects_its_bounds(flat_textured):
    t = MIPairTransform(32, policy=BandPolicy(band=(0.1, 0.4)), **CLEAN)
    _, info = t(flat_textured[:32], generator=_gen(3), return_info=True)
    s, chosen = info.scores[:, 0], info.chosen_score
    some_inside = ((s >= 0.1) & (s <= 0.4)).any(1)
    assert bool(some_inside.any())
    assert bool(((chosen >= 0.1) & (chosen <= 0.4))[some_inside].all())
    tq = MIPairTransform(32, policy=BandPolicy(quantiles=(0.25, 0.75)), **CLEAN)
    _, qinfo = tq(flat_textured[:32], generator=_gen(3), return_info=True)
    lo, hi = torch.quantile(qinfo.scores[:, 0], torch.tensor([0.25, 0.75]), dim=1)
    assert bool(((qinfo.chosen_score >= lo - 1e-6) & (qinfo.chosen_score <= hi + 1e-6)).all())


def test_random_policy_skips_scoring():
    def forbidden(a, b):
        raise AssertionError("the random policy must not score candidates")

    t = MIPairTransform(24, policy="random", scorer=forbidden, **MODELS)
    views, info = t(torch.rand(3, 3, 40, 40), generator=_gen(0), return_info=True)
    assert info.scores is None and info.keep is None and bool(info.chosen_score.isnan().all())
    assert views[0].shape == (3, 3, 24, 24)


def test_views_come_from_the_chosen_boxes():
    """Without perturbations, each view is exactly the resized (and flipped) crop of its box."""
    from mi_augment.functional.crops import resized_crop

    x = torch.rand(2, 3, 50, 60, generator=_gen(0))
    t = MIPairTransform((20, 24), **CLEAN)
    (a, b), info = t(x, generator=_gen(4), return_info=True)
    expect = resized_crop(x, info.params.boxes, (20, 24), flip=info.params.flip)
    assert torch.allclose(a, expect[:, 0]) and torch.allclose(b, expect[:, 1])
    rows = torch.arange(2)
    assert torch.equal(info.params.boxes, info.candidates.boxes[rows, :, info.chosen])
    assert info.iou.shape == (2, 1) and bool(((info.iou >= 0) & (info.iou <= 1)).all())


# ---------------------------------------------------------------------------------------------------------
# the transform contract
# ---------------------------------------------------------------------------------------------------------
def test_same_seed_same_output_and_replay():
    t = MIPairTransform(32, **MODELS)
    x = torch.rand(4, 3, 48, 48, generator=_gen(0))
    a = t(x, generator=_gen(5))
    b = t(x, generator=_gen(5))
    c = t(x, generator=_gen(6))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    views, info = t(x, generator=_gen(5), return_info=True)
    again, replay_info = t(x, params=info.params, return_info=True)
    assert all(torch.equal(u, v) for u, v in zip(views, again))
    assert replay_info.scores is None and torch.allclose(replay_info.iou, info.iou)
    with pytest.raises(ValueError, match="views"):
        MIPairTransform(32, n_views=3, **MODELS)(x, params=info.params)
    with pytest.raises(TypeError, match="PairParams"):
        t(x, params={"boxes": 1})


def test_batch_of_one_equals_single_and_batch_equals_singles_under_replay():
    t = MIPairTransform(28, **MODELS)
    x = torch.rand(3, 3, 40, 44, generator=_gen(1))
    single = t(x[1], generator=_gen(7))
    batch1 = t(x[1:2], generator=_gen(7))
    assert all(torch.equal(s, b[0]) for s, b in zip(single, batch1))
    views, info = t(x, generator=_gen(8), return_info=True)
    for i in range(3):
        replayed = t(x[i], params=info.params.index(i))
        assert all(torch.allclose(r, v[i], atol=1e-5) for r, v in zip(replayed, views))


def test_input_types_are_returned_and_input_not_mutated():
    t = MIPairTransform(20, **MODELS)
    x = torch.rand(3, 30, 36, generator=_gen(2))
    before = x.clone()
    out = t(x, generator=_gen(0))
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (3, 20, 20) and out[0].dtype == x.dtype
    assert torch.equal(x, before)
    u8 = (x * 255).round().to(torch.uint8)
    out8 = t(u8, generator=_gen(0))
    assert out8[0].dtype == torch.uint8 and out8[0].shape == (3, 20, 20)
    pil = Image.fromarray(u8.permute(1, 2, 0).numpy())
    outp = t(pil, generator=_gen(0))
    assert all(isinstance(v, Image.Image) and v.size == (20, 20) and v.mode == "RGB" for v in outp)
    gray = t(pil.convert("L"), generator=_gen(0))
    assert gray[0].mode == "L"
    arr = np.asarray(pil)
    outn = t(arr, generator=_gen(0))
    assert outn[0].shape == (20, 20, 3) and outn[0].dtype == np.uint8
    # float64 batch stays float64
    assert t(x[None].double(), generator=_gen(0))[0].dtype == torch.float64


def test_one_channel_images_and_range():
    t = MIPairTransform(16, **MODELS)
    x = torch.rand(5, 1, 33, 29, generator=_gen(3))
    views = t(x, generator=_gen(1))
    assert all(v.shape == (5, 1, 16, 16) for v in views)
    assert all(bool((v >= 0).all() and (v <= 1).all()) for v in views)


def test_more_than_two_views_choose_by_the_mean_score_over_partners():
    t = MIPairTransform(16, n_views=4, policy="max", **MODELS)
    views, info = t(torch.rand(2, 3, 40, 40, generator=_gen(4)), generator=_gen(0), return_info=True)
    assert len(views) == 4 and all(v.shape == (2, 3, 16, 16) for v in views)
    assert info.scores.shape == (2, 3, 8) and info.chosen.shape == (2,) and info.iou.shape == (2, 3)
    assert isinstance(info, PairInfo) and isinstance(info.params, PairParams)
    assert info.params.boxes.shape == (2, 4, 4)
    assert torch.equal(info.chosen, info.scores.mean(1).argmax(1))


def test_pickle_round_trip_gives_the_same_output():
    t = MIPairTransform(24, policy="softmax", **MODELS)
    t2 = pickle.loads(pickle.dumps(t))
    x = torch.rand(2, 3, 40, 40, generator=_gen(5))
    assert all(torch.equal(a, b) for a, b in zip(t(x, generator=_gen(1)), t2(x, generator=_gen(1))))


def test_feature_scorer_plugs_in():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    t = MIPairTransform(24, scorer=FeatureScorer(encoder.eval(), proxy_size=16), policy="max", **CLEAN)
    views, info = t(torch.rand(2, 3, 40, 40), generator=_gen(0), return_info=True)
    assert info.scores.shape == (2, 1, 8)
    assert torch.equal(info.chosen, info.scores[:, 0].argmax(1))


def test_argument_errors():
    with pytest.raises(ValueError, match="policy must be one of"):
        MIPairTransform(32, policy="best", **CLEAN)
    with pytest.raises(ValueError, match="size"):
        MIPairTransform(0, **CLEAN)
    with pytest.raises(ValueError, match="n_views"):
        MIPairTransform(32, n_views=1, **CLEAN)
    with pytest.raises(TypeError, match="no longer takes bins: the scorer owns them.*make_scorer"):
        MIPairTransform(32, scorer=lambda a, b: a.mean(-1), bins=8, **CLEAN)
    with pytest.raises(TypeError, match="proxy_size"):
        MIPairTransform(32, proxy_size=16, **CLEAN)
    with pytest.raises(ValueError, match="scorer must be one of"):
        MIPairTransform(32, scorer="best", **CLEAN)
    with pytest.raises(ValueError, match="ambiguous"):
        MIPairTransform(32, illumination=True, motion=False)
    with pytest.raises(FileNotFoundError, match="illumination='natural'.*'default'"):
        MIPairTransform(32, illumination="natural")
    with pytest.raises(TypeError, match="motion must be 'default'.*perturbation model"):
        MIPairTransform(32, motion=3)
    with pytest.raises(ValueError, match="view_transforms='dino'.*simclr"):
        MIPairTransform(32, view_transforms="dino")
    with pytest.raises(ValueError, match="view_transforms='byol'.*2 views"):
        MIPairTransform(32, view_transforms="byol", n_views=3)
    with pytest.raises(ValueError, match="flip"):
        MIPairTransform(32, flip=1.5, **CLEAN)
    with pytest.raises(ValueError, match="estimator"):
        MIPairTransform(32, scorer=PixelMIScorer(estimator="nope"), **CLEAN)
    t = MIPairTransform(32, **CLEAN)
    with pytest.raises(ValueError, match="channels"):
        t(torch.rand(2, 4, 40, 40))
    with pytest.raises(ValueError, match="shape"):
        t(torch.rand(40, 40))


def test_defaults_are_simclr_views_of_scored_crop_pairs(flat_textured):
    """The bare constructor: SimCLR's per-view colour pipeline (no natural models), K=8 scored candidates kept
    by the threshold policy; the views differ in colour from the plain crops, and it pickles."""
    from mi_augment.transforms import ColorJitter, RandomGrayscale

    t = MIPairTransform(32)
    assert t.perturbations == () and t.policy.name == "threshold" and t.n_candidates == 8
    assert [type(s) for s in t.view_transforms[0]] == [ColorJitter, RandomGrayscale]  # no blur at 32 px
    assert t.view_transforms[0][0] is not t.view_transforms[1][0]  # each view its own transforms
    assert [type(s).__name__ for s in MIPairTransform(96).view_transforms[1]][-1] == "GaussianBlur"
    x = flat_textured[:32].expand(-1, 3, -1, -1).contiguous()
    views, info = t(x, generator=_gen(0), return_info=True)
    assert views[0].shape == (32, 3, 32, 32)
    plain = MIPairTransform(32, **CLEAN).render(x, dataclasses.replace(info.params, views=()))
    assert float((views[0] - plain[0]).abs().mean()) > 0.01  # jitter / grayscale changed the colours
    assert float(info.chosen_score.mean()) > float(info.scores.mean()) + 0.02  # kept pairs share more
    clone = pickle.loads(pickle.dumps(t))
    assert all(torch.equal(a, b) for a, b in zip(clone(x[:2], generator=_gen(1)), t(x[:2], generator=_gen(1))))


def test_the_shipped_models_are_opt_in_by_name(flat_textured):
    t = MIPairTransform(32, **SHIPPED)
    assert t.perturbation_names == ("illumination", "motion")
    assert isinstance(t.perturbations[0], IlluminationModel) and isinstance(t.perturbations[1], MotionModel)
    x = flat_textured[:32].expand(-1, 3, -1, -1)
    views, info = t(x, generator=_gen(0), return_info=True)
    # under the natural perturbations too, the kept pairs share more than a random candidate
    assert float(info.chosen_score.mean()) > float(info.scores.mean()) + 0.02
    assert MIPairTransform(32, illumination="default", motion=None).perturbation_names == ("illumination",)


def test_inside_torchvision_v2_compose():
    from torchvision.transforms import v2

    pipe = v2.Compose([MIPairTransform(24, **MODELS), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize([0.5] * 3, [0.25] * 3)])
    img = Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))
    a, b = pipe(img)
    assert a.shape == (3, 24, 24) and b.shape == (3, 24, 24) and a.dtype == torch.float32


@pytest.mark.cuda
def test_cuda_batch_matches_cpu():
    t = MIPairTransform(32, **MODELS)
    x = torch.rand(4, 3, 64, 64, generator=_gen(0))
    cpu, info = t(x, generator=_gen(1), return_info=True)
    gpu = t(x.cuda(), params=info.params)
    assert all(torch.allclose(c, g.cpu(), atol=1e-3) for c, g in zip(cpu, gpu))
    views, ginfo = t(x.cuda(), generator=_gen(1), return_info=True)  # CPU generator: same draws on CUDA data
    assert views[0].device.type == "cuda"
    assert torch.allclose(ginfo.params.boxes.cpu(), info.params.boxes)
    assert float((ginfo.scores.cpu() - info.scores).abs().max()) < 0.05  # a pixel may change histogram bin


# ---- speed paths against the public implementation (each model's apply, step by step) ------------------------
def _zero_motion(params, index=1):
    m = params.perturbations[index]
    zero = {k: torch.zeros_like(getattr(m, k)) for k in ("translation", "rotation", "log_scale", "blur_length")}
    chain = list(params.perturbations)
    chain[index] = dataclasses.replace(m, **zero)
    return dataclasses.replace(params, perturbations=tuple(chain))


@pytest.mark.parametrize("size, side", [(32, 32), (24, 40), (224, 256)])
def test_views_with_the_camera_at_rest_are_the_illuminated_resized_crops(size, side):
    """The definition of a view: crop (and the camera's warp, here at rest) sampled once, then the chain:
    the illumination model's apply, then the motion blur (none at rest)."""
    x = torch.rand(4, 3, side, side, generator=_gen(11))
    t = MIPairTransform(size, policy="random", **SHIPPED)
    params = _zero_motion(t.make_params(x, generator=_gen(12)))
    views = torch.stack(t.render(x, params), 1)
    from mi_augment.functional.crops import resized_crop
    from mi_augment.pairs.plan import flatten_views

    crops = resized_crop(x, params.boxes, size, flip=params.flip).flatten(0, 1)
    lit = t.perturbations[0].apply(crops, flatten_views(params.perturbations[0])).clamp(0, 1)
    # the outer pixel may differ where an enlarged crop touches the image edge: the crop clamps there, the
    # camera's warp reflects about the edge pixel
    assert (views.flatten(0, 1) - lit)[..., 1:-1, 1:-1].abs().max() < 1e-4


def _with_view_blur(t, x, params, lengths):
    """``params`` with the blur of some views set to ``lengths`` view pixels ({(image, view): pixels})."""
    motion = params.perturbations[1]
    side = torch.maximum(params.boxes[..., 2] - params.boxes[..., 0], params.boxes[..., 3] - params.boxes[..., 1])
    zoom = max(x.shape[-2:]) / side  # MotionModel.to_view_frame scales blur lengths by this
    length = motion.blur_length.clone()
    for (i, v), pixels in lengths.items():
        length[i, v] = pixels / t.size[0] / zoom[i, v]
    return dataclasses.replace(params, perturbations=(params.perturbations[0],
                                                      dataclasses.replace(motion, blur_length=length)))


@pytest.mark.parametrize("n_views, channels, long_streaks", [(2, 3, False), (3, 1, False), (2, 3, True)])
def test_chunked_cpu_rendering_equals_whole_batch(n_views, channels, long_streaks):
    """The CPU renders a few images at a time (buffers that stay in cache); one image per chunk gives the
    views that one whole-batch pass gives, including area-averaged views and the longer streaks' dense blur."""
    x = torch.rand(5, channels, 48, 40, generator=_gen(21))
    t = MIPairTransform(24, policy="random", n_views=n_views, **SHIPPED)
    params = t.make_params(x, generator=_gen(22))
    if long_streaks:  # two views streak over 3 and 5 view pixels (the dense blur), the others stay short
        params = _with_view_blur(t, x, params, {(0, 1): 5.0, (3, 0): 3.0})
    with kernel_options(cpu_chunk_elements=1):
        chunked = t.render(x, params)
    with kernel_options(cpu_chunk_elements=1 << 40):
        whole = t.render(x, params)
    assert len(chunked) == n_views
    for a, b in zip(chunked, whole):
        assert a.shape == b.shape == (5, channels, 24, 24) and a.is_contiguous()
        # each chunk mirrors its own margin (float32 grid coordinates shifted by it): rounding-level changes
        assert (a - b).abs().max() < 1e-5
    if long_streaks:  # and the long streaks were really blurred densely: they differ from a short blur
        short = _with_view_blur(t, x, params, {(0, 1): 1.0, (3, 0): 1.0})
        assert (t.render(x, short)[1][0] - whole[1][0]).abs().max() > 1e-3


def test_chunked_step_by_step_rendering_equals_whole_batch():
    """The step-by-step path (here ColorJitter's prior, whose factors need whole-view statistics) renders a
    few images at a time on the CPU too, with the views of one whole-batch pass."""
    x = torch.rand(5, 3, 40, 40, generator=_gen(23))
    t = MIPairTransform(16, policy="random", illumination=IlluminationModel.uniform(), view_transforms=None)
    params = t.make_params(x, generator=_gen(24))
    with kernel_options(cpu_chunk_elements=1):
        chunked = t.render(x, params)
    with kernel_options(cpu_chunk_elements=1 << 40):
        whole = t.render(x, params)
    for a, b in zip(chunked, whole):
        assert a.shape == (5, 3, 16, 16) and a.is_contiguous()
        assert (a - b).abs().max() < 1e-6


def test_scores_do_not_depend_on_the_kernel_backend():
    """kernel_options(fast_paths=False) switches the view renderers only: the same scores choose the same
    candidates, so the two settings render the same views."""
    x = torch.rand(6, 3, 64, 64, generator=_gen(25)) ** 2
    t = MIPairTransform(32, n_candidates=8, n_views=3, **SHIPPED)
    candidates = t.plan(x, _gen(26))
    fast = t.score(x, candidates)
    with kernel_options(fast_paths=False):
        assert torch.equal(t.score(x, candidates), fast)


def test_scores_of_a_huge_batch_of_tiny_images_are_computed_in_bounded_chunks():
    """Scoring runs a few images at a time when the batch exceeds the working set: same scores."""
    x = torch.rand(300, 3, 6, 6, generator=_gen(27))
    t = MIPairTransform(4, n_candidates=4, scorer=PixelMIScorer(proxy_size=4), **CLEAN)
    candidates = t.plan(x, _gen(28))
    with kernel_options(cpu_chunk_elements=256):
        chunked = t.score(x, candidates)
    whole = t.score(x, candidates)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_moving_camera_shows_the_neighbouring_scene():
    """A view translated by the camera motion reads the image around its crop (not a mirror of the crop)."""
    ramp = torch.linspace(0.0, 1.0, 64).expand(1, 3, 64, 64).contiguous()
    t = MIPairTransform(16, policy="random", motion="default", view_transforms=None, flip=0.0)
    params = _zero_motion(t.make_params(ramp, generator=_gen(0)), index=0)
    params = dataclasses.replace(params, boxes=torch.tensor([[[24.0, 24.0, 40.0, 40.0]] * 2]))
    # move the content 2 view pixels to the right: the leftmost columns now show the scene left of the box
    motion = params.perturbations[0]
    shift = torch.tensor([2.0 / 16, 0.0]).expand_as(motion.translation)
    params = dataclasses.replace(params, perturbations=(dataclasses.replace(motion, translation=shift * 16 / 64),))
    view = t.render(ramp, params)[0][0, 0, 8]  # one row
    step = 1.0 / 63
    expect = ramp[0, 0, 0, 22:38]  # columns 22..37 of the image: the crop moved two pixels left
    assert (view - expect).abs().max() < 1e-5
    assert float(view[0]) < float(view[2]) - step  # a mirrored border would repeat column 24's neighbours


# ---- MIPairCollate: views of a whole batch in the DataLoader worker ---------------------------------------------
def _pil(seed: int, side: int = 24) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8))


def test_collate_equals_the_transform_on_the_stacked_batch():
    from mi_augment.transforms import MIPairCollate

    t = MIPairTransform(16)
    samples = [(_pil(i), i) for i in range(6)]
    torch.manual_seed(3)
    (a, b), labels = MIPairCollate(t)(samples)
    stacked = torch.stack([torch.from_numpy(np.array(img)).permute(2, 0, 1) for img, _ in samples]).float() / 255
    torch.manual_seed(3)
    ref_a, ref_b = t(stacked)
    assert torch.equal(a, ref_a) and torch.equal(b, ref_b)
    assert labels.tolist() == list(range(6))


def test_collate_accepts_bare_images_and_keeps_uint8_on_request():
    from mi_augment.transforms import MIPairCollate

    x = [torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8) for _ in range(4)]
    views = MIPairCollate(MIPairTransform(8, n_views=3), to_float=False)(x)
    assert len(views) == 3 and all(v.shape == (4, 3, 8, 8) and v.dtype == torch.uint8 for v in views)
    arrays = [np.asarray(_pil(i)) for i in range(3)]  # numpy HWC uint8
    a, b = MIPairCollate(size=8)(arrays)
    assert a.shape == (3, 3, 8, 8) and a.dtype == torch.float32


def test_collate_errors_name_the_sample_and_what_was_expected():
    from mi_augment.transforms import MIPairCollate

    c = MIPairCollate(MIPairTransform(8))
    with pytest.raises(ValueError, match=r"batch\[1\] is \(3, 30, 30\)"):
        c([(_pil(0), 0), (_pil(1, side=30), 1)])
    with pytest.raises(TypeError, match=r"batch\[0\] must be a PIL image"):
        c(["not an image"])
    with pytest.raises(ValueError, match="non-empty"):
        c([])
    with pytest.raises(TypeError, match="MIPairTransform"):
        MIPairCollate(object())
    with pytest.raises(ValueError, match="either"):
        MIPairCollate(MIPairTransform(8), size=8)


# ------------------------------------------------------------------ issue 24: a trustworthy drop-in
@pytest.mark.parametrize("kind", ["uint8", "pil"])
def test_a_view_pipeline_that_leaves_the_unit_range_returns_float_views(kind):
    """v2.Normalize in the pipeline: the negative half is kept (float views), never clamped into uint8 / PIL."""
    from torchvision.transforms import v2

    x = (torch.rand(3, 40, 40, generator=_gen(40)) * 255).to(torch.uint8)
    image = Image.fromarray(x.permute(1, 2, 0).numpy()) if kind == "pil" else x
    t = MIPairTransform.simclr(32, view_transforms=[v2.Normalize((0.5,) * 3, (0.25,) * 3)])
    views = t(image, generator=_gen(41))
    for v in views:
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.shape == (3, 32, 32)
        assert float(v.min()) < -0.5  # about half the values are below the mean
    plain = MIPairTransform.simclr(32)(image, generator=_gen(41))
    assert type(plain[0]) is type(image)  # a pipeline that stays in [0, 1] returns the input's type


@pytest.mark.parametrize("normalize, mean, std", [(True, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                                                  ({"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2)}, (0.5,) * 3,
                                                   (0.2,) * 3)])
def test_normalize_returns_normalised_float_views_like_lightly(normalize, mean, std):
    x = (torch.rand(3, 40, 40, generator=_gen(42)) * 255).to(torch.uint8)
    image = Image.fromarray(x.permute(1, 2, 0).numpy())
    views = MIPairTransform(32, normalize=normalize)(image, generator=_gen(43))
    with kernel_options(uint8_backend=False):  # the same draws and kernels as the normalised (float) views
        plain = MIPairTransform(32)(x, generator=_gen(43))
    for v, p in zip(views, plain):
        assert v.dtype == torch.float32 and v.shape == (3, 32, 32)
        back = v * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
        assert (back * 255 - p.float()).abs().max() <= 1.0  # one uint8 level
    batch = MIPairTransform(32, normalize=normalize)(x[None].float() / 255, generator=_gen(43))
    assert batch[0].shape == (1, 3, 32, 32)
    with pytest.raises(TypeError, match="normalize must be"):
        MIPairTransform(32, normalize="imagenet")
    with pytest.raises(ValueError, match="std"):
        MIPairTransform(32, normalize={"mean": 0.5, "std": 0})


def test_repr_lists_each_view_transform_once():
    text = repr(MIPairTransform.byol(96))
    assert text.count("RandomSolarize") == 1 and text.count("GaussianBlur") == 2
    assert text.startswith("MIPairTransform(size=(96, 96)")


def test_replaying_one_image_of_a_batch_gives_its_views_to_float_rounding():
    """params.index(i) replays image i's draws; its views equal the batch's to float rounding."""
    t = MIPairTransform(24, illumination="default", motion="default", motion_strength=4.0)
    x = torch.rand(4, 3, 40, 56, generator=_gen(44))
    views, info = t(x, generator=_gen(45), return_info=True)
    for i in range(4):
        again = t(x[i], params=info.params.index(i))
        assert max(float((a - v[i]).abs().max()) for a, v in zip(again, views)) < 1e-4


def test_meta_tensors_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="meta tensor"):
        MIPairTransform(16)(torch.empty(2, 3, 32, 32, device="meta"))
