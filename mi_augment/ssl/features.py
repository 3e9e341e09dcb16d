"""Feature maps of an ssl encoder for in-step pair scoring (``--mi-scorer features|crop-image``).

:class:`FeatureMaps` runs an :class:`~mi_augment.ssl.backbones.Encoder`'s backbone up to its pooling, and
:class:`EvalMode` calls a head in eval mode, so scoring never touches BatchNorm statistics or gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["EvalMode", "FeatureMaps"]


class FeatureMaps(torch.nn.Module):
    """An :class:`~mi_augment.ssl.backbones.Encoder`'s backbone up to its pooling, in eval mode:
    ``(B, C, H, W)`` in [0, 1] -> feature maps ``(B, D, h, w)``, for ``input_kind="boxes"`` scorers.

    ResNet: the layers up to ``layer4``; the small CNN: all layers but the pooling; ViT: the patch tokens
    after the transformer (class token dropped), reshaped to the patch grid. Shares the encoder's weights
    (held unregistered, so nothing is saved twice).

    Args:
        encoder: an ssl ``Encoder`` (``backbone``, ``mean``, ``std``), e.g. from ``build_encoder``.

    Shape:
        - Input: ``(B, C, H, W)`` in [0, 1].
        - Output: ``(B, D, h, w)``.

    Example:
        >>> from mi_augment.ssl.backbones import build_encoder
        >>> enc = build_encoder("small_cnn", in_channels=3, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
        ...                     cnn_width=8)
        >>> FeatureMaps(enc)(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 64, 4, 4])
    """

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        net = getattr(encoder, "backbone", None)
        if net is None or not hasattr(encoder, "mean"):
            raise TypeError(f"FeatureMaps needs an ssl Encoder (backbone, mean, std), got {type(encoder).__name__}")
        from torchvision.models import ResNet
        from torchvision.models.vision_transformer import VisionTransformer

        if isinstance(net, ResNet):
            self.kind = "resnet"
        elif isinstance(net, VisionTransformer):
            self.kind = "vit"
        elif isinstance(net, torch.nn.Sequential) and isinstance(net[-2], torch.nn.AdaptiveAvgPool2d):
            self.kind = "cnn"
        else:
            raise TypeError(f"no feature map for backbone {type(net).__name__}: expected a torchvision ResNet, "
                            "VisionTransformer or a Sequential ending in AdaptiveAvgPool2d, Flatten")
        self._encoder = [encoder]

    def _maps(self, x: Tensor) -> Tensor:
        encoder = self._encoder[0]
        net = encoder.backbone
        x = (x - encoder.mean) / encoder.std
        if self.kind == "cnn":
            return net[:-2](x)
        if self.kind == "resnet":
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            return net.layer4(net.layer3(net.layer2(net.layer1(x))))
        tokens = net.conv_proj(x)  # (B, D, h, w)
        b, d, h, w = tokens.shape
        seq = torch.cat([net.class_token.expand(b, -1, -1), tokens.flatten(2).transpose(1, 2)], dim=1)
        return net.encoder(seq)[:, 1:].transpose(1, 2).reshape(b, d, h, w)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        encoder = self._encoder[0]
        was_training = encoder.training
        encoder.eval()
        try:
            return self._maps(x)
        finally:
            encoder.train(was_training)


class EvalMode(torch.nn.Module):
    """Calls a module in eval mode (and restores its mode), so scoring never updates BatchNorm statistics.
    Holds the module in a list so it is not registered (and not saved) twice.

    Args:
        module: the head (or any module) to call.

    Example:
        >>> head = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)).train()
        >>> _ = EvalMode(head)(torch.rand(3, 4))
        >>> head.training, int(head[1].num_batches_tracked)
        (True, 0)
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self._module = [module]

    def forward(self, x: Tensor) -> Tensor:
        module = self._module[0]
        was_training = module.training
        module.eval()
        try:
            return module(x)
        finally:
            module.train(was_training)
