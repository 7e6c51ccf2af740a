"""Images/s of each augmentation policy against a training step of the paper net, same process, same batches.

    python benchmarks/augment_speed.py --threads 1 [--docs docs/BENCHMARKS.md]

The data path must not become the bottleneck: the table gives each policy's images/s alone and the share
of a training step it costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agegender.config import ModelConfig, TrainConfig  # noqa: E402
from agegender.models import create_model  # noqa: E402
from agegender.provenance import publish  # noqa: E402
from agegender.training.augment import POLICIES, augment_batch  # noqa: E402
from agegender.training.engine import autocast  # noqa: E402
from agegender.training.losses import multitask_loss  # noqa: E402


def timed(fn, reps: int) -> float:
    """Median seconds of ``reps`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--docs", help="append the table as a section of this Markdown file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (args.batch, 3, 64, 64), dtype=torch.uint8, generator=gen)
    cfg = ModelConfig(head="cls", tasks=("age", "gender", "age_years"), age_bins=101, fc_norm=True)
    model = create_model(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = {"age": torch.randint(0, 8, (args.batch,)).float(), "gender": torch.randint(0, 2, (args.batch,)).float(),
              "age_years": torch.randint(0, 90, (args.batch,)).float()}
    tcfg = TrainConfig()

    def step():
        x = batch.float().contiguous(memory_format=torch.channels_last)
        with autocast(tcfg.bf16):
            out = model(x)
        loss, _ = multitask_loss(out, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.train()
    t_step = timed(step, args.reps)
    rows = [("training step (paper net, bf16 where native)", t_step, None)]
    for policy in POLICIES:
        t = timed(lambda p=policy: augment_batch(batch, p, 4, gen), args.reps)
        rows.append((f"augmentation `{policy}`", t, t / t_step))
    lines = [f"{args.threads} thread(s), batch {args.batch}, 64 px faces; median of {args.reps} batches", "",
             "| stage | ms per batch | images/s | share of a training step |", "|---|---|---|---|"]
    for name, t, share in rows:
        lines.append(f"| {name} | {t * 1e3:.1f} | {args.batch / t:,.0f} | {'' if share is None else f'{share:.0%}'} |")
    publish(args.docs, "Augmentation speed (training data path)", "\n".join(lines))


if __name__ == "__main__":
    main()
