"""Heads: shapes at OS 8/16 on odd sizes, gradients, identity at init, attention formulas."""
import pytest
import torch

from segattn import build_model
from segattn.models import HEADS  # every registered head, the toy of tests/toys.py included
from segattn.models.attention.non_local import NonLocalBlock
from segattn.models.heads.ccnet import RCCAHead
from segattn.models.heads.danet import ChannelAttention, PositionAttention


def tiny(head, os_=8, **kw):
    cfg = {"head": head, "num_classes": 5, "channels": 16, "encoder": {"name": "resnet18", "weights": None,
                                                                      "output_stride": os_},
           "aux": {"channels": 8}}
    cfg.update(kw)
    return build_model(cfg)


@pytest.mark.parametrize("head", HEADS.names())
@pytest.mark.parametrize("os_", [8, 16])
def test_shapes_and_gradients_reach_encoder(head, os_):
    model = tiny(head, os_).train()
    x = torch.randn(2, 3, 97, 129)
    out = model(x)
    expected = {"main", "aux"} | set(model.head.loss_weights)  # DANet: pam, cam
    assert set(out) == expected
    for name, logits in out.items():  # maps at the input size; EncNet's class presence one vector an image
        assert logits.shape == ((2, 5) if name in model.head.presence_outputs else (2, 5, 97, 129)), name
    feats = model.encoder(x)
    assert feats[1].shape[-2:] == ((97 - 1) // os_ + 1, (129 - 1) // os_ + 1)
    sum(v.sum() for v in out.values()).backward()
    first_conv = model.encoder.body.conv1.weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 33, 47))
    assert set(out) == {"main"} and out["main"].shape == (1, 5, 33, 47)  # one return type in both modes


def test_eval_danet_returns_only_main():
    model = tiny("danet").eval()
    with torch.no_grad():
        out = model.head(torch.randn(1, 512, 5, 6))
    assert set(out) == {"main"}


def test_aux_can_be_disabled():
    model = tiny("fcn", aux={"enabled": False}).train()
    assert model.aux_head is None
    assert set(model(torch.randn(1, 3, 64, 64))) == {"main"}


@pytest.mark.parametrize("head", HEADS.names())
def test_residual_attention_blocks_start_as_the_identity(head):
    """Every block a head declares in ``starts_as_identity`` returns its input at init (gamma 0, or a zero-initialised
    output layer), so the head starts as its frame without attention."""
    model = tiny(head).eval()
    blocks = [getattr(model.head, name) for name in model.head.starts_as_identity]
    x = torch.randn(2, 16, 6, 7)  # the head's 16 channels
    for block in filter(None, blocks):
        with torch.no_grad():
            torch.testing.assert_close(block(x), x)


def test_non_local_block_with_its_norm_starts_as_the_identity():
    block = NonLocalBlock(16, norm=torch.nn.BatchNorm2d).eval()
    x = torch.randn(2, 16, 6, 7)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("head", HEADS.names())
def test_attention_maps_are_the_kinds_the_head_declares(head):
    """A head's maps come under exactly the kinds of ``map_kinds`` (each in the one table of map kinds), with the
    shape the table gives: the figure and the explorer title them from the kind."""
    from segattn.models.maps import COMPANIONS, MAP_KINDS

    model = tiny(head).eval()
    assert set(model.head.map_kinds) <= set(MAP_KINDS)
    with torch.no_grad():
        layer3, features = model.features(torch.randn(1, 3, 41, 57))
        maps = model.head.attention_maps(model.head.inputs(layer3, features))
    kinds = set(maps) - set(COMPANIONS)
    assert kinds == set(model.head.map_kinds)
    assert all(COMPANIONS[key] in kinds for key in set(maps) & set(COMPANIONS))
    h, w = features.shape[-2:]
    for kind in kinds:
        value = maps[kind]
        if kind == "criss_cross":
            assert value.shape[1:] == (1, h, w, h + w)
        elif kind == "context":
            assert tuple(value.shape) == (1, h * w)
        elif kind == "channel":
            assert value.shape == (1, 16, 16)
        elif kind == "pyramid":  # two row readers (fusion, context), each row spread over the pixels
            assert all(rows[0, 0].shape == (h * w,) for rows in value)
            assert all(abs(float(rows[0, 5].sum()) - 1) < 1e-5 for rows in value)
        elif kind == "channel_gate":  # one gate per channel of the head, in (0, 1)
            assert value.shape == (1, model.head.channels) and 0 < float(value.min()) <= float(value.max()) < 1
        elif kind == "point_wise":  # PSANet: {branch: rows}, each row over the feature cells, summing to 1
            assert set(value) == {"collect", "distribute"}
            assert all(abs(float(rows[0, 5].sum()) - 1) < 1e-5 and rows[0, 5].shape == (h * w,)
                       for rows in value.values())
        elif kind == "em_bases":  # responsibilities: per position a softmax over the bases
            assert value.shape[:2] == (1, h * w)
            torch.testing.assert_close(value.sum(-1), torch.ones(1, h * w))
        elif kind == "object_regions":  # OCRNet: K soft regions over the positions, each position's relation
            assert value["regions"].shape == (1, 5, h * w) and value["relation"].shape == (1, h * w, 5)
            torch.testing.assert_close(value["regions"].sum(-1), torch.ones(1, 5))
            torch.testing.assert_close(value["relation"].sum(-1), torch.ones(1, h * w))
        else:  # all pairs: row i is query i
            assert value[0, 0].shape == (h * w,)


