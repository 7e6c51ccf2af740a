"""Training throughput of the paper net on this CPU: fp32 eager vs channels-last vs bf16 autocast, and the
data path alone (a model-less loop over the real cached UTKFace faces with augmentation).

    python benchmarks/train_speed.py --data ../shared/data --threads 1 --out docs/BENCHMARKS.md

All variants run in one process, interleaved round-robin, and are reported as medians and as ratios to
fp32 eager measured in the same run (the machine is shared and noisy). Appends a section to --out.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agegender.config import ModelConfig
from agegender.data.datasets import read_dataset
from agegender.data.faceset import build_faceset
from agegender.models import create_model
from agegender.provenance import machine_line, write_section
from agegender.training.augment import flip_shift as augment
from agegender.training.engine import bf16_supported, to_tensors
from agegender.training.losses import multitask_loss


def relu_before_pool(model: torch.nn.Module) -> torch.nn.Module:
    """The paper's literal block order, conv -> BN -> ReLU -> pool (ours pools first: same function)."""
    for i, block in enumerate(model.features):
        if len(block) == 4 and isinstance(block[2], torch.nn.MaxPool2d):
            model.features[i] = torch.nn.Sequential(block[0], block[1], block[3], block[2])
    return model


def step_fn(channels_last: bool, bf16: bool, images, labels, batch: int, head: str, arch: str = "paper",
            fc_norm: bool = False, compiled: bool = False, literal_order: bool = False):
    model = create_model(ModelConfig(arch=arch, head=head, fc_norm=fc_norm)).train()
    if literal_order:
        model = relu_before_pool(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    forward = torch.compile(model) if compiled else model  # compiled on the warm-up step
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        x = augment(images[idx], 4, gen).float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward(x)
        loss, _ = multitask_loss(out, {t: v[idx] for t, v in labels.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def data_only(images, batch: int):
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        augment(images[idx], 4, gen).float().contiguous(memory_format=torch.channels_last)
    return step


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5, help="timed steps per variant (after 1 warm-up)")
    ap.add_argument("--head", default="cls")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast (emulated, very slow, without "
                                                          "native bf16)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (inductor) of the FC-BatchNorm "
                                                             "net (needs a C++ compiler; about a minute to compile)")
    ap.add_argument("--out", default="docs/BENCHMARKS.md")
    ap.add_argument("--section", help="section title (default: 'Training throughput (N thread(s))'); another "
                                      "machine's numbers go in a section of their own")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    records, _ = read_dataset("utkface", str(Path(args.data) / "utkface"), verbose=False)
    faces = build_faceset(records, 64, tag="utkface", progress=False)
    images, labels = to_tensors(faces.subset(np.arange(0, len(faces), 4)))
    images_cl, _ = to_tensors(faces.subset(np.arange(0, len(faces), 4)), channels_last=True)
    variants = {
        "fp32 eager (NCHW)": step_fn(False, False, images, labels, args.batch, args.head),
        "fp32 channels-last": step_fn(True, False, images_cl, labels, args.batch, args.head),
        "fp32 channels-last, FC BatchNorm": step_fn(True, False, images_cl, labels, args.batch, args.head,
                                                    fc_norm=True),
        "same, ReLU before the pool (the paper's literal order)": step_fn(
            True, False, images_cl, labels, args.batch, args.head, fc_norm=True, literal_order=True),
        "lite net, fp32 channels-last": step_fn(True, False, images_cl, labels, args.batch, args.head, "lite"),
        "lite net, fp32 NCHW": step_fn(False, False, images, labels, args.batch, args.head, "lite"),
        "data path only (no model)": data_only(images_cl, args.batch),
    }
    if args.compile:
        variants["fp32 channels-last, FC BatchNorm, torch.compile"] = step_fn(
            True, False, images_cl, labels, args.batch, args.head, fc_norm=True, compiled=True)
    if args.bf16:
        variants["bf16 autocast, channels-last"] = step_fn(True, True, images_cl, labels, args.batch, args.head)
        variants["bf16 autocast, channels-last, FC BatchNorm (what training runs)"] = step_fn(
            True, True, images_cl, labels, args.batch, args.head, fc_norm=True)
    times = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["fp32 eager (NCHW)"])
    rows = ["| variant | median s / step | images/s | vs fp32 eager |", "|---|---|---|---|"]
    for name, ts in times.items():
        m = statistics.median(ts)
        rows.append(f"| {name} | {m:.3f} | {args.batch / m:.0f} | {base / m:.2f}x |")
    body = "\n".join([
        f"Paper net (and the lite net where named), {args.head} head, batch {args.batch}, SGD step with "
        f"augmentation, torch {torch.__version__}, "
        f"{args.threads} thread(s), {args.rounds} interleaved rounds after warm-up. Native bf16 on this CPU: "
        f"{'yes' if bf16_supported() else 'no (oneDNN emulates it)'}.", "", *rows])
    write_section(args.out, args.section or f"Training throughput ({args.threads} thread(s))", body,
                  shlex.join(["python", *sys.argv]))
    print(body)
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
