"""What every tool shares: its common arguments, and the config of a tool that loads a checkpoint.

Loading and checking a config is :mod:`segattn.configure`'s (the Python API
shares it); turning a user's mistake into one line is :func:`segattn.errors.run`.
Nothing in the package imports this module.
"""
import os

from .configure import checkpoint_config, load_tool_config, print_resolved
from .errors import ConfigError, run

__all__ = ["add_backend_args", "add_model_args", "add_print_config", "load_backend", "model_tool_config", "parse_tool_args", "require_checkpoint", "run"]


def add_print_config(parser):
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (defaults filled, overrides applied) as YAML and exit")
    return parser


def model_tool_config(args, extra=()):
    """``(config, checkpoint contents)`` of a tool that loads a checkpoint (its arguments from
    :func:`add_model_args`): ``args.config`` (contents None: not read here), or the config saved in
    ``args.checkpoint`` (its contents returned, for ``load_model``'s ``ckpt``, so the file is read once).

    The overrides are the command line's, then ``--device`` as ``train.device``, then the tool's own ``extra``
    (its options that are config keys); ``--print-config`` prints the result and exits. A first positional that
    is a ``key=value`` (no config given) is an override.
    """
    print_config = args.print_config
    overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else []) + list(extra)
    config = args.config
    if config and "=" in config and not os.path.isfile(config):
        config, overrides = None, [config] + overrides
        args.config = None
    if config:
        return load_tool_config(config, overrides, print_config), None
    if not getattr(args, "checkpoint", None):
        raise ConfigError("give a CONFIG, or --checkpoint CKPT to use the config saved in it")
    from .engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt, args.checkpoint, overrides)
    if print_config:
        print_resolved(cfg)
    return cfg, ckpt


def parse_tool_args(parser, argv):
    """``parse_intermixed_args``; with ``--print-config`` the tool's required options may be left out."""
    if "--print-config" in argv:
        for action in parser._actions:  # argparse keeps no public list; the config needs none of them
            if action.option_strings:
                action.required = False
    return parser.parse_intermixed_args(argv)


def require_checkpoint(args):
    """The ``--checkpoint`` a tool needs (``--print-config`` runs without one)."""
    if not args.checkpoint:
        raise ConfigError("--checkpoint is required: a .pth written by tools/train.py or tools/convert_checkpoint.py")
    return args.checkpoint


BACKENDS = ("torch", "onnxruntime", "openvino")


def add_backend_args(parser):
    """``--backend`` and ``--model``: a tool that runs a trained model runs its export in a runtime instead."""
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch (the checkpoint) or a runtime for the ONNX file of --model (tools/export.py)")
    parser.add_argument("--model", help="the exported .onnx (float or --int8), with --backend onnxruntime / openvino")
    return parser


def load_backend(args, cfg, ckpt, device):
    """``(model, weights file)`` of a tool with :func:`add_backend_args`: the checkpoint's segmentor on ``device``,
    or the exported model in its runtime (its class count checked against the config's)."""
    if args.backend == "torch":
        if not args.checkpoint:
            raise ConfigError("--checkpoint is required with --backend torch (or give --backend onnxruntime|openvino "
                              "--model MODEL.onnx)")
        from .engine.predictor import load_model

        return load_model(cfg, args.checkpoint, device, ckpt=ckpt)[0], args.checkpoint
    if not args.model:
        raise ConfigError(f"--backend {args.backend} needs --model MODEL.onnx (written by tools/export.py)")
    from .deploy.runtimes import open_runtime

    model = open_runtime(args.backend, args.model)
    model.check_classes(cfg.model.num_classes, args.config or args.checkpoint)
    return model, args.model


def add_model_args(parser, device_help="cpu / cuda (default: train.device)", checkpoint_required=True):
    """Arguments every tool that loads a trained model takes: config, overrides, checkpoint, device."""
    parser.add_argument("config", nargs="?", help="YAML config, e.g. configs/demo/ccnet.yaml (default: the config "
                        "saved in --checkpoint)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--checkpoint", help="a .pth written by tools/train.py or tools/convert_checkpoint.py"
                        + (" (required)" if checkpoint_required else ""))
    parser.add_argument("--device", default=None, help=device_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return add_print_config(parser)