def test_position_attention_formula():
    pam = PositionAttention(16)
    pam.gamma.data.fill_(0.7)
    x = torch.randn(2, 16, 4, 5)
    q = pam.query_conv(x).reshape(2, 2, 20)
    k = pam.key_conv(x).reshape(2, 2, 20)
    v = pam.value_conv(x).reshape(2, 16, 20)
    out = torch.empty(2, 16, 20)
    for b in range(2):
        for i in range(20):
            a = torch.softmax(q[b, :, i] @ k[b], dim=0)  # over key positions j
            out[b, :, i] = (v[b] * a).sum(-1)
    torch.testing.assert_close(pam(x), 0.7 * out.view(2, 16, 4, 5) + x, atol=1e-5, rtol=1e-5)


def test_channel_attention_formula():
    cam = ChannelAttention()
    cam.gamma.data.fill_(0.3)
    x = torch.randn(2, 6, 3, 4)
    f = x.reshape(2, 6, 12)
    out = torch.empty_like(f)
    for b in range(2):
        for i in range(6):
            e = torch.stack([f[b, i] @ f[b, j] for j in range(6)])
            a = torch.softmax(e.max() - e, dim=0)
            out[b, i] = (a[:, None] * f[b]).sum(0)
    torch.testing.assert_close(cam(x), 0.3 * out.view(2, 6, 3, 4) + x, atol=1e-5, rtol=1e-5)


def test_non_local_formula():
    block = NonLocalBlock(8, reduction=2, use_scale=True)
    torch.nn.init.normal_(block.conv_out.weight)
    x = torch.randn(1, 8, 3, 3)
    th, ph, g = (m(x).reshape(4, 9) for m in (block.theta, block.phi, block.g))
    f = torch.softmax(th.T @ ph / 2.0, dim=-1)  # sqrt(4) = 2
    y = (g @ f.T).view(1, 4, 3, 3)
    torch.testing.assert_close(block(x), x + block.conv_out(y), atol=1e-5, rtol=1e-5)


def test_rcca_loops_share_weights():
    head = RCCAHead(32, 16, 3, recurrence=3).eval()
    n_r1 = sum(p.numel() for p in RCCAHead(32, 16, 3, recurrence=1).parameters())
    assert sum(p.numel() for p in head.parameters()) == n_r1
    calls = []
    head.attention.register_forward_hook(lambda *a: calls.append(1))
    head(torch.randn(1, 32, 5, 5))
    assert len(calls) == 3
    # gamma = 0: the R loops are exact identities, so context() is the FCN branch convs[1](convs[0](x))
    x = torch.randn(1, 32, 5, 5)
    torch.testing.assert_close(head.context(x), head.convs[1](head.convs[0](x)))


def test_attention_heads_share_the_fcn_frame():
    from segattn.models.heads.fcn import FCNHead
    from segattn.models.heads.non_local import NonLocalHead

    fcn, rcca, nl = FCNHead(32, 16, 3), RCCAHead(32, 16, 3), NonLocalHead(32, 16, 3)
    frame = {k for k in fcn.state_dict()}
    assert frame <= set(rcca.state_dict()) and frame <= set(nl.state_dict())
    assert {k.split(".")[0] for k in set(rcca.state_dict()) - frame} == {"attention"}


