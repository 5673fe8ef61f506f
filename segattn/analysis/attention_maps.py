"""Attention maps of a trained head for chosen query pixels, and a matplotlib panel of them.

``attention_maps(model, image, queries)`` asks the head for its maps
(``DecodeHead.attention_maps``, keyed by the kinds of
:data:`segattn.models.maps.MAP_KINDS`) and returns, per query pixel (given in
feature-map coordinates), each kind's views over the feature grid, which sum to
1 where the attention is a softmax:

* ``criss_cross``: ``cca_loop1`` (one loop: the pixel's row and column) and
  ``cca_effective`` (all R loops composed: ``A_R ... A_1``, the full-image
  context of the CCNet paper's Fig. 1);
* ``position`` / ``non_local``: ``pam`` / ``nonlocal``, the query's row;
* ``context``: ``context``, the one map of a query-independent head;
* ``interlaced``: ``isa_long`` (the pixels at the query's offset in every
  block), ``isa_short`` (its own block) and ``isa_effective`` (ISA's long-range
  step then its short-range one, composed);
* ``pyramid``: ``ann_fusion`` and ``ann_context``, ANN's two attentions over
  pooled regions, each region's weight shared by the pixels it averages;
* ``point_wise``: ``psa_collect`` and ``psa_distribute``, PSANet's two
  branches: what the query gathers, by its own window or by the others';
* ``em_bases``: ``ema``, the positions the query's EM bases pool: ``z_q W^T``
  with ``W`` the responsibilities normalised over the positions (a sum of the
  bases' weights, each weighted by the query's responsibility for it);
* ``object_regions``: ``ocr_context``, OCRNet's soft object regions weighted
  by the query's relation to each (the positions its object context pools),
  and ``ocr_region``, the region it relates to most;
* ``channel_gate``: the most open gates of EncNet's encoding (``gate_top``:
  None, channel indices, gates), the same for every query;
* ``channel``: the top channel-attention weights (``cam_top``: channel index,
  weight) of the channel most active at the query.
"""
import numpy as np
import torch

from ..data.io import output_file
from ..data.palette import colorize
from ..errors import ConfigError
from ..models.maps import COMPANIONS, MAP_KINDS, TABLE_VIEWS, VIEW_TITLES
from ..models.registry import HEADS


def cca_dense_map(attn: torch.Tensor, h: int, w: int, qy: int, qx: int) -> torch.Tensor:
    """One criss-cross loop's weights for query (qy, qx) spread on the (H, W) grid."""
    a = attn[qy, qx]
    m = torch.zeros(h, w, dtype=a.dtype)
    m[:, qx] += a[:h]
    m[qy, :] += a[h:]
    return m


def cca_effective_map(loop_maps, h: int, w: int, qy: int, qx: int) -> torch.Tensor:
    """Composition of R loops: where information at (qy, qx) comes from after all loops."""
    current = cca_dense_map(loop_maps[-1], h, w, qy, qx)
    for attn in reversed(loop_maps[:-1]):
        # every pixel (y, x) passes its weight on to its own column (attn[y, x, :h]) and row (attn[y, x, h:])
        current = (torch.einsum("yx,yxj->jx", current, attn[..., :h].to(current.dtype))
                   + torch.einsum("yx,yxj->yj", current, attn[..., h:].to(current.dtype)))
    return current


def _criss_cross(maps: dict, qy: int, qx: int) -> dict:
    loops = [loop[0].cpu() for loop in maps["criss_cross"]]
    h, w = loops[0].shape[:2]
    return {"cca_loop1": cca_dense_map(loops[0], h, w, qy, qx), "cca_effective": cca_effective_map(loops, h, w, qy, qx)}


def _row(rows, grid, qy: int, qx: int) -> torch.Tensor:
    """Row ``qy * w + qx`` of batch item 0 of ``rows`` (a ``(B, HW, HW)`` tensor or row reader) on the grid."""
    h, w = grid
    return rows[0, qy * w + qx].view(h, w).cpu()


