"""Run an exported ONNX model with ONNX Runtime or OpenVINO (CPU wheels: ``pip install -e ".[deploy]"``).

A runtime takes one decoded image ``(H, W, 3)`` uint8 RGB and returns its
logits ``(K, H, W)`` float32 (``predict_image``) or its train-id labels
``(H, W)`` uint8 (``predict_labels``), what the exported graph computes (see
:mod:`.export`). The labels come from the graph's own ``labels`` output where
it has one: the runtime then hands back a byte a pixel, not K floats. OpenVINO
is asked for float32 inference: on CPUs with native bf16 it would otherwise
compute in bf16 and drift from PyTorch.
"""
import functools
import os

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError, MissingFileError, MissingPackageError, first_line

BACKENDS = ("onnxruntime", "openvino")
INSTALL = 'pip install -e ".[deploy]"'


class Runtime:
    """An exported model in one runtime; ``predict_image(image) -> logits (K, H, W)``,
    ``predict_labels(image) -> labels (H, W)``."""

    backend = "?"

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise MissingFileError(f"--model: no such ONNX file {path!r}; write one with tools/export.py")
        self.path = path
        self.input_size = None  # (H, W) of a static-shape model
        self.num_classes = None  # K of the logits, where the graph fixes it
        self.outputs = ()  # the graph's output names: "logits", and "labels" in an export that has them

    def check_classes(self, num_classes: int, config: str):
        """ConfigError unless the graph predicts ``num_classes``: from its output shape, the class count export
        records in the file (a dynamic graph's shape leaves it open), or else one small trial run."""
        if not isinstance(self.num_classes, int):
            recorded = self.metadata.get("segattn.num_classes", "")
            self.num_classes = int(recorded) if recorded.isdigit() else None
        if self.num_classes is None:
            h, w = self.input_size or (64, 64)
            self.num_classes = int(self._run(np.zeros((1, h, w, 3), np.uint8)).shape[1])
        if self.num_classes != num_classes:
            raise ConfigError(f"{self.path} predicts {self.num_classes} classes but {config} has "
                              f"model.num_classes={num_classes}: export it from a checkpoint of this config")

    def _check_size(self, image: np.ndarray):
        if self.input_size and tuple(image.shape[:2]) != self.input_size:
            h, w = self.input_size
            raise DataError(f"{self.path} takes {h}x{w} images only (exported without --dynamic), this one is "
                            f"{image.shape[0]}x{image.shape[1]}: export with --dynamic, or with --height/--width "
                            "of these images")

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        self._check_size(image)
        h, w = image.shape[:2]
        k = self._repeat(min(h, w)) if self.input_size is None else 1
        if k > 1:  # the graph's floor(side x eval scale) would be 0: segment the image with each pixel k x k
            big = np.repeat(np.repeat(image, k, axis=0), k, axis=1)
            logits = self._run(np.ascontiguousarray(big[None]))[0]
            return logits.reshape(logits.shape[0], h, k, w, k).mean(axis=(2, 4))
        return self._run(np.ascontiguousarray(image[None]))[0]

    def predict_labels(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 train ids: the graph's ``labels`` output, or the argmax of its logits (an export
        without that output, or an image so small that its pixels are repeated)."""
        self._check_size(image)
        if "labels" in self.outputs and (self.input_size or self._repeat(min(image.shape[:2])) == 1):
            return self._run(np.ascontiguousarray(image[None]), "labels")[0].astype(np.uint8, copy=False)
        return self.predict_image(image).argmax(0).astype(np.uint8)

    @functools.cached_property
    def metadata(self) -> dict:
        """What tools/export.py recorded in the file (``segattn.*``), read once."""
        return onnx_metadata(self.path)

    def _repeat(self, side: int) -> int:
        """The pixel repeat a side needs so that floor(side x the export's eval scale) is at least 1."""
        try:
            scale = float(self.metadata.get("segattn.scale", 1.0))
        except ValueError:
            scale = 1.0
        return max(1, int(np.ceil(1.0 / (side * scale)))) if side * scale < 1 else 1


def unreadable(path: str, err: Exception) -> CheckpointError:
    first = first_line(err) or type(err).__name__
    return CheckpointError(f"--model {path}: not a readable ONNX model ({first}); export it again with tools/export.py")


def onnx_metadata(path: str) -> dict:
    """The file's metadata properties (tools/export.py writes ``segattn.*``); {} where unreadable."""
    try:
        import onnx

        return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - no onnx package, or a graph saved without metadata: the caller falls back
        return {}


def _require(package: str):
    """Import the runtime ``package`` (the --backend of the same name), or say how to install it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingPackageError(f"--backend {package}: the {package} package is not installed; {INSTALL}") from None


def _static(dims):
    h, w = dims[1], dims[2]
    return (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None


class OnnxRuntime(Runtime):
    backend = "onnxruntime"

    def __init__(self, path: str, threads: int = 0):
        super().__init__(path)
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file (InvalidProtobuf ...), in one line
            raise unreadable(path, err) from None
        self.input_size = _static(self.session.get_inputs()[0].shape)
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        self.num_classes = self.session.get_outputs()[0].shape[1]

    def _run(self, batch, output: str = "logits"):
        return self.session.run([output], {"image": batch})[0]


class OpenVino(Runtime):
    backend = "openvino"

    def __init__(self, path: str, threads: int = 0):
        super().__init__(path)
        ov = _require("openvino")
        core = _openvino_core()
        try:
            model = core.read_model(path)
        except Exception as err:  # noqa: BLE001 - as above
            raise unreadable(path, err) from None
        shape = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape]
        self.input_size = _static(dims)
        classes = model.outputs[0].get_partial_shape()[1]
        self.num_classes = classes.get_length() if classes.is_static else None
        self.outputs = tuple(o.get_any_name() for o in model.outputs)
        self.config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.ov, self.core, self.model, self.requests = ov, core, model, {}
        self._request("labels" if "labels" in self.outputs else self.outputs[0])  # compiled now: errors at open

    def _request(self, output: str):
        """An infer request of the model compiled for ``output`` alone (compiled on first use): OpenVINO then
        leaves out what only the other output needs (the logits' conversion back from channels-last)."""
        if output not in self.requests:
            model = self.model
            if len(self.outputs) > 1:
                result = model.get_results()[self.outputs.index(output)]
                model = self.ov.Model([result], model.get_parameters(), output)
            self.requests[output] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[output]

    def _run(self, batch, output: str = "logits"):
        request = self._request(output if output in self.outputs else self.outputs[0])
        # the output as a view of the request's own buffer, copied once (the next call writes there again)
        return request.infer({0: batch}, share_inputs=True, share_outputs=True)[0].copy()


@functools.lru_cache(maxsize=None)
def _openvino_core():
    """The process's one OpenVINO Core, kept for the process's life (OpenVINO's advice too).

    Each Core's CPU plugin gives the thread that first compiles on it an alternate signal stack of its own and,
    when the plugin goes, puts back the one it found. Plugins of several Cores that go in another order than they
    came leave that thread's alternate stack on memory already freed; the kernel delivers there every signal
    Python handles (SIGCHLD, Ctrl-C), so the next one killed the process with a segmentation fault that no
    handler could report. One Core, never freed, sets it once.
    """
    return _require("openvino").Core()


def open_runtime(backend: str, path: str, threads: int = 0) -> Runtime:
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)} (or torch)")
    return (OnnxRuntime if backend == "onnxruntime" else OpenVino)(path, threads)
