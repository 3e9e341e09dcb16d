"""MoCo v3 (Chen, Xie & He, 2021): a query encoder with projector and predictor, a momentum key encoder
(an exponential moving average, momentum 0.99 -> 1), and InfoNCE of queries against the keys of the whole
batch, symmetrised over the two views. No queue: large batches supply the negatives. BYOL's asymmetric views,
as the paper uses (``transforms.presets.method_views("moco_v3", size)``).
LARS (lr 0.3 per 256 images) for ResNets, AdamW for ViTs.

    python recipes/moco.py --dataset default --backbone resnet18 --augment baseline --epochs 100
    python recipes/moco.py --dataset synthetic --backbone vit_tiny --augment natural --epochs 1
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from mi_augment.ssl import train
from mi_augment.ssl.heads import ema_update, mlp, momentum_at, momentum_copy
from mi_augment.ssl.losses import info_nce
from mi_augment.ssl.optim import lars_or_adamw


class MoCoV3(nn.Module):
    """Query branch ``predictor(projector(encoder))``; key branch the momentum copy of encoder + projector.

    With ``neighbours`` (``--positives mi-neighbour``) each query's positive logit is its key's partner from
    the support queue of keys; the other keys of the batch stay the negatives."""

    def __init__(self, encoder: nn.Module, temperature: float = 0.2, base_momentum: float = 0.99,
                 hidden_dim: int = 2048, out_dim: int = 256):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, hidden_dim, out_dim, num_layers=3, last_bn=True, last_bn_affine=False)
        self.predictor = mlp(out_dim, hidden_dim, out_dim, num_layers=2, last_bn=True, last_bn_affine=False)
        self.key_encoder = momentum_copy(encoder)
        self.key_projector = momentum_copy(self.projector)
        self.temperature = temperature
        self.base_momentum = base_momentum
        self.embedding_dim = out_dim
        self.neighbours: nn.Module | None = None

    @property
    def target_encoder(self) -> nn.Module:
        """The momentum (key) encoder: what in-step scoring uses."""
        return self.key_encoder

    @property
    def target_projector(self) -> nn.Module:
        return self.key_projector

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        both = torch.cat([view_a, view_b])
        q_a, q_b = self.predictor(self.projector(self.encoder(both))).chunk(2)
        with torch.no_grad():
            k_a, k_b = self.key_projector(self.key_encoder(both)).chunk(2)
        if self.neighbours is None:
            return info_nce(q_a, k_b, self.temperature) + info_nce(q_b, k_a, self.temperature)
        n_a, n_b = self.neighbours(k_a, k_b, ids, generator)
        return info_nce(q_a, k_b, self.temperature, positive=n_b) + info_nce(q_b, k_a, self.temperature, positive=n_a)

    def after_step(self, progress: float) -> None:
        m = momentum_at(self.base_momentum, progress)
        ema_update(self.key_encoder, self.encoder, m)
        ema_update(self.key_projector, self.projector, m)


def main(argv: list[str] | None = None) -> dict:
    parser = train.make_parser("MoCo", lr=0.3, weight_decay=1e-5)
    parser.add_argument("--temperature", type=train.positive_float, default=0.2)
    parser.add_argument("--base-momentum", type=train.unit_interval, default=0.99)
    parser.add_argument("--hidden-dim", type=train.positive_int, default=2048, help="projector / predictor hidden width")
    args = parser.parse_args(argv)
    return train.run(args, method_name="MoCo",
                     build_method=lambda encoder, a: MoCoV3(encoder, a.temperature, a.base_momentum, a.hidden_dim),
                     build_optimizer=lars_or_adamw, views="moco_v3")


if __name__ == "__main__":
    main(sys.argv[1:])
