"""Barlow Twins (Zbontar et al., 2021): make the cross-correlation matrix between the two views' standardised
embeddings the identity: invariant along the diagonal, decorrelated off it (weight 5e-3). BYOL's asymmetric
views. LARS, lr 0.3 per 256 images, weight decay 1e-4 (solo-learn's CIFAR setting).

    python recipes/barlow_twins.py --dataset default --backbone resnet18 --augment baseline --epochs 100
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from mi_augment.ssl import train
from mi_augment.ssl.heads import mlp
from mi_augment.ssl.losses import barlow_twins_loss
from mi_augment.ssl.optim import lars_or_adamw


class BarlowTwins(nn.Module):
    """3-layer projector of width ``dim`` (no final BN: the loss standardises).

    With ``neighbours`` (``--positives mi-neighbour``) each view is paired with the (gradient-free) partner,
    from the support queue of projections, of the other view: the mean of loss(partner_a, z_b) and
    loss(z_a, partner_b)."""

    def __init__(self, encoder: nn.Module, dim: int = 2048, off_diagonal_weight: float = 5e-3):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, dim, dim, num_layers=3)
        self.off_diagonal_weight = off_diagonal_weight
        self.embedding_dim = dim
        self.neighbours: nn.Module | None = None

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        z_a, z_b = self.projector(self.encoder(torch.cat([view_a, view_b]))).chunk(2)
        if self.neighbours is None:
            return barlow_twins_loss(z_a, z_b, self.off_diagonal_weight)
        n_a, n_b = self.neighbours(z_a.detach(), z_b.detach(), ids, generator)
        return (barlow_twins_loss(n_a, z_b, self.off_diagonal_weight)
                + barlow_twins_loss(z_a, n_b, self.off_diagonal_weight)) / 2


def main(argv: list[str] | None = None) -> dict:
    parser = train.make_parser("BarlowTwins", lr=0.3, weight_decay=1e-4)
    parser.add_argument("--dim", type=train.positive_int, default=2048, help="projector width")
    parser.add_argument("--off-diagonal-weight", type=train.non_negative_float, default=5e-3)
    args = parser.parse_args(argv)
    return train.run(args, method_name="BarlowTwins",
                     build_method=lambda encoder, a: BarlowTwins(encoder, a.dim, a.off_diagonal_weight),
                     build_optimizer=lars_or_adamw, views="barlow_twins")


if __name__ == "__main__":
    main(sys.argv[1:])
