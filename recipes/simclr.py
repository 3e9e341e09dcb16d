"""SimCLR (Chen et al., 2020): two augmented views of each image; a projection MLP; each view must pick out
its partner among all other views of the batch (NT-Xent). LARS, lr 0.3 per 256 images, weight decay 1e-6.

    python recipes/simclr.py --dataset default --backbone resnet18 --augment baseline --epochs 100
    python recipes/simclr.py --dataset synthetic --backbone vit_tiny --augment mi --epochs 1
    torchrun --nproc_per_node 2 recipes/simclr.py --dataset cifar10 --download

Shared pieces (data, backbones, augment modes, the loop, evaluation) are in ``mi_augment.ssl``.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from mi_augment.ssl import train
from mi_augment.ssl.heads import mlp
from mi_augment.ssl.losses import nnclr_loss, nt_xent
from mi_augment.ssl.optim import lars_or_adamw


class SimCLR(nn.Module):
    """Encoder + 2-layer projector (hidden 2048, out 128); NT-Xent at ``temperature``.

    With ``neighbours`` (``--positives mi-neighbour``, set by the training loop) it is NNCLR: each view's
    partner from the support queue of (detached) projections must pick out the other view among the batch."""

    def __init__(self, encoder: nn.Module, temperature: float = 0.2, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, hidden_dim, out_dim, num_layers=2)
        self.temperature = temperature
        self.embedding_dim = out_dim
        self.neighbours: nn.Module | None = None

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        # One pass over both views: BatchNorm sees the whole 2N batch, as in the paper.
        z_a, z_b = self.projector(self.encoder(torch.cat([view_a, view_b]))).chunk(2)
        if self.neighbours is None:
            return nt_xent(z_a, z_b, self.temperature)
        n_a, n_b = self.neighbours(z_a.detach(), z_b.detach(), ids, generator)
        return (nnclr_loss(n_a, z_b, self.temperature) + nnclr_loss(n_b, z_a, self.temperature)) / 2


def main(argv: list[str] | None = None) -> dict:
    parser = train.make_parser("SimCLR", lr=0.3, weight_decay=1e-6)
    parser.add_argument("--temperature", type=train.positive_float, default=0.2)
    parser.add_argument("--hidden-dim", type=train.positive_int, default=2048, help="projector hidden width")
    args = parser.parse_args(argv)
    return train.run(args, method_name="SimCLR",
                     build_method=lambda encoder, a: SimCLR(encoder, a.temperature, a.hidden_dim),
                     build_optimizer=lars_or_adamw, views="simclr")


if __name__ == "__main__":
    main(sys.argv[1:])
