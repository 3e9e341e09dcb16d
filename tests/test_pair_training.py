"""Drop-in use: a few SimCLR steps with MIPairTransform, per sample in DataLoader workers and on a batch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mi_augment.perturbations.illumination import IlluminationModel
from mi_augment.perturbations.motion import MotionModel
from mi_augment.transforms.pair import MIPairTransform

MODELS = dict(illumination=IlluminationModel.uniform(0.3, 0.3, 0.3, 0.0), motion=MotionModel.uniform())


class PILImages(torch.utils.data.Dataset):
    """Small random RGB PIL images with a label, like torchvision's CIFAR datasets return them."""

    def __init__(self, n: int = 32, side: int = 36, transform=None):
        rng = np.random.default_rng(0)
        self.images = [Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)) for _ in range(n)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), i % 10


def tiny_encoder() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 16))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross entropy over 2B views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, targets)


def _train(batches, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = tiny_encoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _, (view_a, view_b) in zip(range(steps), batches):
        loss = nt_xent(model(view_a), model(view_b))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_simclr_steps_in_a_dataloader_with_workers():
    from torchvision.transforms import v2

    pipeline = v2.Compose([MIPairTransform(24, **MODELS), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    loader = torch.utils.data.DataLoader(PILImages(transform=pipeline), batch_size=8, num_workers=2, shuffle=True)
    batches = ((a, b) for (a, b), _ in loader)
    losses = _train(batches, steps=4)
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_simclr_steps_with_the_batch_form():
    t = MIPairTransform(24, **MODELS)
    data = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # "resident on the device"
    g = torch.Generator().manual_seed(1)

    def batches():
        for i in range(0, 32, 8):
            yield t(data[i:i + 8], generator=g)

    losses = _train(batches(), steps=4)
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_simclr_steps_with_views_made_per_batch_in_the_workers():
    """MIPairCollate: the workers collate and transform whole batches (the batched path's speed)."""
    from mi_augment.transforms import MIPairCollate

    data = PILImages(transform=lambda img: img)
    loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=2, shuffle=True,
                                         collate_fn=MIPairCollate(MIPairTransform(24, **MODELS)))
    seen = []

    def batches():
        for (a, b), labels in loader:
            assert a.shape == b.shape == (8, 3, 24, 24) and a.dtype == torch.float32
            assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0 and labels.shape == (8,)
            seen.append(labels)
            yield a, b

    losses = _train(batches(), steps=4)
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert sorted(torch.cat(seen).tolist()) == sorted(i % 10 for i in range(32))
