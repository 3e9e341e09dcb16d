"""What in-step feature scoring and cross-image positives add to a SimCLR training step (issue 10's cost goal).

One run times, interleaved round by round (so machine load hits all three alike):

* ``step``: a ResNet-18 (small-image stem) SimCLR step at 32 px: forward of both views of the batch,
  projector, NT-Xent, backward, SGD update;
* ``score``: scoring K candidate pairs per image the way a training step would, with the training encoder
  in eval mode: :class:`~mi_augment.pairs.FeatureScorer` with ``input_kind="boxes"`` (one no-grad forward of
  each whole image to its layer-4 feature map, every box pooled with ``roi_align``, the projector as head,
  pointwise MI over the batch's B*K candidates) plus the ``threshold`` policy's choice;
* ``positives``: :func:`~mi_augment.ssl.positives.choose_partners` (``max``, NNCLR) of the batch's projections
  against a :class:`~mi_augment.ssl.positives.SupportQueue`, then pushing them.

CPU runs use ``--threads`` torch threads (1 by default, like ``cpu_breakdown.py``: on the shared 2-vCPU VM
at load ~12, two threads made the step slower, 20 s against 13 s, and the queue's small ops 20x slower, 0.9 s
against 46 ms, through thread hand-offs). It reports the median of each and the ratios ``score / step`` and ``positives / step`` (the goals: <= 0.30
and <= 0.05), and times once the ``"image"`` kind for contrast (2*B*K crops rendered and encoded;
``--no-image-kind`` skips it). Usage::

    python benchmarks/scoring_cost.py                  # CPU, writes benchmarks/results/scoring_cost_cpu.json
    python benchmarks/scoring_cost.py --device cuda    # writes scoring_cost_cuda.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json  # noqa: E402

from mi_augment.pairs import BoxSampler, FeatureScorer, make_policy, render_proxies  # noqa: E402
from mi_augment.ssl.backbones import resnet18  # noqa: E402
from mi_augment.ssl.heads import mlp  # noqa: E402
from mi_augment.ssl.losses import nt_xent  # noqa: E402
from mi_augment.ssl.positives import SupportQueue, choose_partners  # noqa: E402

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def feature_map_trunk(net: nn.Module) -> nn.Sequential:
    """torchvision ResNet layers up to layer4 (no average pool): ``(M, 3, H, W) -> (M, 512, H/8, W/8)``
    at the small-image stem; shares the weights of ``net``."""
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--queue", type=int, default=8192, help="support queue capacity")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds after one warm-up round")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: small ops are not slowed by thread hand-offs on a busy machine)")
    parser.add_argument("--no-image-kind", dest="image_kind", action="store_false",
                        help="skip timing the 'image' kind")
    parser.add_argument("--out", default=None, help="JSON file name under benchmarks/results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    g = torch.Generator(device="cpu").manual_seed(0)
    b, k, size = args.batch, args.candidates, args.size

    net, dim = resnet18(3, small_images=True)
    projector = mlp(dim, 512, 128)
    trunk = feature_map_trunk(net)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    net.to(device)
    projector.to(device)
    params = list(net.parameters()) + list(projector.parameters())
    optimiser = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    scorer = FeatureScorer(trunk, args.temperature, head=projector, input_kind="boxes", mean=MEAN, std=STD)
    policy = make_policy("threshold")
    sampler = BoxSampler()
    queue = SupportQueue(args.queue, 128, device=device)
    queue.push(torch.randn(args.queue, 128, generator=g).to(device), ids=torch.arange(args.queue).to(device) + 10**6)

    images = torch.rand(b, 3, size, size, generator=g).to(device)
    views = torch.rand(2, b, 3, size, size, generator=g).to(device)
    ids = torch.arange(b, device=device)
    state = {}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        net.train()
        projector.train()
        z = projector(net((views.flatten(0, 1) - mean) / std))
        loss = nt_xent(*z.split(b), temperature=args.temperature)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        state["z"] = z.detach()[:b]

    def score():
        boxes = sampler.sample((b, 2, k), size, size, generator=g).to(device)
        net.eval()
        projector.eval()
        scores = scorer(images, boxes[:, 0], boxes[:, 1])
        net.train()
        projector.train()
        return policy.select(scores, g)

    def positives():
        chosen = choose_partners(state["z"], queue, "max", temperature=args.temperature, query_ids=ids)
        queue.push(state["z"], ids=ids)
        return chosen

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    times = {"step": [], "score": [], "positives": []}
    for round_index in range(args.rounds + 1):
        for name, fn in (("step", step), ("score", score), ("positives", positives)):
            t = timed(fn)
            if round_index:  # round 0 warms up
                times[name].append(t)
        print(f"round {round_index}: " + ", ".join(f"{n} {v[-1] * 1e3:.1f} ms" for n, v in times.items() if v)
              if round_index else "warm-up done", flush=True)

    def median(v):
        v = sorted(v)
        return v[len(v) // 2]

    result = {
        "config": vars(args),
        "seconds": {name: median(v) for name, v in times.items()},
        "all_seconds": times,
    }
    result["ratio_score_to_step"] = result["seconds"]["score"] / result["seconds"]["step"]
    result["ratio_positives_to_step"] = result["seconds"]["positives"] / result["seconds"]["step"]
    if args.image_kind:
        image_scorer = FeatureScorer(nn.Sequential(trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten()), args.temperature,
                                     head=projector, mean=MEAN, std=STD)

        def score_images():
            boxes = sampler.sample((b, 2, k), size, size, generator=g).to(device)
            net.eval()
            projector.eval()
            crops = [render_proxies(images, boxes[:, i], size, "image") for i in (0, 1)]
            scores = image_scorer(*crops)
            net.train()
            projector.train()
            return policy.select(scores, g)

        result["seconds"]["score_image_kind"] = timed(score_images)
        result["ratio_image_kind_to_step"] = result["seconds"]["score_image_kind"] / result["seconds"]["step"]
    name = args.out or f"scoring_cost_{device.type}.json"
    path = write_json(name, result)
    print(f"step {result['seconds']['step'] * 1e3:.1f} ms; feature scoring (boxes, K={k}) "
          f"{result['ratio_score_to_step']:.3f}x step; positives (queue {args.queue}) "
          f"{result['ratio_positives_to_step']:.4f}x step" +
          (f"; image kind {result['ratio_image_kind_to_step']:.2f}x step" if args.image_kind else ""))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
