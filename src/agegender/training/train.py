"""fit(): the training run around engine.train_one_epoch: optimizer, resume, per-epoch JSON-lines log,
atomic checkpoint every epoch, evaluation, distributed (torchrun) support."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from agegender.config import ModelConfig, TrainConfig
from agegender.data.faceset import FaceSet
from agegender.metrics import headline_keys
from agegender.models import count_parameters, create_model
from agegender.training.checkpoint import (
    META,
    WEIGHTS,
    find_checkpoint,
    incomplete_checkpoint,
    load_optimizer_state,
    load_weights,
    read_meta,
    save_checkpoint,
)
from agegender.training.engine import bf16_supported, evaluate, fc_alive, to_tensors, train_eval_shift, train_one_epoch

CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "log.jsonl"


def dist_info() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> None:
    """Join the process group torchrun set up; no-op when not under torchrun.

    gloo, because training keeps its tensors on the CPU (this project has no GPU to test a CUDA path on).
    """
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")


def fit(model_cfg: ModelConfig, train_cfg: TrainConfig, train_set: FaceSet, out_dir: str | os.PathLike,
        eval_set: FaceSet | None = None, *, resume: bool = False, eval_every: int = 0,
        progress: bool = True, log=print) -> dict:
    """Train from scratch (or resume) and return the final metrics on ``eval_set`` (if given).

    ``eval_every`` > 0 evaluates every that many epochs (learning curves); the last epoch is always
    evaluated. Writes ``out_dir/log.jsonl`` and ``out_dir/checkpoint/`` (rank 0 only).
    """
    out = Path(out_dir)
    rank, world = dist_info()
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(train_cfg.seed)
    model = create_model(model_cfg)
    if train_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=train_cfg.lr, momentum=train_cfg.momentum,
                                weight_decay=train_cfg.weight_decay)
    start_epoch, history = _starting_point(out, model, optimizer, model_cfg, train_cfg, resume, log)
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model)
    images, labels = to_tensors(train_set, train_cfg.channels_last)
    if train_cfg.teacher:
        labels.update(teacher_targets(train_cfg.teacher, model_cfg, train_set, train_cfg.channels_last, log))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        log(f"{model_cfg.arch} ({model_cfg.head} head, tasks {','.join(model_cfg.tasks)}): "
            f"{count_parameters(model):,} parameters; {len(train_set)} training faces; "
            f"bf16 {'on' if train_cfg.bf16 and bf16_supported() else 'off'}; world size {world}")
    metrics: dict = {}
    for epoch in range(start_epoch, train_cfg.epochs):
        t0 = time.perf_counter()
        stats = train_one_epoch(ddp_model, optimizer, images, labels, train_cfg, epoch, rank=rank,
                                world_size=world, progress=progress and rank == 0)
        row = {"epoch": epoch + 1, **stats, **_probes(model, model_cfg, train_cfg, images)}
        last = epoch + 1 == train_cfg.epochs
        if eval_set is not None and rank == 0 and (last or (eval_every and (epoch + 1) % eval_every == 0)):
            metrics = _evaluate_into(row, model, eval_set, train_cfg)
        row["epoch_seconds"] = time.perf_counter() - t0
        if rank == 0:
            history.append(row)
            # Checkpoint first: its history is the record; the log line follows.
            save_checkpoint(out / CHECKPOINT_DIR, model, model_cfg, train_cfg, optimizer, epoch + 1,
                            extra={"history": history})
            with open(out / LOG_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")
            log(_epoch_line(row))
    if eval_set is not None and not metrics and rank == 0:
        metrics, _ = evaluate(model, eval_set, bf16=train_cfg.bf16, channels_last=train_cfg.channels_last)
    return {"metrics": metrics, "history": history, "model": model}


def _starting_point(out: Path, model: nn.Module, optimizer, model_cfg: ModelConfig, train_cfg: TrainConfig,
                    resume: bool, log) -> tuple[int, list]:
    """(first epoch to run, history so far): resume from ``out``'s checkpoint (same config only), or start
    from ``train_cfg.init``'s weights, or from scratch. Never overwrites a checkpoint it was not asked to."""
    start_epoch, history = 0, []
    ckpt = find_checkpoint(out / CHECKPOINT_DIR)
    if incomplete_checkpoint(out / CHECKPOINT_DIR):
        raise FileExistsError(f"{out / CHECKPOINT_DIR}: holds an incomplete checkpoint ({WEIGHTS} and {META} "
                              "are both needed); it is not overwritten: move it away or choose another --out")
    if ckpt is not None and not resume:
        raise FileExistsError(f"{out}: holds a checkpoint already; pass --resume to continue it or choose "
                              "another --out (nothing is overwritten)")
    if ckpt is not None:
        meta = read_meta(ckpt)
        # threads only say how the run executes: a run may resume on another number of them
        saved_train = dataclasses.replace(TrainConfig.from_dict(meta["train"]), threads=train_cfg.threads)
        if ModelConfig.from_dict(meta["model"]) != model_cfg or saved_train != train_cfg:
            raise ValueError(f"{ckpt}: was written with another config; resume with the same arguments")
        load_weights(ckpt, model)
        load_optimizer_state(ckpt, optimizer)
        start_epoch = int(meta["epoch"])
        history = meta.get("history", [])
        log(f"resuming {out} after epoch {start_epoch}")
    elif train_cfg.init:
        init_from(model, model_cfg, train_cfg.init, log)
        log(f"initialised from {train_cfg.init}")
    return start_epoch, history


