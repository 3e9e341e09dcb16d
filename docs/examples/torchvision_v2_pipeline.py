"""NaturalMotion and NaturalIllumination in a torchvision v2 detection pipeline.

The image and its target dict go through ``v2.Compose`` together: the motion moves the boxes, masks and
keypoints with the image, the illumination change leaves them alone, and labels pass through.
Run: ``python docs/examples/torchvision_v2_pipeline.py``.
"""

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from mi_augment.transforms import MIPairTransform, NaturalIllumination, NaturalMotion


def main() -> None:
    torch.manual_seed(0)
    h, w = 120, 160
    image = tv_tensors.Image(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[0, 30:90, 40:100] = 1
    target = {
        "boxes": tv_tensors.BoundingBoxes([[40, 30, 100, 90]], format="XYXY", canvas_size=(h, w),
                                            dtype=torch.float32),
        "masks": tv_tensors.Mask(mask),
        "keypoints": tv_tensors.KeyPoints([[70.0, 60.0]], canvas_size=(h, w)),
        "labels": torch.tensor([3]),
    }
    pipeline = v2.Compose([
        v2.ToDtype(torch.float32, scale=True),
        NaturalMotion(strength=4.0),          # geometric: targets move with the image
        NaturalIllumination(),                # photometric: targets pass through
        v2.RandomHorizontalFlip(p=0.5),
    ])
    out_image, out_target = pipeline(image, target)
    print(f"image {type(out_image).__name__} {tuple(out_image.shape)} {out_image.dtype}")
    box = [round(v, 2) for v in out_target["boxes"][0].tolist()]
    print(f"box {box} ({out_target['boxes'].format.name})")
    print(f"keypoint {[round(v, 2) for v in out_target['keypoints'][0].tolist()]}, "
          f"mask area {int(out_target['masks'].sum())} px, labels {out_target['labels'].tolist()}")

    # MI-chosen positive views with their own targets: one (image, target) per view, each cropped, resized,
    # flipped and moved with its view; SimCLR's colour pipeline per view (independent draws).
    pair = MIPairTransform.simclr(64, scale=(0.3, 1.0))
    (view_a, target_a), (view_b, target_b) = v2.Compose([v2.ToDtype(torch.float32, scale=True), pair])(image, target)
    for name, view, t in (("view a", view_a, target_a), ("view b", view_b, target_b)):
        print(f"{name}: {type(view).__name__} {tuple(view.shape)}, box {[round(v, 1) for v in t['boxes'][0].tolist()]} "
              f"on a {tuple(t['boxes'].canvas_size)} canvas, mask area {int(t['masks'].sum())} px")


if __name__ == "__main__":
    main()
