"""The paper's network: 4 x [conv 3x3 -> BN -> ReLU -> max-pool 2x2] (64, 128, 256, 512 filters) on a
64x64 RGB face, FC 512 -> ReLU -> dropout -> FC 512 -> ReLU -> dropout -> output.

Parameter count with the paper's 2-unit regression output: 6,010,434. Convs carry no bias because
BatchNorm's shift makes it redundant (with biases it would be 6,011,394).

Depth variants for the ablation (Table 3): 3 blocks (flatten 256x8x8), or 5 / 6 where each extra
layer is a 512-filter 3x3 pad-1 conv at 4x4 after the 4th block. We give the extra layers BatchNorm
too (conv -> BN -> ReLU, no pool) so every conv layer is trained the same way; the paper says
only "conv + ReLU".
"""

from __future__ import annotations

from torch import nn

from agegender.config import ModelConfig
from agegender.models.heads import FaceNet, MultiTaskHead, Normalize, TaskBranches
from agegender.models.registry import register

PAPER_WIDTHS = (64, 128, 256, 512)


def conv_bn_relu(cin: int, cout: int, pool: bool) -> nn.Sequential:
    """conv -> BN -> ReLU -> max-pool, computed as conv -> BN -> max-pool -> ReLU: the same function and
    the same gradients (max commutes with the monotonic ReLU; where a window is all negative both orders
    give 0 and no gradient), with the ReLU and its backward on a quarter of the values: a training step
    of the paper net is about 5 % faster here (docs/BENCHMARKS.md, training throughput). The parameter
    names are those of the literal order (the pool and the ReLU have none), so checkpoints load either
    way (tests/test_models.py)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@register("paper", fc_branches=True)
class PaperNet(FaceNet):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not 3 <= cfg.conv_layers <= 6:
            raise ValueError(f"conv_layers must be 3..6, got {cfg.conv_layers}")
        self.cfg = cfg
        self.normalize = Normalize(cfg.mean, cfg.std)
        blocks, cin = [], 3
        for i in range(cfg.conv_layers):
            cout = PAPER_WIDTHS[min(i, 3)]
            blocks.append(conv_bn_relu(cin, cout, pool=i < 4))
            cin = cout
        self.features = nn.Sequential(*blocks)
        pools = min(cfg.conv_layers, 4)
        side = cfg.input_size // 2**pools
        flat = cin * side * side
        stacks: dict[str, nn.Sequential] = {}
        if cfg.fc_branches:
            # The conv trunk is shared; each task gets the paper's two FC layers and its own output.
            stacks = {t: nn.Sequential(*_fc_stack(cfg, flat)) for t in cfg.tasks}
            self.fc = nn.Flatten()
            self.head = TaskBranches({t: nn.Sequential(stacks[t], MultiTaskHead(cfg.fc_width, (t,), cfg.head))
                                      for t in cfg.tasks}, cfg.tasks)
        else:
            self.fc = nn.Sequential(nn.Flatten(), *_fc_stack(cfg, flat))
            self.head = MultiTaskHead(cfg.fc_width, cfg.tasks, cfg.head, cfg.age_bins, cfg.years_in_groups,
                                      cfg.years_estimate)
        _init_weights(self.features)
        _init_weights(self.fc)
        for stack in stacks.values():  # not the output layers: MultiTaskHead initialises those
            _init_weights(stack)


def _fc_stack(cfg: ModelConfig, fan_in: int) -> list[nn.Module]:
    """The paper's two FC layers: [Linear -> (BatchNorm) -> ReLU -> Dropout] x 2."""
    fc: list[nn.Module] = []
    for n_in in (fan_in, cfg.fc_width):
        fc.append(nn.Linear(n_in, cfg.fc_width, bias=not cfg.fc_norm))
        if cfg.fc_norm:
            # The FC input is post-ReLU (all >= 0, 8192-d): an SGD step moves a unit's output for
            # every image the same way, and units died for good; BatchNorm re-centres them.
            fc.append(nn.BatchNorm1d(cfg.fc_width))
        fc += [nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
    return fc


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
