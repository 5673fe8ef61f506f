"""OCRNet head (Yuan et al., ECCV 2020, Sec. 3.2-3.3): object-contextual representations.

"Object-Contextual Representations for Semantic Segmentation": a first,
coarse prediction on layer3 (an FCN: 1024 -> 256 -> classes, trained with
weight 0.4) gives K soft object regions ``m_k``, one per class. On layer4 (a
3x3 conv-norm-ReLU to 512: the pixel representations ``x_i``) each region
pools the pixels it covers into a region representation,
``f_k = sum_i softmax_i(m_ki) x_i`` (a softmax over the positions); each
pixel relates to the regions, ``w_ik = softmax_k(phi(x_i)^T psi(f_k) / sqrt(256))``;
its object context is ``y_i = rho(sum_k w_ik delta(f_k))``, and
``g([y_i, x_i])`` (a 1x1 conv-norm-ReLU after the concat) goes to the
classifier. ``phi`` and ``psi`` are two 1x1 conv-norm-ReLUs to 256, ``delta``
one, ``rho`` one back to 512. The relation is ``HW x K``: no ``HW x HW``
matrix anywhere.

mmsegmentation builds this as a ``CascadeEncoderDecoder``: its
``decode_head.0`` is the region FCN (loss ``decode_0``), ``decode_head.1``
the ``OCRHead`` (loss ``decode_1``); here both are this one head, which takes
(layer3, layer4). In training mmsegmentation runs the region FCN twice, once
for its loss and once for the regions the OCR block reads (two dropout masks,
its norm statistics updated twice); ``region_passes: 2`` does the same (the
configs/mmseg files, whose training step is held to mmsegmentation's), 1 (the
default) runs it once, as the paper's code does.
"""
import torch
from torch import nn

from ..layers import ConvNormReLU, as_sequence
from ..registry import HEADS
from .base import DecodeHead
from .fcn import AuxFCNHead


def region_representations(feats: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """``feats (B, C, H, W)``, region logits ``(B, K, H, W)`` -> ``(B, C, K, 1)``: each class's soft region
    (a softmax over the positions) pooling the pixels (mmsegmentation's ``SpatialGatherModule``)."""
    weights = torch.softmax(regions.flatten(2), dim=2)                  # (B, K, HW)
    pooled = torch.bmm(weights, as_sequence(feats))                     # (B, K, C)
    return pooled.transpose(1, 2).unsqueeze(3)


class ObjectContext(nn.Module):
    """The pixel-region relation and the object context, then ``g([y, x])`` (mmsegmentation's
    ``ObjectAttentionBlock`` without a query downsampling: its module names)."""

    def __init__(self, channels: int, key_channels: int, norm=nn.BatchNorm2d):
        super().__init__()
        self.key_channels = key_channels
        self.key_project = nn.Sequential(ConvNormReLU(channels, key_channels, 1, norm),
                                         ConvNormReLU(key_channels, key_channels, 1, norm))
        self.query_project = nn.Sequential(ConvNormReLU(channels, key_channels, 1, norm),
                                           ConvNormReLU(key_channels, key_channels, 1, norm))
        self.value_project = ConvNormReLU(channels, key_channels, 1, norm)
        self.out_project = ConvNormReLU(key_channels, channels, 1, norm)
        self.bottleneck = ConvNormReLU(2 * channels, channels, 1, norm)

    def relation(self, feats: torch.Tensor, region_feats: torch.Tensor) -> torch.Tensor:
        """``(B, HW, K)``: each pixel's softmax over the regions."""
        query = as_sequence(self.query_project(feats))                  # (B, HW, C')
        key = self.key_project(region_feats).flatten(2)                 # (B, C', K)
        return torch.softmax(torch.bmm(query, key) * self.key_channels ** -0.5, dim=-1)

    def forward(self, feats: torch.Tensor, region_feats: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feats.shape
        value = as_sequence(self.value_project(region_feats))            # (B, K, C')
        context = torch.bmm(self.relation(feats, region_feats), value)   # (B, HW, C')
        context = self.out_project(context.transpose(1, 2).reshape(b, -1, h, w))
        return self.bottleneck(torch.cat([context, feats], dim=1))


@HEADS.register("ocrnet")
class OCRHead(DecodeHead):
    title = "OCRNet"
    family = "self-attention"
    mmseg_type = "OCRHead"
    takes_layer3 = True
    # mmsegmentation's cascade: decode_head.0 the region FCN, decode_head.1 the OCR head
    mmseg_keys = {"0.conv_seg.": "regions.cls_seg.1.", "0.": "regions.", "1.conv_seg.": "cls_seg.1.", "1.": ""}
    mmseg_losses = {"main": "decode_1.loss_ce", "regions": "decode_0.loss_ce"}
    map_kinds = ("object_regions",)

    def __init__(self, in_channels, channels: int, num_classes: int, ocr_channels: int = 256,
                 region_channels: int = 256, region_loss_weight: float = 0.4, region_passes: int = 1,
                 dropout: float = 0.1, norm=nn.BatchNorm2d):
        low, high = in_channels
        super().__init__(high, channels, num_classes, dropout, norm)
        if region_passes not in (1, 2):
            raise ValueError(f"region_passes must be 1 (the paper's) or 2 (mmsegmentation's training), got "
                             f"{region_passes}")
        if region_loss_weight < 0:
            raise ValueError(f"region_loss_weight must be >= 0, got {region_loss_weight}")
        self.region_passes = region_passes
        self.regions = AuxFCNHead(low, num_classes, region_channels, dropout, norm)
        self.bottleneck = ConvNormReLU(high, channels, norm=norm)
        self.object_context_block = ObjectContext(channels, ocr_channels, norm)
        self.loss_weights = {"regions": region_loss_weight}

    def forward(self, inputs) -> dict:
        low, high = inputs
        regions = self.regions(low)["main"]
        read = self.regions(low)["main"] if self.training and self.region_passes == 2 else regions
        feats = self.bottleneck(high)
        out = {"main": self.cls_seg(self.object_context_block(feats, region_representations(feats, read)))}
        if self.training:
            out["regions"] = regions
        return out

    def attention_maps(self, inputs) -> dict:
        low, high = inputs
        regions = self.regions(low)["main"]
        feats = self.bottleneck(high)
        relation = self.object_context_block.relation(feats, region_representations(feats, regions))
        return {"object_regions": {"regions": torch.softmax(regions.flatten(2), dim=2), "relation": relation}}

    def mmseg_init(self):
        """mmsegmentation's cascade keeps its two stages in an ``nn.ModuleList``, whose children mmengine's
        ``init_weights`` never visits (it recurses into children that have an ``init_weights``): their ConvModules
        are He-initialised at construction as everywhere, but both classifiers keep PyTorch's default draw, not
        N(0, 0.01)."""
        self.cls_seg[1].reset_parameters()
        self.regions.cls_seg[1].reset_parameters()
