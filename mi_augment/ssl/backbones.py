"""Encoders: ResNet-18 with a small-image stem, ViT-Tiny from torchvision's ``VisionTransformer``, and a
small CNN for CPU-sized experiments. Every encoder takes ``in_channels`` (1 for Fashion-MNIST) and maps a
float batch in [0, 1] to one feature vector per image; normalisation by the dataset's mean / std is the
encoder's first step, so evaluation code never has to remember it.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor, nn

from . import BACKBONES


class Encoder(nn.Module):
    """``normalise -> backbone``; ``dim`` is the feature size."""

    def __init__(self, backbone: nn.Module, dim: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.backbone = backbone
        self.dim = dim
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone((images - self.mean) / self.std)


def resnet18(in_channels: int = 3, small_images: bool = True) -> tuple[nn.Module, int]:
    """ResNet-18 without its classifier (512 features). ``small_images`` swaps the 7x7 stride-2 stem and
    max-pool for one 3x3 stride-1 convolution, the usual choice for 32 px images (SimCLR's CIFAR variant)."""
    net = torchvision.models.resnet18(weights=None)
    if small_images:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Identity()
    return net, 512


def vit_patch_size(image_size: int) -> int:
    """A patch size giving a grid of about 7 to 14 patches a side: 4 px up to 32 px images, 8 px up to 128,
    16 px above; the largest divisor of ``image_size`` not above that when it does not divide."""
    target = 4 if image_size <= 32 else 8 if image_size <= 128 else 16
    return max(p for p in range(1, target + 1) if image_size % p == 0)


def vit_tiny(image_size: int, in_channels: int = 3, patch_size: int | None = None) -> tuple[nn.Module, int]:
    """ViT-Tiny (12 layers, 3 heads, width 192, MLP 768) built from torchvision's ``VisionTransformer``;
    features are the class token (192)."""
    from torchvision.models.vision_transformer import VisionTransformer

    patch = patch_size or vit_patch_size(image_size)
    if image_size % patch:
        raise ValueError(f"patch size {patch} does not divide image size {image_size}")
    net = VisionTransformer(image_size=image_size, patch_size=patch, num_layers=12, num_heads=3, hidden_dim=192,
                            mlp_dim=768)
    if in_channels != 3:
        proj = nn.Conv2d(in_channels, 192, kernel_size=patch, stride=patch)
        fan_in = in_channels * patch * patch
        nn.init.trunc_normal_(proj.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(proj.bias)
        net.conv_proj = proj
    net.heads = nn.Identity()
    return net, 192


def small_cnn(in_channels: int = 3, width: int = 32) -> tuple[nn.Module, int]:
    """Four 3x3 conv-BN-ReLU layers (widths w, 2w, 4w, 8w; 2x2 max-pools after the first two) and global
    average pooling: about 1/20 of ResNet-18's compute, for runs that must finish in minutes on a CPU."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        if i in (0, 1):
            layers.append(nn.MaxPool2d(2))
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c


def build_encoder(name: str, *, in_channels: int, image_size: int, mean: tuple[float, ...],
                  std: tuple[float, ...], patch_size: int | None = None, cnn_width: int = 32) -> Encoder:
    """An :class:`Encoder` by name: ``resnet18``, ``vit_tiny`` or ``small_cnn`` (of width ``cnn_width``)."""
    if name == "resnet18":
        net, dim = resnet18(in_channels, small_images=image_size <= 64)
    elif name == "vit_tiny":
        net, dim = vit_tiny(image_size, in_channels, patch_size)
    elif name == "small_cnn":
        net, dim = small_cnn(in_channels, cnn_width)
    else:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    return Encoder(net, dim, mean, std)
