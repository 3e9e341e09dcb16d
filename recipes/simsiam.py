"""SimSiam (Chen & He, 2021): BYOL without the momentum network. A predictor maps one view's projection to
the other's, with a stop-gradient on the target side; the predictor's learning rate stays fixed.
SGD with momentum 0.9, lr 0.05 per 256 images, weight decay 5e-4 (the paper's CIFAR setting).

    python recipes/simsiam.py --dataset default --backbone resnet18 --augment baseline --epochs 100
    python recipes/simsiam.py --dataset synthetic --backbone small_cnn --augment mi --epochs 1
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from mi_augment.ssl import train
from mi_augment.ssl.heads import mlp
from mi_augment.ssl.losses import negative_cosine
from mi_augment.ssl.optim import adamw_for_vit, param_groups


class SimSiam(nn.Module):
    """3-layer projector (last BN) of width ``dim``; 2-layer bottleneck predictor (``dim -> dim/4 -> dim``).

    With ``neighbours`` (``--positives mi-neighbour``) the prediction regresses the partner of the other
    view's (stop-gradient) projection from the support queue of projections."""

    def __init__(self, encoder: nn.Module, dim: int = 2048):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.dim, dim, dim, num_layers=3, last_bn=True)
        self.predictor = mlp(dim, dim // 4, dim, num_layers=2)
        self.embedding_dim = dim
        self.neighbours: nn.Module | None = None

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.projector(self.encoder(torch.cat([view_a, view_b])))
        p_a, p_b = self.predictor(z).chunk(2)
        z_a, z_b = z.chunk(2)
        if self.neighbours is not None:
            z_a, z_b = self.neighbours(z_a.detach(), z_b.detach(), ids, generator)
        return (negative_cosine(p_a, z_b) + negative_cosine(p_b, z_a)) / 2


def build_optimizer(model: nn.Module, args, lr: float) -> torch.optim.Optimizer:
    if args.backbone == "vit_tiny":
        return adamw_for_vit(model, args.batch_size)
    predictor = {id(p) for p in model.method.predictor.parameters()} if hasattr(model, "method") else \
        {id(p) for p in model.predictor.parameters()}
    rest = nn.ParameterList([p for p in model.parameters() if id(p) not in predictor and p.requires_grad])
    groups = param_groups(rest, args.weight_decay, exclude_bias_and_norm=False)
    pred = [p for p in model.parameters() if id(p) in predictor]
    groups.append({"params": pred, "weight_decay": args.weight_decay, "fixed_lr": True})
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def main(argv: list[str] | None = None) -> dict:
    parser = train.make_parser("SimSiam", lr=0.05, weight_decay=5e-4)
    parser.add_argument("--dim", type=train.positive_int, default=2048, help="projector width (predictor bottleneck: dim / 4)")
    args = parser.parse_args(argv)
    return train.run(args, method_name="SimSiam", build_method=lambda encoder, a: SimSiam(encoder, a.dim),
                     build_optimizer=build_optimizer, views="simsiam")


if __name__ == "__main__":
    main(sys.argv[1:])
