"""Architectures register themselves by name: ``@register("paper")``; ``create_model(cfg)`` builds one."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from agegender.config import ModelConfig

_REGISTRY: dict[str, Callable[[ModelConfig], nn.Module]] = {}
_FC_BRANCHES: set[str] = set()  # architectures that can build one FC stack per task


def register(name: str, *, fc_branches: bool = False):
    def wrap(builder):
        _REGISTRY[name] = builder
        if fc_branches:
            _FC_BRANCHES.add(name)
        return builder
    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(cfg: ModelConfig) -> nn.Module:
    try:
        builder = _REGISTRY[cfg.arch]
    except KeyError:
        raise ValueError(f"unknown architecture {cfg.arch!r}; known: {', '.join(list_models())}") from None
    if cfg.fc_branches and cfg.arch not in _FC_BRANCHES:
        raise ValueError(f"architecture {cfg.arch!r} has no per-task FC branches; "
                         f"those that do: {', '.join(sorted(_FC_BRANCHES))}")
    return builder(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