def test_checkpoint_of_the_first_head_layout_still_loads():
    """Before the heads shared FCNHead, RCCA used conva/cca/convb/bottleneck and Non-local conv_in/nl_block/..."""
    from segattn.engine.checkpoint import load_model_weights

    for head, renames in (("ccnet", {"convs.0.": "conva.", "convs.1.": "convb.", "attention.": "cca.",
                                     "conv_cat.": "bottleneck."}),
                          ("nonlocal", {"convs.0.": "conv_in.", "convs.1.": "conv_out.", "attention.": "nl_block.",
                                        "conv_cat.": "bottleneck."})):
        src = tiny(head)
        old_state = {}
        for key, value in src.state_dict().items():
            for new, old in renames.items():
                if key.startswith("head." + new):
                    key = "head." + old + key[len("head." + new):]
            old_state[key] = value
        assert any(".conva." in k or ".conv_in." in k for k in old_state)
        dst = tiny(head)
        load_model_weights(dst, old_state)
        for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
            torch.testing.assert_close(a, b, msg=k)


def test_interlaced_rows_are_the_two_steps_multiplied():
    """ISANet's map of a query: its short-range row times the long-range rows, the product of the two sparse
    (padded HW x padded HW) matrices the head applies, cropped to the image; each step alone is that matrix's row."""
    from segattn.models.heads.isanet import ISAHead

    head = ISAHead(8, 8, 3, isa_channels=4, down_factor=(3, 4)).eval()
    x = torch.randn(2, 8, 7, 10)  # neither side a multiple of the block: padded to 9 x 12
    with torch.no_grad():
        rows = head.attention_maps(x)["interlaced"]
        grouped = head._regroup(head.in_conv(x))
        long_w = head.global_relation.weights(grouped)
        short_w = head.local_relation.weights(head._short_groups(head.global_relation(grouped), 2))
    (top, left), (hp, wp) = (1, 1), (9, 12)
    index = torch.arange(hp * wp).reshape(1, 1, hp, wp)
    long_groups = index.reshape(1, 1, 3, 3, 3, 4).permute(0, 3, 5, 1, 2, 4).reshape(-1, 3 * 3)   # (12, 9)
    short_groups = head._short_groups(long_groups.reshape(-1, 1, 3, 3).float(), 1).reshape(-1, 12).long()
    for b in range(2):
        long_m, short_m = torch.zeros(hp * wp, hp * wp), torch.zeros(hp * wp, hp * wp)
        for g, members in enumerate(long_groups):
            long_m[members[:, None], members[None, :]] = long_w[b * 12 + g]
        for g, members in enumerate(short_groups):
            short_m[members[:, None], members[None, :]] = short_w[b * 9 + g]
        inside = torch.zeros(hp, wp, dtype=torch.bool)
        inside[top:top + 7, left:left + 10] = True
        keep = inside.reshape(-1)
        expected = (short_m @ long_m)[keep][:, keep]
        torch.testing.assert_close(torch.stack([rows[b, i] for i in range(70)]), expected)
        torch.testing.assert_close(torch.stack([rows.short(b, i) for i in range(70)]), short_m[keep][:, keep])
        torch.testing.assert_close(torch.stack([rows.long(b, i) for i in range(70)]), long_m[keep][:, keep])


def test_psanet_keeps_no_pairwise_weights_for_backward(monkeypatch):
    """PSANet in training keeps neither its (hw)^2 weights nor its window weights for backward (each branch is
    recomputed from its predictor's hidden map), and its gradients are the plain path's (the same operations)."""
    import segattn.models.heads.psanet as psanet

    torch.manual_seed(0)
    head = psanet.PSAHead(24, 16, 5, mask_size=(39, 47)).double().train()
    x = torch.randn(2, 24, 40, 48, dtype=torch.float64, requires_grad=True)
    n = 20 * 24  # the shrunk grid's positions

    def run():
        sizes = []

        def pack(t):
            sizes.append(t.numel())
            return t
        torch.manual_seed(1)  # the classifier's dropout: the same mask in both runs
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = head(x)["main"]
        grads = torch.autograd.grad(out.square().sum(), [x, *head.parameters()])
        return max(sizes), grads

    largest, grads = run()
    assert largest < n * n  # one image's weights; the window weights are 39 * 47 * n
    monkeypatch.setattr(psanet, "checkpoint", lambda fn, *args, **kw: fn(*args))  # the plain path
    largest_plain, plain = run()
    assert largest_plain >= 2 * n * n
    for got, expected in zip(grads, plain):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
