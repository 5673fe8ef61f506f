"""mmsegmentation itself, run beside segattn: the models the conversion is held to.

Builds mmsegmentation's own ``EncoderDecoder`` from the config file it ships
for one of ``configs/mmseg/*.yaml`` (SyncBN as plain BN: the same arithmetic
in eval mode, and it runs without a process group), gives it random weights
that make every part count (norm statistics and affine parameters moved off
their initial values, attention gammas non-zero, a cascade's soft regions
distinct), and saves it as
mmsegmentation's runner does (``meta``, ``state_dict``, ``message_hub``,
``optimizer``). ``python -m segattn.interop.mmseg_peer NAME OUT.pth`` writes
such a checkpoint, to try the conversion and the tools without a download.
Needs mmsegmentation 1.2.2 (see :mod:`.mmcv_stub` for the install line).
"""
import argparse
import copy
import os
import re
import time

import torch

from ..errors import ConfigError, MissingPackageError
from ..models.registry import HEADS
from .mmcv_stub import INSTALL, stub_mmcv_ext

# ours: {head}_r{depth}-d8_{crop}_{iters}k[_b{batch}]_{dataset} (mmseg 0.x's names, those of its released
# checkpoints; the batch where a zoo has two, as OCRNet's b8 and b16)
NAME = re.compile(r"^(?P<head>\w+?)_r(?P<depth>50|101)-d8_(?P<crop>769x769|512x512|512x1024)_(?P<iters>\d+)k_"
                  r"(b(?P<batch>\d+)_)?(?P<dataset>cityscapes|ade20k|voc12aug)$")
PER_GPU = {"cityscapes": 2, "ade20k": 4, "voc12aug": 4}  # mmseg 1.x names the batch {gpus}xb{per gpu}: 4xb2 ...


def mmseg_heads() -> list:
    """The registered heads mmsegmentation has too (those with an ``mmseg_type``)."""
    return [name for name in HEADS if HEADS[name].mmseg_type]


def import_mmseg():
    """``(mmseg, MODELS)`` with mmseg's modules registered, or a one-line error saying how to install them."""
    stub_mmcv_ext()
    try:
        import mmseg
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    except ImportError as err:
        raise MissingPackageError(f"mmsegmentation is not importable ({err}); install it with: {INSTALL}") from None
    register_all_modules(init_default_scope=True)
    return mmseg, MODELS


def mmseg_config_path(name: str) -> str:
    """The config file mmsegmentation 1.x ships for our ``configs/mmseg/<name>.yaml``."""
    match = NAME.match(name)
    if not match or match["head"] not in mmseg_heads():
        raise ConfigError(f"{name!r} is not a configs/mmseg name like ccnet_r50-d8_769x769_40k_cityscapes or "
                          f"danet_r101-d8_512x512_160k_ade20k (heads: {', '.join(mmseg_heads())})")
    head, dataset = match["head"], match["dataset"]
    per_gpu = PER_GPU[dataset]
    batch = f"{int(match['batch'] or 4 * per_gpu) // per_gpu}xb{per_gpu}"
    mmseg, _ = import_mmseg()
    return os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", HEADS[head].mmseg_folder or head,
                        f"{head}_r{match['depth']}-d8_{batch}-{match['iters']}k_{dataset}-{match['crop']}.py")


def decode_heads(model) -> list:
    """mmsegmentation's decode heads of ``model``: one, or its cascade's stages (OCRNet's FCN, then OCRHead)."""
    heads = model.decode_head
    return list(heads) if isinstance(heads, torch.nn.ModuleList) else [heads]


