"""mi_augment inside an albumentations pipeline: natural illumination and camera motion as ordinary
``A.Compose`` members, then MI-chosen positive views whose masks, boxes and keypoints follow each crop.

    python docs/examples/albumentations_pipeline.py
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mi_augment.adapters.albumentations import MIPair, NaturalIllumination, NaturalMotion
from mi_augment.transforms import MIPairTransform

# A small synthetic scene: a bright square (the object) on a textured background.
rng = np.random.default_rng(0)
image = (rng.random((96, 96, 3)) * 120).astype(np.uint8)
image[30:60, 40:70] = 230
mask = np.zeros((96, 96), np.uint8)
mask[30:60, 40:70] = 1

pipeline = A.Compose(
    [
        A.HorizontalFlip(p=0.5),                      # any albumentations transform mixes in
        NaturalIllumination(),                        # shipped model fitted on real footage
        NaturalMotion(),                              # moves masks, boxes and keypoints with the image
        MIPair(MIPairTransform(48, n_candidates=4)),  # last: makes the views (SimCLR's colour per view)
    ],
    bbox_params=A.BboxParams("pascal_voc", label_fields=["labels"]),
    keypoint_params=A.KeypointParams("xy", label_fields=["names"]),
    seed=0,  # albumentations' own seeding drives the torch generators (distinct per DataLoader worker)
)

out = pipeline(image=image, mask=mask, bboxes=[[40, 30, 70, 60]], labels=["square"],
               keypoints=[[55, 45]], names=["centre"])
for v, (view, targets) in enumerate(zip(out["views"], out["view_targets"])):
    print(f"view {v}: image {view.shape} {view.dtype}, mask pixels {int(targets['mask'].sum())}, "
          f"boxes {np.round(targets['bboxes'], 1).tolist()} {targets['labels']}, keypoints {len(targets['keypoints'])}")


# Images only, per image in DataLoader workers: each worker draws its own views (seeded per worker).
views_only = A.Compose([NaturalIllumination(), MIPair(MIPairTransform(32, n_candidates=4))], seed=0)


class Pairs(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        views = views_only(image=image)["views"]
        return tuple(torch.from_numpy(v).permute(2, 0, 1) for v in views)


if __name__ == "__main__":
    loader = DataLoader(Pairs(), batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(0))
    for view_a, view_b in loader:
        print("batch", tuple(view_a.shape), tuple(view_b.shape))
