"""The paper's Table 2 comparison networks, for timing (random weights are enough there).

- ``alexnet``: Krizhevsky et al. 2012 as a single tower (the Caffe "CaffeNet" layout), 227x227:
  conv 96 11x11/4 -> LRN -> pool, conv 256 5x5 -> LRN -> pool, conv 384, 384, 256 3x3 -> pool,
  FC 4096, FC 4096 (dropout 0.5).
- ``vgg16``: Simonyan & Zisserman configuration D, 224x224, 13 convs 3x3 + FC 4096, FC 4096.
- ``levi``: Levi & Hassner 2015, 227x227: conv 96 7x7/4 -> ReLU -> pool 3/2 -> LRN, conv 256 5x5 ->
  ReLU -> pool -> LRN, conv 384 3x3 -> ReLU -> pool, FC 512, FC 512 (dropout 0.5).

Each ends in the same ``MultiTaskHead`` as ours, so every net answers the same question. The input
size comes from ``ModelConfig.input_size``; ``reference_config`` gives each net its paper size.
"""

from __future__ import annotations

import torch
from torch import nn

from agegender.config import ModelConfig
from agegender.models.heads import FaceNet, MultiTaskHead, Normalize
from agegender.models.registry import register

PAPER_INPUT_SIZE = {"alexnet": 227, "vgg16": 224, "levi": 227, "paper": 64}


def reference_config(arch: str, **kw) -> ModelConfig:
    """A ModelConfig for ``arch`` at the input size its paper uses."""
    return ModelConfig(arch=arch, input_size=PAPER_INPUT_SIZE[arch], **kw)


class _ConvNet(FaceNet):
    """features (conv stack) -> flatten -> fc stack -> MultiTaskHead; the flatten size is measured."""

    def __init__(self, cfg: ModelConfig, features: nn.Sequential, fc_widths: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.normalize = Normalize(cfg.mean, cfg.std)
        self.features = features
        with torch.no_grad():
            flat = features(torch.zeros(1, 3, cfg.input_size, cfg.input_size)).numel()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in fc_widths:
            layers += [nn.Linear(flat, width), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            flat = width
        self.fc = nn.Sequential(*layers)
        self.head = MultiTaskHead(flat, cfg.tasks, cfg.head)



def _conv(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=pad), nn.ReLU(inplace=True)]


def _lrn() -> nn.Module:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)


@register("alexnet")
def alexnet(cfg: ModelConfig) -> nn.Module:
    f = nn.Sequential(
        *_conv(3, 96, 11, 4), _lrn(), nn.MaxPool2d(3, 2),
        *_conv(96, 256, 5, pad=2), _lrn(), nn.MaxPool2d(3, 2),
        *_conv(256, 384, 3, pad=1), *_conv(384, 384, 3, pad=1), *_conv(384, 256, 3, pad=1), nn.MaxPool2d(3, 2),
    )
    return _ConvNet(cfg, f, (4096, 4096))


@register("vgg16")
def vgg16(cfg: ModelConfig) -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for width, repeats in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(repeats):
            layers += _conv(cin, width, 3, pad=1)
            cin = width
        layers.append(nn.MaxPool2d(2))
    return _ConvNet(cfg, nn.Sequential(*layers), (4096, 4096))


@register("levi")
def levi(cfg: ModelConfig) -> nn.Module:
    f = nn.Sequential(
        *_conv(3, 96, 7, 4), nn.MaxPool2d(3, 2), _lrn(),
        *_conv(96, 256, 5, pad=2), nn.MaxPool2d(3, 2), _lrn(),
        *_conv(256, 384, 3, pad=1), nn.MaxPool2d(3, 2),
    )
    return _ConvNet(cfg, f, (512, 512))
