"""BYOL (Grill et al., 2020): an online network (encoder, projector, predictor) predicts the projection a
slowly moving target network (momentum 0.99 -> 1) gives the other view; no negatives. Asymmetric views
(blur always on one, solarisation sometimes on the other). LARS, lr 1.0 per 256 images, weight decay 1e-5.

    python recipes/byol.py --dataset default --backbone resnet18 --augment baseline --epochs 100
    python recipes/byol.py --dataset synthetic --backbone vit_tiny --augment twin --epochs 1
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from mi_augment.ssl import train
from mi_augment.ssl.heads import ema_update, mlp, momentum_at, momentum_copy
from mi_augment.ssl.losses import byol_loss
from mi_augment.ssl.optim import lars_or_adamw


class BYOL(nn.Module):
    """Online ``predictor(projector(encoder))`` regresses the target ``projector(encoder)`` of the other view.

    With ``neighbours`` (``--positives mi-neighbour``) the prediction regresses the other view's target
    projection's partner from the support queue of target projections."""

    def __init__(self, encoder: nn.Module, base_momentum: float = 0.99, hidden_dim: int = 2048, out_dim: int = 256):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, hidden_dim, out_dim, num_layers=2)
        self.predictor = mlp(out_dim, hidden_dim, out_dim, num_layers=2)
        self.target_encoder = momentum_copy(encoder)
        self.target_projector = momentum_copy(self.projector)
        self.base_momentum = base_momentum
        self.embedding_dim = out_dim
        self.neighbours: nn.Module | None = None

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        both = torch.cat([view_a, view_b])
        p_a, p_b = self.predictor(self.projector(self.encoder(both))).chunk(2)
        with torch.no_grad():
            t_a, t_b = self.target_projector(self.target_encoder(both)).chunk(2)
        if self.neighbours is not None:
            t_a, t_b = self.neighbours(t_a, t_b, ids, generator)
        return byol_loss(p_a, t_b) + byol_loss(p_b, t_a)

    def after_step(self, progress: float) -> None:
        m = momentum_at(self.base_momentum, progress)
        ema_update(self.target_encoder, self.encoder, m)
        ema_update(self.target_projector, self.projector, m)


def main(argv: list[str] | None = None) -> dict:
    parser = train.make_parser("BYOL", lr=1.0, weight_decay=1e-5)
    parser.add_argument("--base-momentum", type=train.unit_interval, default=0.99)
    parser.add_argument("--hidden-dim", type=train.positive_int, default=2048, help="projector / predictor hidden width")
    args = parser.parse_args(argv)
    return train.run(args, method_name="BYOL",
                     build_method=lambda encoder, a: BYOL(encoder, a.base_momentum, a.hidden_dim),
                     build_optimizer=lars_or_adamw, views="byol")


if __name__ == "__main__":
    main(sys.argv[1:])
