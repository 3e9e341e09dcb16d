"""MIPairTransform in a lightly SimCLR pipeline, in place of ``lightly.transforms.SimCLRTransform``.

lightly's multi-view transforms map one image to a list of views; ``MIPairTransform`` does the same (a tuple
of views), except that the views are chosen together, so it takes the place of the whole multi-view
transform, not of one view's pipeline. Its per-view pipelines (``view_transforms``) play the role of
``MultiViewTransform``'s list: here SimCLR's colour pipeline plus lightly's usual ImageNet normalisation.
"""

import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from mi_augment.transforms import MIPairTransform

normalize = v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
pair = MIPairTransform.simclr(32)
pair = MIPairTransform.simclr(32, view_transforms=[[*views, normalize] for views in pair.view_transforms])
transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), pair])

# Any image dataset works; FakeData needs no download.
dataset = torchvision.datasets.FakeData(size=32, image_size=(3, 40, 40), transform=transform)
loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=0)

backbone = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
projection = SimCLRProjectionHead(32, 32, 16)
criterion = NTXentLoss(temperature=0.5)
optimizer = torch.optim.SGD([*backbone.parameters(), *projection.parameters()], lr=0.06)

for (view_a, view_b), _ in loader:
    loss = criterion(projection(backbone(view_a)), projection(backbone(view_b)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"views {tuple(view_a.shape)}, loss {loss.item():.3f}")
