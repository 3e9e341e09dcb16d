"""NaturalMotion and NaturalIllumination as Kornia augmentations on a GPU-style batch.

Boxes, masks and keypoints move with the motion inside ``AugmentationSequential``; ``params=seq._params``
replays the last draw; ``seq.inverse`` undoes the motion. Run: ``python docs/examples/kornia_pipeline.py``.
"""

import kornia.augmentation as K
import torch

from mi_augment.adapters.kornia import NaturalIllumination, NaturalMotion


def main() -> None:
    torch.manual_seed(0)  # Kornia's seeding convention also seeds the mi_augment models' draws
    b, h, w = 8, 96, 128
    images = torch.rand(b, 3, h, w)
    boxes = torch.tensor([[[30.0, 20.0, 90.0, 70.0]]]).repeat(b, 1, 1)  # xyxy
    masks = torch.zeros(b, 1, h, w)
    masks[:, :, 20:70, 30:90] = 1.0
    points = torch.tensor([[[60.0, 45.0]]]).repeat(b, 1, 1)

    seq = K.AugmentationSequential(
        NaturalMotion(strength=4.0),
        NaturalIllumination(),
        K.RandomHorizontalFlip(p=0.5),
        data_keys=["input", "bbox_xyxy", "mask", "keypoints"],
    )
    out, out_boxes, out_masks, out_points = seq(images, boxes, masks, points)
    again = seq(images, boxes, masks, points, params=seq._params)
    back = seq.inverse(out, out_boxes, out_masks, out_points)
    print(f"batch {tuple(out.shape)}; first box {[round(v, 1) for v in out_boxes[0, 0].tolist()]}")
    print(f"replay identical: {all(torch.equal(a, c) for a, c in zip((out, out_boxes), again))}; "
          f"keypoints after inverse within {float((back[3] - points).abs().max()):.1e} px")


if __name__ == "__main__":
    main()