def _probes(model: nn.Module, model_cfg: ModelConfig, train_cfg: TrainConfig, images) -> dict:
    """Per-epoch diagnostics: the train/eval shift of regressed outputs, and dead FC units when asked."""
    row: dict = {}
    if any(not task_is_logits(model_cfg, t) for t in model_cfg.tasks):
        row.update(train_eval_shift(model, images, seed=train_cfg.seed))
    if train_cfg.probe_dead_units:
        row.update(fc_alive(model, images, seed=train_cfg.seed))
    return row


def _evaluate_into(row: dict, model: nn.Module, eval_set: FaceSet, train_cfg: TrainConfig) -> dict:
    t_eval = time.perf_counter()
    metrics, _ = evaluate(model, eval_set, bf16=train_cfg.bf16, channels_last=train_cfg.channels_last)
    row.update({f"eval_{k}": v for k, v in metrics.items() if not k.endswith("confusion")})
    row["eval_seconds"] = time.perf_counter() - t_eval
    return metrics


def init_from(model: nn.Module, model_cfg: ModelConfig, source: str, log=print, flag: str = "--init",
              weights: tuple[dict[str, torch.Tensor], ModelConfig] | None = None) -> None:
    """Load the weights of ``source`` into ``model``: a checkpoint folder of the same model, or an exported
    ``.onnx`` file (``default`` / ``fast``: a bundled model), so a shipped model can be fine-tuned.

    The trunk must match. The output head may differ in one way: a source whose age is 8 group logits
    can start a model whose age is a softmax over years (``--age-bins``): year y starts with its group's
    weights and the group's log-probability shared out over its years, so the new head begins with the
    source's group distribution and learns the years from there; with ``years_in_groups`` the group head
    is kept and the years start uniform within each group."""
    state, theirs = weights or _init_weights(source, flag)  # ``weights``: _init_weights's, already read
    ours = model_cfg.to_dict()
    trunk_keys = [k for k in ours if k not in ("tasks", "age_bins", "years_in_groups", "years_estimate")]
    diff = {k: (theirs.to_dict()[k], ours[k]) for k in trunk_keys if theirs.to_dict()[k] != ours[k]}
    if diff:
        text = ", ".join(f"{k} {a} there, {b} here" for k, (a, b) in diff.items())
        raise ValueError(f"{flag} {source}: another model ({text})")
    target = model.state_dict()
    _adapt_head(state, target, model_cfg, theirs, source, log)
    # buffers fixed by the config (the head's value scaling, year values, group matrix) come from ours: an
    # export folds away the ones its graph does not use
    fixed = {name for name, _ in model.named_buffers() if "running_" not in name and "num_batches" not in name}
    for k in fixed - set(state):
        state[k] = target[k]
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{flag} {source}: weights do not fit this model (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, other shape {shapes[:4]})")
    model.load_state_dict({k: v.to(target[k].dtype) for k, v in state.items()}, strict=False)


def _adapt_head(state: dict, target: dict, ours: ModelConfig, theirs: ModelConfig, source: str, log) -> None:
    """Make ``state`` (the source's weights) fit ``target``'s output head, in place (see init_from)."""
    config_buffers = ("head.year_values", "head.year_group_log", "head.year_group_index")
    for k in config_buffers:
        state.pop(k, None)  # fixed by the config: ours are used
    if theirs.years_in_groups and not ours.years_in_groups:
        # its group head serves as an 8-group source; its years layer cannot be carried over
        state.pop("head.years.weight", None)
        state.pop("head.years.bias", None)
        log(f"--init {source}: its years layer is not used (this model's years are not within groups)")
        groups_only = True
    else:
        groups_only = not theirs.age_bins
    if "head.years.weight" not in target or not groups_only:
        return
    if ours.years_in_groups:
        # the group head is kept as it is; the years start uniform within each group
        state["head.years.weight"] = torch.zeros_like(target["head.years.weight"])
        state["head.years.bias"] = torch.zeros_like(target["head.years.bias"])
        log(f"--init {source}: its 8 age groups kept, years uniform within each group to start")
        return
    if "head.classifiers.age.weight" not in state:
        raise ValueError(f"--init {source}: has no age-group head to start the years head from")
    from agegender.models.heads import year_group_matrix

    groups = year_group_matrix(ours.age_bins)  # (8, bins)
    member = groups.argmax(0)  # group of each year
    w, b = state.pop("head.classifiers.age.weight"), state.pop("head.classifiers.age.bias")
    state["head.years.weight"] = w[member].clone()
    state["head.years.bias"] = b[member] - torch.log(groups.sum(1))[member]
    log(f"--init {source}: years head started from its 8 age-group logits")


