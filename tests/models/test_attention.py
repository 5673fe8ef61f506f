"""Attention blocks: shapes, gradients, parameter counts from the papers, formulas recomputed."""
import math

import pytest
import torch
import torch.nn.functional as F

from segattn import build_model
from segattn.models.attention import ATTENTION, create_attention
from segattn.models.attention.cbam import CBAMBlock
from segattn.models.attention.eca import ECABlock, eca_kernel_size
from segattn.models.attention.residual_attention import ResidualAttentionBlock
from segattn.models.attention.selective_kernel import SKBlock
from segattn.models.attention.self_attention import SelfAttentionBlock
from segattn.models.attention.squeeze_excite import SEBlock
from segattn.errors import ConfigError
from segattn.models.encoders import Encoder


@pytest.mark.parametrize("name", sorted(ATTENTION.names()))
def test_shape_and_gradient(name):
    block = create_attention(name, 32)
    x = torch.randn(2, 32, 9, 11, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad and p.numel() > 1)


def test_unknown_block():
    with pytest.raises(ConfigError, match="unknown attention block 'sa'; valid: .*eca.*se"):
        create_attention("sa", 8)
    assert create_attention("none", 8) is None and create_attention({"type": "none"}, 8) is None


def test_block_options_from_a_spec_are_checked_against_the_signature():
    assert create_attention({"type": "se", "reduction": 4}, 32).fc1.out_channels == 8
    with pytest.raises(ConfigError, match="attention block 'se' has no option 'reduce'; did you mean 'reduction'"):
        create_attention({"type": "se", "reduce": 4}, 32)
    with pytest.raises(ConfigError, match="reduction: expected a number"):
        create_attention({"type": "nonlocal", "reduction": "two"}, 32)
    with pytest.raises(ConfigError, match="reduction must be >= 1"):
        create_attention({"type": "nonlocal", "reduction": 0}, 32)


def test_se_formula():
    b = SEBlock(32)
    x = torch.randn(2, 32, 4, 5)
    s = x.mean((2, 3))
    w = torch.sigmoid(F.linear(torch.relu(F.linear(s, b.fc1.weight[:, :, 0, 0], b.fc1.bias)),
                               b.fc2.weight[:, :, 0, 0], b.fc2.bias))
    torch.testing.assert_close(b(x), x * w[:, :, None, None])


def test_eca_kernel_sizes_and_formula():
    assert [eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)] == [3, 5, 5, 5, 5, 7]
    b = ECABlock(64)
    x = torch.randn(2, 64, 3, 3)
    s = x.mean((2, 3))
    kw = b.conv.weight[0, 0]
    padded = F.pad(s, (1, 1))
    w = torch.sigmoid(torch.stack([(padded[:, i:i + 3] * kw).sum(1) for i in range(64)], 1))
    torch.testing.assert_close(b(x), x * w[:, :, None, None])


def test_cbam_formula():
    b = CBAMBlock(32)
    x = torch.randn(2, 32, 6, 7)
    mlp = b.mlp
    ca = torch.sigmoid(mlp(F.adaptive_avg_pool2d(x, 1)) + mlp(F.adaptive_max_pool2d(x, 1)))
    x1 = x * ca
    sa = torch.sigmoid(b.spatial(torch.cat([x1.mean(1, keepdim=True), x1.max(1, keepdim=True).values], 1)))
    torch.testing.assert_close(b(x), x1 * sa)


def test_sk_formula():
    b = SKBlock(32).eval()
    x = torch.randn(2, 32, 6, 6)
    u1, u2 = b.branches[0](x), b.branches[1](x)
    z = b.fc((u1 + u2).mean((2, 3), keepdim=True))
    logits = b.select(z).view(2, 2, 32)
    a = torch.softmax(logits, dim=1)
    torch.testing.assert_close(b(x), a[:, 0, :, None, None] * u1 + a[:, 1, :, None, None] * u2)


def test_residual_attention_is_one_plus_mask_times_trunk():
    b = ResidualAttentionBlock(16).eval()
    x = torch.randn(1, 16, 13, 17)
    m = b.mask(x)
    assert ((m > 0) & (m < 1)).all()
    torch.testing.assert_close(b(x), (1 + m) * b.trunk(x))


