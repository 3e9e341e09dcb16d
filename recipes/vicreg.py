"""VICReg (Bardes, Ponce & LeCun, 2022): invariance (mean squared distance between the views' embeddings),
variance (a hinge keeping each dimension's std above 1) and covariance (off-diagonal covariances to 0),
weighted 25 / 25 / 1. BYOL's asymmetric views. LARS, lr 0.3 per 256 images, weight decay 1e-4.

    python recipes/vicreg.py --dataset default --backbone resnet18 --augment baseline --epochs 100
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from mi_augment.ssl import train
from mi_augment.ssl.heads import mlp
from mi_augment.ssl.losses import vicreg_loss
from mi_augment.ssl.optim import lars_or_adamw


class VICReg(nn.Module):
    """3-layer expander of width ``dim``.

    With ``neighbours`` (``--positives mi-neighbour``) the invariance term pairs each view with the
    (gradient-free) partner, from the support queue of embeddings, of the other view: the mean of
    loss(partner_a, z_b) and loss(z_a, partner_b) (variance and covariance act on the live embeddings)."""

    def __init__(self, encoder: nn.Module, dim: int = 2048, invariance: float = 25.0, variance: float = 25.0,
                 covariance: float = 1.0):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, dim, dim, num_layers=3)
        self.weights = (invariance, variance, covariance)
        self.embedding_dim = dim
        self.neighbours: nn.Module | None = None

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        z_a, z_b = self.projector(self.encoder(torch.cat([view_a, view_b]))).chunk(2)
        if self.neighbours is None:
            return vicreg_loss(z_a, z_b, *self.weights)
        n_a, n_b = self.neighbours(z_a.detach(), z_b.detach(), ids, generator)
        return (vicreg_loss(n_a, z_b, *self.weights) + vicreg_loss(z_a, n_b, *self.weights)) / 2


def main(argv: list[str] | None = None) -> dict:
    parser = train.make_parser("VICReg", lr=0.3, weight_decay=1e-4)
    parser.add_argument("--dim", type=train.positive_int, default=2048, help="expander width")
    parser.add_argument("--invariance", type=train.non_negative_float, default=25.0)
    parser.add_argument("--variance", type=train.non_negative_float, default=25.0)
    parser.add_argument("--covariance", type=train.non_negative_float, default=1.0)
    args = parser.parse_args(argv)
    return train.run(args, method_name="VICReg",
                     build_method=lambda encoder, a: VICReg(encoder, a.dim, a.invariance, a.variance, a.covariance),
                     build_optimizer=lars_or_adamw, views="vicreg")


if __name__ == "__main__":
    main(sys.argv[1:])
