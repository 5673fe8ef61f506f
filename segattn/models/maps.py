"""The one table of attention-map kinds: what a head's ``attention_maps`` may return, and how each is shown.

A head declares the kinds it returns in ``map_kinds`` (a generic test holds it
to them). Each kind gives the per-query views the map tools draw from it, with
the title the figure of ``tools/visualize_attention.py``, the explorer's page
and the docs show; :mod:`segattn.analysis.attention_maps` has one reader per
kind that turns a head's maps into those views for one query pixel. A head
with a new kind of map adds an entry here and a reader there; nothing else
names a kind.
"""
from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class MapKind:
    shape: str              # what ``attention_maps`` returns under the kind's key
    views: Dict[str, str]   # {view name: title}: the maps one query gives, in drawing order
    summary: str            # one line for the docs' table
    table: bool = False     # its views are tables of (index, weight), not maps over the image


MAP_KINDS = {
    "criss_cross": MapKind(
        "(R, B, H, W, H+W): one map per loop, the column's H weights then the row's W (the self entry 0 in the "
        "column)",
        {"cca_loop1": "criss-cross: one loop (row and column)", "cca_effective": "criss-cross: all loops composed"},
        "per query, its row and column; the loops composed reach the whole image"),
    "position": MapKind(
        "(B, HW, HW): a tensor, or an AttentionRows that forms row i (query position i) when indexed",
        {"pam": "position attention"}, "per query, a softmax over every position"),
    "non_local": MapKind(
        "(B, HW, HW), as position", {"nonlocal": "non-local attention"}, "per query, a softmax over every position"),
    "context": MapKind(
        "(B, HW): weights over the positions, the same for every query",
        {"context": "global context (the same for every query)"},
        "one map for the image (a pooled context), whatever the query"),
    "interlaced": MapKind(
        "(B, HW, HW), as position (an InterlacedRows: ISA's two sparse steps, composed when a row is indexed; "
        "its long(b, i) and short(b, i) each step alone)",
        {"isa_long": "interlaced: long range (its offset)", "isa_short": "interlaced: short range (its block)",
         "isa_effective": "interlaced: both steps composed"},
        "per query, the pixels at its offset in every block, then its block; the two composed reach the whole "
        "image"),
    "pyramid": MapKind(
        "(fusion, context): two (B, HW, HW) row readers (PyramidRows): each query's weights over the pyramid-pooled "
        "keys, spread over the pixels each pooled cell averages",
        {"ann_fusion": "asymmetric fusion: layer3, pooled", "ann_context": "asymmetric non-local: pooled"},
        "per query, a softmax over pooled regions (1, 3, 6, 8 a side), spread over their pixels"),
    "point_wise": MapKind(
        "{branch: rows}: for PSANet's collect and/or distribute branch a (B, HW, HW) row reader (ShrunkRows): "
        "the query's weights over the sources, computed on the shrunk grid and spread back over the feature cells",
        {"psa_collect": "point-wise: collect", "psa_distribute": "point-wise: distribute"},
        "per query, a softmax over the positions its window (collect) or theirs (distribute) covers"),
    "em_bases": MapKind(
        "(B, HW, K): each position's responsibilities over K bases (a softmax over K), the last EM step's",
        {"ema": "EM attention: via the bases"},
        "per query, the positions its bases pool (its responsibilities times each basis' weights)"),
    "object_regions": MapKind(
        "{'regions': (B, K, HW), each class's soft object region (a softmax over the positions); 'relation': "
        "(B, HW, K), each position's softmax over the regions}",
        {"ocr_context": "object context: regions, weighted", "ocr_region": "object region: its top one"},
        "per query, the soft object regions weighted by its relation to each (and the region it relates to most)"),
    "channel": MapKind(
        "(B, C, C), with channel_input (B, C, H, W): the features whose channels it weighs",
        {"cam_top": "channel attention: top weights"},
        "the top weights of the channel most active at the query", table=True),
    "channel_gate": MapKind(
        "(B, C): the image's gate per channel (a sigmoid), the same for every query",
        {"gate_top": "channel gates: the most open"},
        "the channels the image's encoding opens most, whatever the query", table=True),
}
# keys a head returns beside a kind, read by that kind's reader, drawing nothing themselves
COMPANIONS = {"channel_input": "channel"}
# {view name: title}, every view of every kind
VIEW_TITLES = {view: title for kind in MAP_KINDS.values() for view, title in kind.views.items()}
# the views that are tables (drawn as bars in the figure, as rows in the explorer)
TABLE_VIEWS = frozenset(view for kind in MAP_KINDS.values() if kind.table for view in kind.views)
