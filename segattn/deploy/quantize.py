"""Post-training static int8 quantization of an exported model (ONNX Runtime's QDQ quantizer).

The float graph of :mod:`.export` becomes one with QuantizeLinear /
DequantizeLinear pairs around its operators: weights int8 per output channel,
activations uint8 with ranges taken from calibration images run through the
float graph (MinMax). ONNX Runtime runs the pairs as int8 kernels (VNNI / AMX
where the CPU has them); OpenVINO reads the same file and runs it in int8 too,
so one file serves both ``--backend`` choices.

Some operators lose too much at 8 bits: the attention's softmax (a few large
probabilities over thousands of positions) is the usual one. ``keep_float``
names operator types left in float32; the graph's input normalisation, the
final resize of the logits and their argmax (the labels) always stay float.
"""
import os
import tempfile

import numpy as np

from ..errors import ConfigError, MissingPackageError

KEEP_FLOAT = ("Softmax",)
INSTALL = 'pip install -e ".[deploy]"'


def check_keep_float(keep_float):
    """ConfigError unless every name is an ONNX operator type (a misspelt one would keep nothing in float)."""
    import onnx

    unknown = [t for t in keep_float if not onnx.defs.has(t)]
    if unknown:
        raise ConfigError(f"--keep-float: {', '.join(unknown)} is not an ONNX operator type (they are spelt as in "
                          "the ONNX spec, e.g. Softmax,MatMul), or give none")


def calibration_images(dataset, count: int, size=None, seed: int = 0) -> list:
    """``count`` images of ``dataset`` (uint8 HxWx3, as decoded), a seeded random choice spread over the split;
    each resized to ``size`` (h, w) where the export takes one size only."""
    import cv2

    if count < 1:
        raise ConfigError(f"--calibration-images {count}: give at least 1 (the default, 32, is a good start)")
    if len(dataset) == 0:
        raise ConfigError("int8 calibration: the split has no images; give a config whose data.train_split has some")
    picks = np.random.default_rng(seed).permutation(len(dataset))[:count]
    out = []
    for i in sorted(picks.tolist()):
        image = dataset.load(i)[0]
        if size is not None and tuple(image.shape[:2]) != tuple(size):
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        out.append(np.ascontiguousarray(image))
    return out


COMPUTE = ("Conv", "MatMul", "Gemm")  # where an int8 island may start or end: their outputs can stay float


def _float_nodes(graph, keep_float) -> list:
    """Names of the nodes to leave in float: those before the first Conv (the uint8 -> float normalisation and the
    resize to the eval scale), the logits' resize and what reads the logits (the labels' argmax), and each node of
    a ``keep_float`` type with what feeds it back to the nearest Conv / MatMul (a softmax's energies: concatenated,
    masked with -inf, reshaped) and the MatMuls that take its output (an attention's probabilities, mostly far
    below 8 bits' 1/255)."""
    made_by = {name: node for node in graph.node for name in node.output}
    used_by = {}
    for node in graph.node:
        for name in node.input:
            used_by.setdefault(name, []).append(node)
    names, seen_conv = set(), False
    for node in graph.node:
        seen_conv = seen_conv or node.op_type == "Conv"
        if not seen_conv:
            names.add(node.name)
        if node.op_type not in keep_float:
            continue
        names.add(node.name)
        stack = [made_by[i] for i in node.input if i in made_by]
        while stack:
            up = stack.pop()
            if up.op_type in COMPUTE or up.op_type == "Constant" or up.name in names:
                continue
            names.add(up.name)
            stack += [made_by[i] for i in up.input if i in made_by]
        names.update(n.name for out in node.output for n in used_by.get(out, []) if n.op_type == "MatMul")
    names.update(n.name for n in graph.node if "logits" in n.output)
    names.update(_downstream(graph, "logits"))  # the labels: the argmax of the float logits, as PyTorch takes it
    # a MatMul with a constant weight of 3 or more dimensions (EMANet's bases, 1 x C x K): ONNX Runtime's int8
    # MatMul takes per-channel parameters of a 2-D weight only and fails on it at run time
    ranks = {i.name: len(i.dims) for i in graph.initializer}
    names.update(n.name for n in graph.node if n.op_type == "MatMul" and ranks.get(n.input[1], 0) > 2)
    return sorted(names)


def _downstream(graph, tensor: str) -> set:
    """Names of the nodes that read ``tensor``, directly or through others."""
    names, frontier = set(), {tensor}
    for node in graph.node:  # a graph's nodes are in topological order
        if frontier.intersection(node.input):
            names.add(node.name)
            frontier.update(node.output)
    return names


def _restore_labels(graph, float_graph):
    """Put the float export's nodes from the logits to the labels back in ``graph`` (in place), in place of what
    ONNX Runtime's pre-processing made of them: its optimizer folds the channels-last Transpose into ArgMax's axis,
    the form OpenVINO runs far slower (the argmax over axis 1 of logits it holds channels-last)."""
    labels = _downstream(float_graph, "logits")
    tail = [n for n in float_graph.node if n.name in labels]
    if not tail:  # an export with logits only
        return
    drop = _downstream(graph, "logits")
    kept = [n for n in graph.node if n.name not in drop]
    del graph.node[:]
    graph.node.extend(kept + tail)


def quantize_onnx(src: str, dst: str, images: list, keep_float=KEEP_FLOAT, per_channel: bool = True) -> dict:
    """Write ``dst``, the int8 QDQ form of the float export ``src``, calibrated on ``images``; returns the metadata
    stored in it (``src``'s and ``segattn.precision``, ``segattn.calibration_images``, ``segattn.float_ops``)."""
    try:
        import onnx
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise MissingPackageError(f"int8 export needs onnx and onnxruntime ({err}); {INSTALL}") from None
    from ..data.io import output_file
    from .export import set_metadata
    from .runtimes import onnx_metadata

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(images)

        def get_next(self):
            image = next(self.items, None)
            return None if image is None else {"image": image[None]}

    check_keep_float(keep_float)
    meta = onnx_metadata(src)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(src, prepared, skip_symbolic_shape=True)  # shapes and constant folding for the quantizer
        graph = onnx.load(prepared).graph
        excluded = _float_nodes(graph, set(keep_float))
        out = os.path.join(tmp, "int8.onnx")
        quantize_static(prepared, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded,
                        # a Conv's or MatMul's output is quantized where its reader is (the reader's input), so a
                        # float reader (a softmax's energies, the logits' resize) reads it in float
                        extra_options={"OpTypesToExcludeOutputQuantization": list(COMPUTE)})
        quantized = onnx.load(out)
    _restore_labels(quantized.graph, onnx.load(src).graph)
    meta.update({"segattn.precision": "int8", "segattn.calibration_images": str(len(images)),
                 "segattn.float_ops": ",".join(sorted(keep_float)) or "none"})
    set_metadata(quantized, meta)
    onnx.checker.check_model(quantized)
    with output_file(dst) as tmp_path:
        onnx.save(quantized, tmp_path)
    return meta
