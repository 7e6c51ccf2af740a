"""Export a checkpoint to ONNX (fp32, fp16 weights, or int8 static-quantised) and check it against PyTorch.

The ONNX graph takes ``image``: float32 (N, 3, S, S) RGB 0..255 and returns one output per task (logits
or regressed values), named after the task. The checkpoint's meta (labels, input size, head, tasks,
training info) is stored in the model's metadata under the key ``agegender`` so the torch-free runtime
needs nothing else.

fp16: weights stored as float16 with a Cast to float32 in front of each (ONNX Runtime folds the casts at
load time, so it computes in fp32 on exactly the fp16-rounded weights). BatchNorm stays a separate node
with the checkpoint's parameter names; ONNX Runtime fuses it into the convolution when it loads the model,
and ``state_dict_from_onnx`` can rebuild the PyTorch weights from the file.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from agegender.inference.runtime import META_KEY, OnnxModel
from agegender.training.checkpoint import load_checkpoint

PRECISIONS = ("fp32", "fp16", "int8")


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, precision: str = "fp32",
                calibration: np.ndarray | None = None, opset: int = 17) -> dict:
    """Write ``out`` and return a report with the max |ONNX - PyTorch| difference on random faces
    (and on ``calibration`` faces when given: uint8 (N, S, S, 3), needed for int8)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model, meta = load_checkpoint(checkpoint)
    return export_model(model, meta, out, precision, calibration, opset)


def export_model(model: torch.nn.Module, meta: dict, out: str | os.PathLike, precision: str = "fp32",
                 calibration: np.ndarray | None = None, opset: int = 17, int8_reduce_range: bool = True) -> dict:
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    if precision == "int8":
        model = fold_linear_batchnorm(model)  # the quantiser leaves a MatMul followed by BatchNorm in fp32
    size = meta["input"]["size"]
    tasks = list(meta["model"]["tasks"])
    fp32_path = out if precision == "fp32" else out.with_name(out.stem + ".fp32.tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(fp32_path), input_names=["image"],
                          output_names=tasks, dynamic_axes={"image": {0: "batch"}, **{t: {0: "batch"} for t in tasks}},
                          dynamo=False, opset_version=opset, do_constant_folding=False)
    proto = onnx.load(str(fp32_path))
    if precision == "fp16":
        proto = _weights_to_fp16(proto)
    _set_meta(proto, {**meta, "precision": precision})
    if precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 export needs calibration faces (--calibration DATASET:PATH)")
        onnx.save(proto, str(fp32_path))
        _quantize_int8(fp32_path, out, calibration, int8_reduce_range)
        proto = onnx.load(str(out))
        _set_meta(proto, {**meta, "precision": precision})
    onnx.save(proto, str(out))
    if fp32_path != out:
        fp32_path.unlink(missing_ok=True)
    report = {"path": str(out), "precision": precision, "bytes": out.stat().st_size}
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    report["max_abs_diff_random"] = parity(model, out, faces)
    if calibration is not None and len(calibration):
        report["max_abs_diff_faces"] = parity(model, out, np.asarray(calibration[:256]))
        report["same_class_faces"] = agreement(model, out, np.asarray(calibration[:256]))
        if precision == "int8" and min(report["same_class_faces"].values(), default=1.0) < INT8_MIN_AGREEMENT:
            out.unlink(missing_ok=True)
            raise ValueError(f"int8 export of this model disagrees with PyTorch on the calibration faces "
                             f"({report['same_class_faces']}; at least {INT8_MIN_AGREEMENT:.0%} needed): not written")
    return report


INT8_MIN_AGREEMENT = 0.95  # share of faces whose predicted class an int8 export must keep, per task


