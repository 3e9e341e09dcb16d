"""``mi-augment preview``: candidate crop pairs with their MI scores, and the pairs a policy keeps.

For each image: the K candidate pairs drawn on it (one colour per pair; solid boxes for the candidates the
policy may choose, dashed for the dropped ones, thick for the chosen pair), their scores as bars, and the two
views the transform returns. Without an image, a frame of a real sample clip that ships inside a package.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .outputs import check_output_file, describe_os_error

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="?", default=None,
                   help="an image, a video (first frame) or a folder of images; default: a frame of the real "
                        "'bikes' sample clip")
    p.add_argument("--out", default="pairs.png", help="output PNG (default: pairs.png)")
    p.add_argument("--policy", default="threshold",
                   help="max | min | band | threshold | softmax | random (default: threshold)")
    p.add_argument("--drop", type=float, default=None, help="threshold policy: fraction dropped (default 0.5)")
    p.add_argument("--band", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="band policy: absolute band in nats")
    p.add_argument("--quantiles", type=float, nargs=2, default=None, metavar=("QLO", "QHI"),
                   help="band policy: per-image quantile band (default 0.25 0.75)")
    p.add_argument("--temperature", type=float, default=None, help="softmax policy: temperature (default 0.1)")
    p.add_argument("--n-candidates", type=int, default=8, help="candidate pairs per image (default: 8)")
    p.add_argument("--size", type=int, default=96, help="output size of the views shown (default: 96)")
    p.add_argument("--max-images", type=int, default=4, help="at most this many images from a folder")
    p.add_argument("--max-side", type=int, default=480, help="downscale images to this longer side first")
    p.add_argument("--natural", action="append", nargs="?", const="default", default=None, metavar="MODEL",
                   help="add natural models, under which the candidates are scored: 'default' (the shipped "
                        "illumination and motion models; also what a bare --natural means) or a model file "
                        "written by `mi-augment fit` (repeat the flag for an illumination and a motion file). "
                        "Put the image before --natural")
    p.add_argument("--no-perturbation", action="store_true",
                   help="crops and flips only (no natural models, no per-view colour pipeline)")
    p.add_argument("--seed", type=int, default=0)


def _policy_options(args: argparse.Namespace) -> dict[str, Any]:
    names = {"drop": args.drop, "band": args.band, "quantiles": args.quantiles, "temperature": args.temperature}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in names.items() if v is not None}


def _read_image(path: Path, max_side: int | None) -> Tensor:
    """A float ``[C, H, W]`` image (or first frame of a video), longer side at most ``max_side``."""
    if path.suffix.lower() in _VIDEO_SUFFIXES:
        from ..video.io import read_video

        return read_video(path, max_frames=1, max_side=max_side)[0].float() / 255.0
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    if img.mode not in ("L", "RGB", "I", "I;16", "I;16B", "F"):  # high bit depth passes through unclipped
        img = img.convert("L" if img.mode == "1" else "RGB")
    if max_side is not None and max(img.size) > max_side:
        s = max_side / max(img.size)
        img = img.resize((max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s))), Image.Resampling.BOX)
    from ..core.validation import to_float_batch

    return to_float_batch(img)[0][0]


def load_preview_images(source: str | os.PathLike | None, max_images: int = 4, max_side: int | None = 480
                        ) -> list[tuple[str, Tensor]]:
    """``(name, [C, H, W] float)`` pairs from a file, a folder, or (None) the built-in real sample frame."""
    if source is None:
        from ..datasets.samples import sample_path
        from ..video.io import read_video

        path = sample_path("bikes")
        frame = read_video(path, start=30, max_frames=1, max_side=max_side)[0]
        return [(f"{path.name} (frame 30)", frame.float() / 255.0)]
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) in folder {path}")
        return [(f.name, _read_image(f, max_side)) for f in files[:max_images]]
    if not path.is_file():
        raise FileNotFoundError(f"image or folder not found: {path}")
    return [(path.name, _read_image(path, max_side))]


def render_preview(image: Any = None, out: str | os.PathLike = "pairs.png", *, policy: Any = "threshold",
                   n_candidates: int = 8, seed: int = 0, size: int = 96, transform: Any = None,
                   illumination: Any = None, motion: Any = None, view_transforms: Any = "simclr", max_images: int = 4,
                   max_side: int | None = 480) -> Path:
    """Write the preview figure and return its path.

    Args:
        image: a path (image, video, folder), a float/uint8 ``[C, H, W]`` tensor, a PIL image, or None for a
            frame of the real ``bikes`` sample clip.
        out: PNG path.
        policy, n_candidates, size, illumination, motion, view_transforms: passed to
            :class:`~mi_augment.transforms.pair.MIPairTransform` (ignored when ``transform`` is given).
        seed: seed of the candidate draw.
        transform: a ready ``MIPairTransform`` to preview instead.
    """
    from ..transforms.pair import MIPairTransform

    if image is None or isinstance(image, (str, os.PathLike)):
        items = load_preview_images(image, max_images=max_images, max_side=max_side)
    else:
        from ..core.validation import to_float_batch

        items = [("image", to_float_batch(image)[0][0])]
    if transform is None:
        transform = MIPairTransform(size, n_candidates=n_candidates, policy=policy, illumination=illumination,
                                    motion=motion, view_transforms=view_transforms)
    rows = []
    for i, (name, img) in enumerate(items):
        g = torch.Generator().manual_seed(seed + i)
        views, info = transform(img[None], generator=g, return_info=True)
        rows.append((name, img, views, info))
    return _draw(rows, transform, Path(out))


def _draw(rows: list, transform: Any, out: Path) -> Path:
    from ..figures import pyplot, save_figure

    plt = pyplot()
    from matplotlib.patches import Rectangle

    n = len(rows)
    aspect = max(float(img.shape[2]) / float(img.shape[1]) for _, img, _, _ in rows)
    fig, axes = plt.subplots(n, 4, figsize=(4.2 * max(1.0, aspect) + 7.5, 4.0 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1.6 * max(1.0, aspect), 1.3, 1, 1]})
    tab10 = plt.get_cmap("tab10")
    palette = [tab10(i) for i in range(10) if i != 7]  # no grey: grey bars mean "dropped"
    policy = transform.policy
    for r, (name, img, views, info) in enumerate(rows):
        ax_img, ax_bar, ax_a, ax_b = axes[r]
        ax_img.imshow(_to_numpy(img), cmap="gray" if img.shape[0] == 1 else None)
        cand = info.candidates.boxes[0]  # (V, K, 4)
        ax_img.set_title(f"{name}\n{cand.shape[1]} candidate pair(s), policy {policy}", fontsize=9)
        scores = info.scores[0, 0] if info.scores is not None else None
        keep = info.keep[0] if info.keep is not None else None
        chosen = int(info.chosen[0])
        for k in range(cand.shape[1]):
            colour = palette[k % len(palette)]
            kept = True if keep is None else bool(keep[k])
            is_chosen = k == chosen
            style = dict(fill=False, edgecolor=colour, linewidth=3.0 if is_chosen else 1.2,
                         linestyle="-" if kept else "--", alpha=1.0 if kept else 0.6)
            for box in (cand[0, k], cand[1, k]):
                x1, y1, x2, y2 = (float(v) for v in box)
                ax_img.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, **style))
            x1, y1 = float(cand[0, k, 0]), float(cand[0, k, 1])
            label = f"{k}" + (f": {float(scores[k]):.2f}" if scores is not None else "") + (" *" if is_chosen else "")
            ax_img.text(x1 + 2, y1 + 2, label, color="white", fontsize=7, va="top",
                        bbox=dict(facecolor=colour, alpha=0.8, pad=1, edgecolor="none"))
        ax_img.axis("off")
        if scores is not None:
            colours = [palette[k % len(palette)] if bool(keep[k]) else (0.8, 0.8, 0.8, 1.0) for k in range(len(scores))]
            ax_bar.bar(range(len(scores)), scores.tolist(), color=colours,
                       edgecolor=["black" if k == chosen else "none" for k in range(len(scores))], linewidth=1.5)
            ax_bar.set_xlabel("candidate pair (grey: dropped, outlined: chosen)", fontsize=8)
            ax_bar.set_ylabel("score (nats)" if transform.scorer.__class__.__name__ == "PixelMIScorer" else "score",
                              fontsize=8)
            ax_bar.set_xticks(range(len(scores)))
            ax_bar.tick_params(labelsize=7)
        else:
            ax_bar.text(0.5, 0.5, "policy 'random':\nno scores", ha="center", va="center")
            ax_bar.axis("off")
        iou = float(info.iou[0, 0])
        score = float(info.chosen_score[0])
        pair_text = f"IoU {iou:.2f}" + ("" if score != score else f", score {score:.2f}")
        for ax, view, title in ((ax_a, views[0], "view a"), (ax_b, views[1], f"view b ({pair_text})")):
            ax.imshow(_to_numpy(view[0]), cmap="gray" if view.shape[1] == 1 else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.suptitle("MIPairTransform candidates: same colour = one pair; solid = kept by the policy, dashed = "
                 "dropped, thick = chosen", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out)


def _to_numpy(img: Tensor):
    arr = img.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy()
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def natural_models(specs: list[str] | None) -> dict[str, Any]:
    """``{"illumination": ..., "motion": ...}`` from ``--natural`` values: ``"default"`` gives both shipped
    models, a file gives the model of the kind it holds (read from the file, so any fitted model works).

    Args:
        specs: the values given (None or empty: no natural models).

    Example:
        >>> sorted(natural_models(["default"]))
        ['illumination', 'motion']
        >>> natural_models(None)
        {'illumination': None, 'motion': None}
    """
    from ..core.artifact import ArtifactError, read_json
    from ..perturbations.base import MAX_MODEL_BYTES
    from ..perturbations.illumination import IlluminationModel
    from ..perturbations.motion import MotionModel

    classes = {"illumination": IlluminationModel, "motion": MotionModel}
    models: dict[str, Any] = {"illumination": None, "motion": None}
    for spec in specs or []:
        if spec == "default":
            models.update({kind: cls.default() for kind, cls in classes.items()})
            continue
        path = Path(spec)
        if path.suffix.lower() in _IMAGE_SUFFIXES | _VIDEO_SUFFIXES:
            raise ValueError(f"--natural {spec}: expected 'default' or a model file (.json), got an image or "
                             "video; put the image before --natural")
        doc = read_json(path, max_bytes=MAX_MODEL_BYTES, what="model file")
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind not in classes:
            raise ArtifactError(f"--natural {spec}: not an illumination or motion model (kind {kind!r}); "
                                "write one with `mi-augment fit`")
        models[kind] = classes[kind].load(path)
    return models


def run(args: argparse.Namespace) -> int:
    from ..pairs.policies import make_policy

    out = check_output_file(args.out, "--out")
    policy = make_policy(args.policy, **_policy_options(args))
    if args.natural and args.no_perturbation:
        raise ValueError("--natural and --no-perturbation exclude each other (the first adds natural models, "
                         "the second leaves every perturbation out)")
    natural = natural_models(args.natural)
    try:
        path = render_preview(args.image, out, policy=policy, n_candidates=args.n_candidates, seed=args.seed,
                              size=args.size, illumination=natural["illumination"], motion=natural["motion"],
                              view_transforms=None if args.no_perturbation else "simclr",
                              max_images=args.max_images, max_side=args.max_side)
    except FileNotFoundError:  # a missing input: main() prints its own message
        raise
    except OSError as exc:  # main() reports RuntimeError as one line, without a traceback
        raise RuntimeError(describe_os_error(exc, out)) from None
    print(f"wrote {path}")
    return 0
