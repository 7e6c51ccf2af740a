"""Architectures register themselves by name: ``@register("paper")``; ``create_model(cfg)`` builds one."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from agegender.config import ModelConfig

_REGISTRY: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register(name: str):
    def wrap(builder):
        _REGISTRY[name] = builder
        return builder
    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(cfg: ModelConfig) -> nn.Module:
    try:
        builder = _REGISTRY[cfg.arch]
    except KeyError:
        raise ValueError(f"unknown architecture {cfg.arch!r}; known: {', '.join(list_models())}") from None
    return builder(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