def _query_row(kind: str):
    """All-pairs weights ``(B, HW, HW)``: the query's row on the grid."""
    def read(maps: dict, qy: int, qx: int) -> dict:
        view, = MAP_KINDS[kind].views
        return {view: _row(maps[kind], maps["grid"], qy, qx)}
    return read


def _context(maps: dict, qy: int, qx: int) -> dict:
    h, w = maps["grid"]
    return {"context": maps["context"][0].reshape(h, w).cpu()}


def _interlaced(maps: dict, qy: int, qx: int) -> dict:
    h, w = maps["grid"]
    rows, i = maps["interlaced"], qy * w + qx
    return {"isa_long": rows.long(0, i).view(h, w).cpu(), "isa_short": rows.short(0, i).view(h, w).cpu(),
            "isa_effective": _row(rows, maps["grid"], qy, qx)}


def _pyramid(maps: dict, qy: int, qx: int) -> dict:
    fusion, context = maps["pyramid"]
    return {"ann_fusion": _row(fusion, maps["grid"], qy, qx), "ann_context": _row(context, maps["grid"], qy, qx)}


def _point_wise(maps: dict, qy: int, qx: int) -> dict:
    return {f"psa_{branch}": _row(rows, maps["grid"], qy, qx) for branch, rows in maps["point_wise"].items()}


def _em_bases(maps: dict, qy: int, qx: int) -> dict:
    h, w = maps["grid"]
    z = maps["em_bases"][0].float().cpu()                         # (HW, K)
    weights = z / z.sum(0, keepdim=True).clamp_min(1e-12)         # each basis' weights over the positions
    return {"ema": (weights @ z[qy * w + qx]).reshape(h, w)}


def _object_regions(maps: dict, qy: int, qx: int) -> dict:
    h, w = maps["grid"]
    regions = maps["object_regions"]["regions"][0].float().cpu()                  # (K, HW)
    relation = maps["object_regions"]["relation"][0, qy * w + qx].float().cpu()   # (K,)
    return {"ocr_context": (relation @ regions).reshape(h, w),
            "ocr_region": regions[int(relation.argmax())].reshape(h, w)}


def _channel(maps: dict, qy: int, qx: int) -> dict:
    channel = int(maps["channel_input"][0, :, qy, qx].argmax())
    weights = maps["channel"][0, channel].cpu()
    top = torch.topk(weights, min(10, weights.numel()))
    return {"cam_top": (channel, top.indices.tolist(), top.values.tolist())}


def _channel_gate(maps: dict, qy: int, qx: int) -> dict:
    gates = maps["channel_gate"][0].float().cpu()
    top = torch.topk(gates, min(10, gates.numel()))
    return {"gate_top": (None, top.indices.tolist(), top.values.tolist())}


# one reader per kind of segattn.models.maps.MAP_KINDS: (maps, qy, qx) -> the kind's views for that query
READERS = {"criss_cross": _criss_cross, "position": _query_row("position"), "non_local": _query_row("non_local"),
           "context": _context, "interlaced": _interlaced, "pyramid": _pyramid,
           "point_wise": _point_wise, "em_bases": _em_bases, "object_regions": _object_regions, "channel": _channel,
           "channel_gate": _channel_gate}


def query_maps(maps: dict, qy: int, qx: int) -> dict:
    """One query's maps on the feature grid, from a head's ``attention_maps`` output (batch item 0).

    The views come in the order of ``MAP_KINDS``. A map kind the table does not
    know is an error, not silently left out of the picture.
    """
    unknown = sorted(set(maps) - set(MAP_KINDS) - set(COMPANIONS) - {"grid"})
    if unknown:
        raise ConfigError(f"model.head: attention_maps returned {', '.join(map(repr, unknown))}, which the map tools "
                          f"cannot draw; return one of {', '.join(MAP_KINDS)} (segattn.models.maps.MAP_KINDS says "
                          "each one's shape)")
    out = {}
    for kind in MAP_KINDS:
        if kind in maps:
            out.update(READERS[kind](maps, qy, qx))
    return out


