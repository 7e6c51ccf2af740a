"""``lite`` and ``lite-dense``: multi-task nets for the same 64x64 face, designed for CPUs.

Stem conv 3x3/2 (32 ch, 32x32) then 7 depthwise-separable blocks [dw 3x3 -> BN -> ReLU -> pw 1x1 -> BN ->
ReLU] widening 64, 128, 128, 256, 256, 512, 512 and halving the side at the 2nd, 4th and 6th (32 -> 4),
global average pooling, FC 256 (BN, ReLU, dropout) and the shared MultiTaskHead.

About 46 MFLOP per face (the paper net: 476; OpenVINO's age-gender-recognition-retail-0013: 94).
The layout is fixed: ``ModelConfig.conv_layers``, ``fc_width`` and ``fc_norm`` (always on) do not apply.

``lite-dense``: the same budget in dense 3x3 convolutions only, which run near the CPU's compute ceiling
where depthwise ones are bound by memory: conv 3x3/2 (32 ch, 32x32), conv 3x3/2 (32, 16x16), conv 64,
max-pool, conv 128, conv 128 (8x8), max-pool, conv 256 (4x4), each with BN + ReLU; then the same pooling,
FC 256 and heads. About 54 MFLOP per face, as fast per face as ``lite`` in ONNX Runtime
(benchmarks/dense_vs_depthwise.py).
"""

from __future__ import annotations

from torch import nn

from agegender.config import ModelConfig
from agegender.models.heads import FaceNet, MultiTaskHead, Normalize
from agegender.models.registry import register

# lite-dense: (out channels, stride) of each conv 3x3 + BN + ReLU, "pool" = max-pool 2x2.
DENSE_LAYERS = ((32, 2), (32, 2), (64, 1), "pool", (128, 1), (128, 1), "pool", (256, 1))

# (out channels, stride) of each depthwise-separable block after the 32-channel stride-2 stem.
LITE_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1))
LITE_FC = 256


def _bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


def separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False), *_bn_relu(cin),
        nn.Conv2d(cin, cout, 1, bias=False), *_bn_relu(cout),
    )


class _SmallNet(FaceNet):
    """``layers`` (ending in ``cin`` channels), then global average pooling, FC 256 (BN, ReLU, dropout) and the
    shared MultiTaskHead; He initialisation throughout."""

    def __init__(self, cfg: ModelConfig, layers: list[nn.Module], cin: int):
        super().__init__()
        self.cfg = cfg
        self.normalize = Normalize(cfg.mean, cfg.std)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, cin)
            nn.Linear(cin, LITE_FC, bias=False), nn.BatchNorm1d(LITE_FC), nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
        )
        self.head = MultiTaskHead(LITE_FC, cfg.tasks, cfg.head, cfg.age_bins, cfg.years_in_groups,
                                  cfg.years_estimate)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.kaiming_uniform_(self.fc[2].weight, nonlinearity="relu")


@register("lite")
class LiteNet(_SmallNet):
    def __init__(self, cfg: ModelConfig):
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), *_bn_relu(32)]
        cin = 32
        for cout, stride in LITE_BLOCKS:
            layers.append(separable(cin, cout, stride))
            cin = cout
        super().__init__(cfg, layers, cin)


@register("lite-dense")
class DenseLiteNet(_SmallNet):
    def __init__(self, cfg: ModelConfig):
        layers: list[nn.Module] = []
        cin = 3
        for item in DENSE_LAYERS:
            if item == "pool":
                layers.append(nn.MaxPool2d(2))
                continue
            cout, stride = item
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), *_bn_relu(cout)]
            cin = cout
        super().__init__(cfg, layers, cin)