def _init_weights(source: str, flag: str = "--init") -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """(state dict, model config) of a checkpoint folder or an exported / bundled ONNX model."""
    from safetensors.torch import load_file

    if source in ("default", "fast") or str(source).endswith(".onnx"):
        import numpy as np
        import onnx
        from onnx import numpy_helper

        from agegender.bundled import BUNDLED_MODELS, asset_path

        path = asset_path(BUNDLED_MODELS[source]) if source in BUNDLED_MODELS else Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{flag} {source}: no such file")
        graph = onnx.load(str(path))
        meta = {p.key: p.value for p in graph.metadata_props}
        if "agegender" not in meta:
            raise ValueError(f"{flag} {source}: not an agegender model (no 'agegender' metadata)")
        cfg = ModelConfig.from_dict(json.loads(meta["agegender"])["model"])
        if json.loads(meta["agegender"]).get("precision") == "int8":
            raise ValueError(f"{flag} {source}: an int8 model; start from an fp32 or fp16 export")
        state = {}
        for init in graph.graph.initializer:
            name = init.name[:-len(".fp16")] if init.name.endswith(".fp16") else init.name
            state[name] = torch.from_numpy(np.array(numpy_helper.to_array(init), dtype=np.float32))
        return state, cfg
    found = find_checkpoint(source)
    if found is None:
        raise FileNotFoundError(f"{flag} {source}: no checkpoint found there")
    return load_file(str(found / "model.safetensors")), ModelConfig.from_dict(read_meta(found)["model"])


def teacher_targets(folder: str, model_cfg: ModelConfig, train_set: FaceSet, channels_last: bool,
                    log=print) -> dict[str, torch.Tensor]:
    """A teacher's logits on every training face, keyed ``teacher:TASK`` (knowledge distillation). The
    teacher is a checkpoint folder or, as for ``--init``, an exported ``.onnx`` file or a bundled model
    (``default``); it must have softmax heads for the student's softmax tasks and the same input size; it
    is run once, on the faces without augmentation."""
    from agegender.training.checkpoint import load_checkpoint
    from agegender.training.engine import predict_outputs
    from agegender.training.losses import TEACHER

    if find_checkpoint(folder) is not None:
        teacher, meta = load_checkpoint(folder)
        tcfg = ModelConfig.from_dict(meta["model"])
    else:
        weights = _init_weights(folder, "--teacher")
        tcfg = weights[1]
        teacher = create_model(tcfg)
        init_from(teacher, tcfg, folder, log, flag="--teacher", weights=weights)
        teacher.eval()
    tasks = [t for t in model_cfg.tasks if task_is_logits(model_cfg, t)]
    if tcfg.input_size != model_cfg.input_size:
        raise ValueError(f"teacher {folder}: input size {tcfg.input_size}, the student's is {model_cfg.input_size}")
    missing = [t for t in tasks if t not in tcfg.tasks or not task_is_logits(tcfg, t)]
    if not tasks or missing:
        raise ValueError(f"teacher {folder}: needs softmax heads for {', '.join(missing or model_cfg.tasks)} "
                         f"(it has {tcfg.head} heads for {', '.join(tcfg.tasks)}); distillation needs cls heads")
    t0 = time.perf_counter()
    logits = predict_outputs(teacher, train_set.images, channels_last=channels_last)
    log(f"teacher {folder}: logits for {len(train_set)} training faces in {time.perf_counter() - t0:.0f} s")
    return {TEACHER + t: torch.from_numpy(logits[t]) for t in tasks}


def task_is_logits(cfg: ModelConfig, task: str) -> bool:
    from agegender.labels import task_spec

    return cfg.head == "cls" and task_spec(task).categorical


def _epoch_line(row: dict) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['loss']:.4f}", f"{row['train_images_per_s']:.0f} img/s",
             f"lr {row['lr_end']:.3g}"]
    parts += [f"{k} {row[k]:+.3f}" for k in row if k.startswith("shift_")]
    parts += [f"{k} {row[k]:.2f}" for k in row if k.startswith("alive_")]
    parts += [f"{k[5:]} {row[k]:.2f}" for k in (f"eval_{h}" for h in headline_keys(
        {k[5:]: v for k, v in row.items() if k.startswith("eval_")})) if k in row]
    return " | ".join(parts)
