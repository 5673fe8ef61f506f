#!/usr/bin/env python
"""Serve the attention explorer: click a pixel of an image, see where each head looks.

    pip install -e ".[demo]"
    python tools/explore.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth \
        [--images DIR] [--port 7860]

then open http://127.0.0.1:7860. The images to choose from are those of
``--images`` (sub-folders too), else the config's validation split when it is
there; any image can be uploaded. CCNet shows its one-loop map and all loops
composed, DANet its position map and top channel weights, Non-local its map; a
head without maps shows the prediction and says why.
"""
import argparse
import logging
import os
import shutil
import signal
import tempfile

from segattn.cli import add_model_args, model_tool_config, require_checkpoint, run


def get_args_parser():
    p = add_model_args(argparse.ArgumentParser(description="Serve the attention explorer (a local web page)."),
                       device_help="cpu / cuda (default: CUDA when present)")
    p.add_argument("--images", help="folder of images to choose from (default: the config's val split, if present)")
    p.add_argument("--port", type=int, default=7860, help="port on --host (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    p.add_argument("--max-side", type=int, default=1024,
                   help="maps are computed with the model input's longer side at most this (default 1024)")
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest upload accepted, in MB (default 50)")
    return p


def default_images(cfg):
    """The val split's images, or none where the dataset is not on this machine."""
    from segattn.data import build_dataset
    from segattn.errors import SegattnError

    try:
        return [pair[0] for pair in build_dataset(cfg.data, "val", need_labels=False).pairs]
    except (SegattnError, OSError):
        return []


def main(argv):
    args = get_args_parser().parse_intermixed_args(argv)
    cfg, ckpt = model_tool_config(args)
    require_checkpoint(args)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request the page makes
    uploads = tempfile.mkdtemp(prefix="segattn-explore-")  # Gradio keeps uploads here; removed when it stops
    os.environ["GRADIO_TEMP_DIR"] = uploads  # before Gradio is imported: some of it reads the variable then
    try:
        return serve(args, cfg, ckpt, uploads)
    finally:
        shutil.rmtree(uploads, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(args, cfg, ckpt, uploads):

    from segattn.analysis.explorer import Explorer
    from segattn.analysis.explorer_app import ExplorerPage, build_app, describe_model, one_line_per_failed_call
    from segattn.data import dataset_class_names, dataset_palette
    from segattn.engine.predictor import list_images, load_model, resolve_device
    from segattn.errors import ConfigError

    if args.max_side < 16:
        raise ConfigError(f"--max-side {args.max_side}: must be at least 16 pixels")
    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb {args.max_upload_mb}: must be > 0")
    device = resolve_device(cfg.train.device)
    model, _ = load_model(cfg, args.checkpoint, device, ckpt=ckpt)
    images = list_images(args.images, recursive=True) if args.images else default_images(cfg)
    explorer = Explorer(model, cfg, device, dataset_class_names(cfg.data), dataset_palette(cfg.data), args.max_side)
    describe = describe_model(cfg, args.checkpoint, args.config, len(images))
    app = build_app(ExplorerPage(explorer, images, describe))
    print(f"attention explorer on http://{args.host}:{args.port} (Ctrl-C stops it); uploads up to "
          f"{args.max_upload_mb:g} MB, kept in {uploads} until it stops", flush=True)
    one_line_per_failed_call()
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops it as Ctrl-C does: the uploads are removed
    try:
        app.queue().launch(server_name=args.host, server_port=args.port, show_error=True, quiet=True,
                           max_file_size=int(args.max_upload_mb * 1e6))
    except OSError as err:
        raise ConfigError(f"--port {args.port}: cannot serve there ({err}); give a free --port") from None
    return 0


if __name__ == "__main__":
    run(main)
