"""train_one_epoch / predict_outputs / evaluate: plain functions that return dicts. No argparse, no printing
(except an optional progress bar on stderr)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from agegender.config import TrainConfig
from agegender.console import progress_bar
from agegender.data.faceset import FaceSet
from agegender.decode import decode_task
from agegender.metrics import accuracy_report
from agegender.training.augment import augment_batch
from agegender.training.losses import distill_loss, multitask_loss


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def bf16_supported() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512 BF16 / AMX). Elsewhere bf16 autocast is
    emulated and measured 10x slower than fp32, so it is switched off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled and bf16_supported())


def to_tensors(faces: FaceSet, channels_last: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """uint8 (N, 3, S, S) images and float32 labels, once per run (augmentation works on batches)."""
    images = torch.from_numpy(np.array(faces.images)).permute(0, 3, 1, 2)  # a writable copy in RAM
    images = images.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    labels = {t: torch.from_numpy(np.asarray(v, dtype=np.float32)) for t, v in faces.labels.items()}
    return images, labels


def learning_rate(cfg: TrainConfig, epoch: float) -> float:
    """Step schedule (lr / gamma at each step epoch) with an optional linear warm-up; ``epoch`` may be
    fractional (progress within the epoch)."""
    lr = cfg.lr * cfg.lr_gamma ** sum(epoch >= s for s in cfg.lr_step_epochs)
    if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
        lr *= (epoch + 1e-3) / cfg.warmup_epochs
    return lr


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                    labels: dict[str, torch.Tensor], cfg: TrainConfig, epoch: int, *,
                    rank: int = 0, world_size: int = 1, progress: bool = False,
                    after_step: Callable[[], None] | None = None) -> dict:
    """One pass over the (shuffled, augmented) training images. Returns mean losses and speed.

    Order and augmentation come from a generator seeded by (seed, epoch), so an epoch is the same
    whether or not the run was resumed. With ``world_size`` > 1 each rank takes every
    world_size-th batch of the same permutation (DistributedSampler-style sharding).
    """
    model.train()
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    torch.manual_seed(cfg.seed * 100_003 + epoch + rank)  # dropout masks
    order = torch.randperm(images.shape[0], generator=gen)
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    if len(batches) > 1 and len(batches[-1]) < cfg.batch_size // 2:
        batches = batches[:-1]  # a tiny last batch gives BatchNorm noisy statistics
    if world_size > 1:
        batches = batches[: len(batches) // world_size * world_size][rank::world_size]
    sums: dict[str, float] = {}
    seen, start = 0, time.perf_counter()
    bar = _bar(len(batches), f"epoch {epoch + 1}", progress)
    for step, index in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, epoch + step / len(batches))
        x = images[index]
        x = augment_batch(x, cfg.augment_policy, cfg.shift, gen) if cfg.augment else x.float()
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = {t: v[index] for t, v in labels.items()}
        with autocast(cfg.bf16):
            outputs = model(x)
        loss, parts = multitask_loss(outputs, y, cfg.task_weights)
        if cfg.teacher:
            kd, kd_parts = distill_loss(outputs, y, cfg.distill_temperature)
            loss = (1.0 - cfg.distill_weight) * loss + cfg.distill_weight * kd
            parts.update(kd_parts)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"non-finite loss ({loss_value}) at epoch {epoch + 1}, step {step + 1} (lr "
                f"{optimizer.param_groups[0]['lr']:.4g}); lower --lr, add --set warmup_epochs=1 or --grad-clip")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_step is not None:
            after_step()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        n = len(index)
        seen += n
        for k, v in {"loss": loss_value, **{f"loss_{t}": p for t, p in parts.items()}}.items():
            sums[k] = sums.get(k, 0.0) + v * n
        bar.update(1)
        bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", refresh=False)
    bar.close()
    seconds = time.perf_counter() - start
    return {**{k: v / max(seen, 1) for k, v in sums.items()}, "train_images": seen, "train_seconds": seconds,
            "train_images_per_s": seen / max(seconds, 1e-9), "lr_end": optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def predict_outputs(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 256,
                    bf16: bool = False, channels_last: bool = False) -> dict[str, np.ndarray]:
    """Raw outputs (logits or values) per task for uint8 images, in eval mode, as float32 numpy."""
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size]
        if isinstance(x, np.ndarray):  # (B, S, S, 3) uint8, possibly a read-only memmap slice
            x = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)
        x = x.float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(bf16):
            out = model(x)
        for t, v in out.items():
            chunks.setdefault(t, []).append(v.float().numpy())
    return {t: np.concatenate(v) for t, v in chunks.items()}


def decode_outputs(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {t: decode_task(t, v)[0] for t, v in outputs.items()}


def evaluate(model: nn.Module, faces: FaceSet, batch_size: int = 256, bf16: bool = False,
             channels_last: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """(metrics, raw outputs) of ``model`` on ``faces``."""
    outputs = predict_outputs(model, faces.images, batch_size, bf16, channels_last)
    return accuracy_report(decode_outputs(outputs), faces.labels), outputs


@torch.no_grad()
def train_eval_shift(model: nn.Module, images: torch.Tensor, n: int = 256, seed: int = 0) -> dict[str, float]:
    """Mean regressed value in train mode minus eval mode on ``n`` training images, per regressed task.

    Dropout before ReLU layers shifts a regressed value between the two modes; rounding then turns
    the shift into errors, so the training log records it every epoch.
    """
    gen = torch.Generator().manual_seed(seed)
    x = images[torch.randperm(images.shape[0], generator=gen)[:n]].float()
    was_training = model.training
    # Train mode here must not update BatchNorm's running statistics.
    bn_momentum = {m: m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    for m in bn_momentum:
        m.momentum = 0.0
    model.train()
    out_train = model(x)
    model.eval()
    out_eval = model(x)
    for m, mom in bn_momentum.items():
        m.momentum = mom
    model.train(was_training)
    return {f"shift_{t}": float(out_train[t].mean() - out_eval[t].mean()) for t in out_train
            if out_train[t].dim() == 1}


@torch.no_grad()
def fc_alive(model: nn.Module, images: torch.Tensor, n: int = 256, seed: int = 0) -> dict[str, float]:
    """Fraction of each FC layer's ReLU units that fire for at least one of ``n`` training images (eval
    mode). A unit that fires for none is dead: it gets no gradient and never recovers."""
    fc = getattr(model, "fc", None)
    if fc is None:
        return {}
    branches = getattr(getattr(model, "head", None), "branches", None)
    if branches is not None:  # one FC stack per task: alive_fc1_age, alive_fc2_age, alive_fc1_gender, ...
        named = [(f"{k + 1}_{task}", m) for task, branch in branches.items()
                 for k, m in enumerate(r for r in branch.modules() if isinstance(r, nn.ReLU))]
    else:
        named = [(str(k + 1), m) for k, m in enumerate(r for r in fc.modules() if isinstance(r, nn.ReLU))]
    seen: dict[str, torch.Tensor] = {}
    hooks = [r.register_forward_hook(lambda _m, _i, out, k=k: seen.__setitem__(k, out.amax(0) > 0))
             for k, r in named]
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    try:
        model(images[torch.randperm(images.shape[0], generator=gen)[:n]].float())
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {f"alive_fc{k}": float(seen[k].float().mean()) for k, _ in named if k in seen}


def _bar(total: int, desc: str, enabled: bool):
    return progress_bar(total, desc, enabled, mininterval=2.0)