def agreement(model: torch.nn.Module, onnx_path: str | os.PathLike, faces: np.ndarray) -> dict[str, float]:
    """Share of faces whose predicted class (argmax) is the same in PyTorch and ONNX Runtime, per
    categorical output."""
    onnx_out = OnnxModel(onnx_path).run(faces)
    with torch.no_grad():
        torch_out = model.eval()(torch.from_numpy(np.array(faces)).permute(0, 3, 1, 2).float())
    return {task: float((ref.numpy().argmax(1) == onnx_out[task].argmax(1)).mean())
            for task, ref in torch_out.items() if ref.ndim == 2}


def fold_linear_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (eval mode) with each Linear -> BatchNorm1d pair inside a Sequential fused into
    one Linear with a bias; the outputs are the same up to float rounding."""
    import copy

    from torch.nn.utils.fusion import fuse_linear_bn_eval

    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], torch.nn.Linear) and isinstance(seq[i + 1], torch.nn.BatchNorm1d):
                seq[i] = fuse_linear_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = torch.nn.Identity()
    return model


def parity(model: torch.nn.Module, onnx_path: str | os.PathLike, faces: np.ndarray) -> dict[str, float]:
    """Max |difference| per task between PyTorch and ONNX Runtime on uint8 faces; probabilities for
    softmax heads, values for regressed outputs."""
    from agegender.decode import softmax

    onnx_out = OnnxModel(onnx_path).run(faces)
    with torch.no_grad():
        torch_out = model.eval()(torch.from_numpy(np.array(faces)).permute(0, 3, 1, 2).float())
    diffs = {}
    for task, ref in torch_out.items():
        a, b = ref.numpy(), onnx_out[task]
        if a.ndim == 2:
            a, b = softmax(a), softmax(b)
        diffs[task] = float(np.abs(a - b).max())
    return diffs


def state_dict_from_onnx(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """PyTorch weights from an fp32/fp16 export (parameter names are kept in the graph)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    arrays = {init.name.removesuffix(".fp16"): numpy_helper.to_array(init).astype(np.float32)
              for init in proto.graph.initializer}
    # The exporter stores equal tensors once (e.g. zero biases) and names the others through Identity nodes.
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0].removesuffix(".fp16") in arrays:
            arrays[node.output[0]] = arrays[node.input[0].removesuffix(".fp16")]
    return {name: torch.from_numpy(a.copy()) for name, a in arrays.items() if "." in name}


def _set_meta(proto, meta: dict) -> None:
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps({k: v for k, v in meta.items() if k != "history"})


def _weights_to_fp16(proto):
    """Store float initializers as float16, each followed by a Cast back to float32."""
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    casts, keep = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < 16:
            keep.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + ".fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"cast_{init.name}"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return proto


def _quantize_int8(fp32_path: Path, out: Path, calibration: np.ndarray, reduce_range: bool = True) -> None:
    """Static QDQ int8 quantisation (per-channel weights), calibrated on real faces."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, faces: np.ndarray, batch: int = 32):
            self.batches = iter([np.ascontiguousarray(faces[i:i + batch].transpose(0, 3, 1, 2), dtype=np.float32)
                                 for i in range(0, len(faces), batch)])

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {"image": x}

    pre = fp32_path.with_name(fp32_path.stem + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    import onnx

    # Only the trunk's convolutions and FC products go to int8; the output head stays fp32: a years head
    # sums its 101 log-probabilities into the 8 groups with a -1e4 mask, which int8 activations destroyed
    # (strict age 73 % -> 16 % on UTKFace faces before this), and the head is a negligible share of the time.
    head = [n.name for n in onnx.load(str(pre)).graph.node if "/head/" in n.name or n.name.startswith("head")]
    try:
        # reduce_range (7-bit weights): without VNNI (AVX2, AVX-512F) ONNX Runtime's u8 x s8 kernels add
        # pairs of products in int16 and can saturate; measured here, full-range weights changed 5 % of
        # the age predictions (-2.2 points), 7-bit weights 0.3 % (no accuracy change). docs/BENCHMARKS.md.
        quantize_static(str(pre), str(out), Reader(np.asarray(calibration)), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                        nodes_to_exclude=head)
    finally:
        pre.unlink(missing_ok=True)