def test_self_attention_formula():
    b = SelfAttentionBlock(16, heads=4)
    b.gamma.data.fill_(0.5)
    x = torch.randn(2, 16, 3, 4)
    t = b.norm(x.flatten(2).transpose(1, 2))
    q, k, v = b.qkv(t).chunk(3, dim=-1)
    outs = []
    for h in range(4):
        sl = slice(4 * h, 4 * h + 4)
        a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        outs.append(a @ v[..., sl])
    y = b.proj(torch.cat(outs, -1)).transpose(1, 2).reshape(2, 16, 3, 4)
    torch.testing.assert_close(b(x), x + 0.5 * y, atol=1e-5, rtol=1e-5)
    b.gamma.data.zero_()
    torch.testing.assert_close(b(x), x)


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_papers():
    base = _params(Encoder("resnet50", None, 8))
    se = _params(Encoder("resnet50", None, 8, block_attention="se")) - base
    assert 2.4e6 < se < 2.6e6  # SE-ResNet-50: about 2.5M more (Hu et al., Table 2)
    eca = _params(Encoder("resnet50", None, 8, block_attention="eca")) - base
    assert 10 < eca < 500  # ECA: tens to hundreds (Wang et al., Table 2: 80)
    cbam = _params(Encoder("resnet50", None, 8, block_attention="cbam")) - base
    assert 2.4e6 < cbam < 2.6e6  # CBAM: SE's MLP plus a 7x7x2 conv per block


def test_encoder_insertion_sits_on_the_residual_branch():
    enc = Encoder("resnet18", None, 8, block_attention="se", attention_stages=(4,))
    block = enc.body.layer4[0]
    assert isinstance(block.bn2[1], SEBlock) and not isinstance(enc.body.layer3[0].bn2, torch.nn.Sequential)
    block.eval()
    x = torch.randn(1, 256, 5, 5)
    torch.nn.init.constant_(block.bn2[1].fc2.bias, -1e4)  # SE weights -> 0: only the identity path remains
    torch.testing.assert_close(block(x), torch.relu(block.downsample(x)))


def test_build_with_block_attention_and_context_block():
    model = build_model({"head": "fcn", "channels": 16, "context_block": "cbam",
                         "encoder": {"name": "resnet18", "weights": None, "block_attention": "eca"}}).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out["main"].shape == (2, 19, 64, 64)
    assert isinstance(model.context, CBAMBlock)
    with pytest.raises(ConfigError, match="model.encoder.block_attention.type: unknown attention block 'xyz'"):
        build_model({"encoder": {"block_attention": "xyz"}})
    assert math.isfinite(float(out["main"].detach().sum()))


def test_deformable_block_starts_as_the_identity_and_samples_at_its_offsets():
    """DCNv2: at init the offsets are 0 and the modulations 0.5 (its 3x3 taps on the grid, halved) and the block
    the identity (gamma 0); an offset of one pixel right on every tap, modulations near 1, is the convolution read
    one pixel to the right (zeros beyond the border)."""
    from segattn.models.attention.deformable import DeformableBlock

    torch.manual_seed(0)
    block = DeformableBlock(6).eval()
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)
        torch.testing.assert_close(block.deform(x), 0.5 * F.conv2d(x, block.weight, padding=1), atol=1e-5, rtol=1e-5)
        block.offset.bias.copy_(torch.cat([torch.tensor([0.0, 1.0]).repeat(9), torch.full((9,), 30.0)]))
        shifted = F.pad(x, (0, 2, 1, 1))  # tap (ky, kx) of output p reads x(p + (ky, kx) + (0, 1)), zeros outside
        torch.testing.assert_close(block.deform(x), F.conv2d(shifted, block.weight), atol=1e-5, rtol=1e-5)
        block.gamma.fill_(1.0)
        torch.testing.assert_close(block(x), x + block.norm(block.deform(x)))


def test_deformable_block_trains_under_bf16_autocast():
    """torchvision's deform_conv2d has no bfloat16 CPU kernel: the block runs it in float32 inside autocast (the
    demo and probe recipes train with train.amp: auto, bf16 on such CPUs)."""
    from segattn.models.attention.deformable import DeformableBlock

    torch.manual_seed(0)
    block = DeformableBlock(6)
    with torch.no_grad():
        block.gamma.fill_(1.0)
    x = torch.randn(2, 6, 7, 9, requires_grad=True)
    expected = block(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = block(x)
    got.float().square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    torch.testing.assert_close(got.float(), expected, atol=0.1, rtol=0.05)


def test_spatial_transformer_starts_as_the_identity_and_warps_by_its_affine_map():
    """STN: theta starts at the identity (the output is the input); the grid equals ``F.affine_grid``'s for any
    theta; a translation by two pixels' width moves the map one pixel left."""
    from segattn.models.attention.spatial_transformer import SpatialTransformerBlock, affine_grid

    torch.manual_seed(0)
    theta = torch.randn(3, 2, 3)
    torch.testing.assert_close(affine_grid(theta, 5, 7), F.affine_grid(theta, (3, 1, 5, 7), align_corners=False))
    block = SpatialTransformerBlock(8).eval()
    x = torch.randn(2, 8, 6, 10)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x, atol=1e-5, rtol=1e-5)
        block.fc[2].bias.copy_(torch.tensor([1.0, 0.0, 2 / 10, 0.0, 1.0, 0.0]))  # x_in = x_out + one pixel
        torch.testing.assert_close(block(x), F.pad(x[..., 1:], (0, 1)), atol=1e-5, rtol=1e-5)