def _plain_bn(node):
    if isinstance(node, dict):
        return {k: ("BN" if k == "type" and v == "SyncBN" else _plain_bn(v)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_plain_bn(v) for v in node)
    return node


def build_mmseg_model(name: str, num_classes: int = None):
    """mmsegmentation's model for config ``name`` (from its own config file), default-initialised, on CPU."""
    from mmengine import Config

    _, MODELS = import_mmseg()
    cfg = Config.fromfile(mmseg_config_path(name))
    model_cfg = _plain_bn(copy.deepcopy(cfg.model.to_dict()))
    model_cfg["pretrained"] = None  # no ImageNet download: every weight is set below or by the test
    if num_classes is not None:
        for head in ("decode_head", "auxiliary_head"):
            stages = model_cfg.get(head) or []
            for stage in stages if isinstance(stages, list) else [stages]:  # a cascade's decode_head: its stages
                stage["num_classes"] = num_classes
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights logs every parameter at INFO
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


@torch.no_grad()
def randomize(model, seed: int = 0):
    """Weights under which every part matters: norms off their init, attention gammas non-zero."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            module.bias.copy_(torch.randn(n, generator=g) * 0.1)
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
    for name, p in model.named_parameters():
        if name.endswith(("gamma", "gamma.scale")):
            p.fill_(0.5 + float(torch.rand((), generator=g)))
    stages = decode_heads(model) if hasattr(model, "decode_head") else []  # a whole model, or a backbone alone
    if len(stages) > 1:
        _soften_cascade(model, stages, g)
    return model


def _soften_cascade(model, stages, g):
    """A cascade (OCRNet) reads its first stage's logits as soft regions and relates each pixel to them by a
    softmax: under the statistics drawn above the deep encoder's features reach 1e5, and every such softmax is
    one-hot, where neither the regions nor the relation's scale would show. So: the earlier stages' classifiers
    drawn wider (distinct regions), and every stage's norm statistics taken from one forward pass on a random
    batch (momentum 1), so the head's activations are O(1); the encoder's stay as drawn."""
    for stage in stages[:-1]:
        w = stage.conv_seg.weight
        w.copy_(torch.randn(w.shape, generator=g) * (3 / w.shape[1]) ** 0.5)
    norms = [m for stage in stages for m in stage.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    feats = model.extract_feat(torch.randn(2, 3, 64, 64, generator=g))
    for m in norms:
        m.momentum = 1.0
    for stage in stages:
        stage.train()
    out = stages[0].forward(feats)
    for stage in stages[1:]:
        out = stage.forward(feats, out)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def save_like_mmseg(model, path: str, iteration: int = 40000):
    """What mmengine's runner writes: ``meta``, ``state_dict``, ``message_hub`` (pickled objects), ``optimizer``."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    import mmseg
    hub = MessageHub.get_instance(f"segattn-{time.time_ns()}")
    hub.update_scalar("train/loss", 0.5)
    hub.update_info("iter", iteration)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    meta = {"mmseg_version": mmseg.__version__, "iter": iteration, "seed": 0, "time": time.strftime("%Y%m%d_%H%M%S"),
            "dataset_meta": {"classes": tuple(f"class{i}" for i in range(decode_heads(model)[-1].num_classes))}}
    save_checkpoint({"meta": meta, "state_dict": weights_to_cpu(model.state_dict()), "message_hub": hub.state_dict(),
                     "optimizer": optimizer.state_dict()}, path)


@torch.no_grad()
def mmseg_logits(model, x: torch.Tensor) -> torch.Tensor:
    """``EncoderDecoder.encode_decode``: the decode head's logits at the input size, in eval mode."""
    model.eval()
    return model.encode_decode(x, [dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:]))])


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a random-weight mmsegmentation checkpoint for a configs/mmseg "
                                "model, as mmsegmentation saves them (to try the conversion offline).")
    p.add_argument("name", help="a configs/mmseg config name, e.g. ccnet_r50-d8_769x769_40k_cityscapes")
    p.add_argument("output", help="where to write the .pth")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    name = os.path.basename(args.name).removesuffix(".yaml")
    torch.manual_seed(args.seed)
    model = randomize(build_mmseg_model(name), args.seed)
    save_like_mmseg(model, args.output)
    print(f"wrote {args.output}: mmsegmentation's {os.path.basename(mmseg_config_path(name))} with random weights")


if __name__ == "__main__":
    from ..errors import run

    run(main)