@torch.no_grad()
def head_maps(model, image: torch.Tensor) -> dict:
    """The head's maps for ``image (1, 3, H, W)`` (normalised), with ``grid``: the feature grid's (h, w).

    One forward pass of the encoder; :func:`query_maps` then reads any query
    from the result. A head without attention maps is a :class:`ConfigError`.
    """
    model.eval()
    aux_features, features = model.features(image)
    maps = dict(model.head.attention_maps(model.head.inputs(aux_features, features)))
    if not maps:
        with_maps = [name for name in HEADS if HEADS[name].map_kinds]
        raise ConfigError(f"model.head: {type(model.head).__name__} has no attention maps to show; "
                          f"use a head with attention ({', '.join(with_maps)})")
    maps["grid"] = tuple(features.shape[-2:])
    return maps


@torch.no_grad()
def attention_maps(model, image: torch.Tensor, queries):
    """``image (1, 3, H, W)`` normalised; ``queries`` list of (y, x) feature coordinates.

    A head without attention maps is a :class:`ConfigError`.
    """
    maps = head_maps(model, image)
    logits = model(image)["main"]
    return {"prediction": logits.argmax(1)[0].cpu(), "maps": [((qy, qx), query_maps(maps, qy, qx))
                                                              for qy, qx in queries]}


def save_panel(path: str, image_rgb: np.ndarray, results: dict, palette, stride: int, pixels=None,
               class_names=None):
    """One row per query: the image with the query marked, each map over the image (colour bar), the prediction.

    ``pixels``: each query's pixel in the input image, for the titles (else its feature cell is named);
    ``class_names``: a legend of the predicted classes under the prediction.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["maps"]
    names = [k for k in rows[0][1]] if rows else []
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.2 * cols, 2.6 * len(rows) + (0.6 if class_names else 0)),
                             squeeze=False)
    labels = results["prediction"].numpy().astype(np.uint8)
    pred = colorize(labels, palette)
    h, w = image_rgb.shape[:2]
    for r, ((qy, qx), maps) in enumerate(rows):
        cy, cx = qy * stride + stride / 2, qx * stride + stride / 2
        ax = axes[r, 0]
        ax.imshow(image_rgb)
        ax.plot([cx], [cy], "o", ms=8, mec="white", mfc="red")
        where = f"pixel y={pixels[r][0]}, x={pixels[r][1]}" if pixels else f"feature cell y={qy}, x={qx}"
        ax.set_title(f"query: {where}", fontsize=9)
        for c, name in enumerate(names, start=1):
            ax = axes[r, c]
            value = maps[name]
            if name in TABLE_VIEWS:
                channel, idx, wts = value
                ax.barh(range(len(idx))[::-1], wts, color="tab:blue")
                ax.set_yticks(range(len(idx))[::-1], [str(i) for i in idx], fontsize=7)
                ax.set_title(VIEW_TITLES[name] + (f" of channel {channel}" if channel is not None else ""), fontsize=9)
                continue
            grid = value.numpy()
            ax.imshow(image_rgb)  # the map over the image, one block per feature cell
            im = ax.imshow(grid, cmap="inferno", alpha=0.65, interpolation="nearest",
                           extent=(-0.5, grid.shape[1] * stride - 0.5, grid.shape[0] * stride - 0.5, -0.5))
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            ax.plot([cx], [cy], "x", color="cyan", ms=7, mew=2)
            ax.set_title(VIEW_TITLES[name], fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        axes[r, -1].imshow(pred)
        axes[r, -1].set_title("prediction", fontsize=9)
    for ax in axes.flat:
        if not any(ax.get_title().startswith(VIEW_TITLES[view]) for view in TABLE_VIEWS):
            ax.set_xticks([])
            ax.set_yticks([])
    if class_names:
        from .plots import class_handles

        handles = class_handles([int(c) for c in np.unique(labels)], class_names, palette)
        fig.legend(handles=handles, loc="lower center", ncol=min(8, max(1, len(handles))), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(handles) + 7) // 8) / max(1, len(rows)), 1, 1))
    else:
        fig.tight_layout()
    with output_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
