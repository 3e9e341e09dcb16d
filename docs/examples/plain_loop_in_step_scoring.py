"""A plain PyTorch SimCLR loop where the model being trained chooses the positive pairs, in the training step.

The GPU batch goes through MIPairTransform's four public steps: plan K candidate crop pairs per image, score
them with the encoder's own InfoNCE critic (one forward of each whole image, every candidate box pooled from
the feature map), choose by a policy, render the two views. Runs on CPU in a few seconds; on a GPU the
same code scores and renders on the device.
"""

import torch
from torch import nn

from mi_augment.pairs import FeatureScorer
from mi_augment.ssl.losses import nt_xent
from mi_augment.transforms import MIPairTransform

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"

# An encoder that returns a feature map (B, D, h, w): needed by "boxes" scoring; pooled for the loss.
backbone = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                         nn.ReLU()).to(device)
head = nn.Sequential(nn.Flatten(), nn.Linear(64, 32)).to(device)
optimizer = torch.optim.AdamW([*backbone.parameters(), *head.parameters()], lr=1e-3)

scorer = FeatureScorer(backbone, temperature=0.2, input_kind="boxes")  # SimCLR: the online encoder
pair = MIPairTransform.simclr(32, scorer=scorer, policy="threshold", n_candidates=8)
generator = torch.Generator(device=device).manual_seed(0)

images = torch.rand(64, 3, 48, 48, device=device)  # stands in for a batch from your DataLoader
for step in range(3):
    backbone.eval()  # score without touching BatchNorm statistics (the scorer runs under no_grad)
    candidates = pair.plan(images, generator)
    scores = pair.score(images, candidates)  # (B, 1, K) pointwise MI in nats
    info = pair.choose(candidates, scores, generator)
    view_a, view_b = pair.render(images, info.params, generator)
    backbone.train()
    z_a = head(backbone(view_a).mean((2, 3), keepdim=True))
    z_b = head(backbone(view_b).mean((2, 3), keepdim=True))
    loss = nt_xent(z_a, z_b, temperature=0.2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.3f}, chosen pMI {info.chosen_score.mean().item():.2f} nats "
          f"(candidates {scores.mean().item():.2f}), pair IoU {info.iou.mean().item():.2f}")
