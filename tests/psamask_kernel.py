"""mmcv's PSAMask CPU kernel (``mmcv/ops/csrc/pytorch/cpu/psamask.cpp``), transliterated loop for loop.

mmcv-lite has no compiled ops, so mmsegmentation's ``PSAHead`` cannot run here as
shipped; :func:`install` gives the stubbed ``mmcv._ext`` these two functions (the
signatures mmcv's ``PSAMaskFunction`` calls), so mmcv's own PSAMask module, and
through it mmsegmentation's head, run the kernel's arithmetic: what
``segattn.ops.psa_mask`` is held to. Slow (Python loops): for the tests' small maps.
"""
import sys


def _loops(num_, h_feature, w_feature, h_mask, w_mask, half_h_mask, half_w_mask):
    for n in range(num_):
        for h in range(h_feature):
            for w in range(w_feature):
                for hidx in range(max(0, half_h_mask - h), min(h_mask, h_feature + half_h_mask - h)):
                    for widx in range(max(0, half_w_mask - w), min(w_mask, w_feature + half_w_mask - w)):
                        mask_index = ((n * h_mask * w_mask + hidx * w_mask + widx) * h_feature + h) * w_feature + w
                        q = (hidx + h - half_h_mask) * w_feature + (widx + w - half_w_mask)
                        p = h * w_feature + w
                        yield n, mask_index, q, p


def _buffer_index(psa_type, n, q, p, hw):
    # collect (0): buffer[n, q, p]; distribute (1): buffer[n, p, q]
    return (n * hw + q) * hw + p if psa_type == 0 else (n * hw + p) * hw + q


def psamask_forward(input, output, psa_type, num_, h_feature, w_feature, h_mask, w_mask, half_h_mask,
                    half_w_mask):
    src, dst, hw = input.reshape(-1), output.view(-1), h_feature * w_feature
    for n, mask_index, q, p in _loops(num_, h_feature, w_feature, h_mask, w_mask, half_h_mask, half_w_mask):
        dst[_buffer_index(psa_type, n, q, p, hw)] = src[mask_index]


def psamask_backward(grad_output, grad_input, psa_type, num_, h_feature, w_feature, h_mask, w_mask, half_h_mask,
                     half_w_mask):
    src, dst, hw = grad_output.reshape(-1), grad_input.view(-1), h_feature * w_feature
    for n, mask_index, q, p in _loops(num_, h_feature, w_feature, h_mask, w_mask, half_h_mask, half_w_mask):
        dst[mask_index] = src[_buffer_index(psa_type, n, q, p, hw)]


def install():
    """Give the stubbed ``mmcv._ext`` (segattn.interop.mmcv_stub) the two functions; a real one is left alone."""
    from segattn.interop.mmcv_stub import _MissingExtension, stub_mmcv_ext

    stub_mmcv_ext()
    ext = sys.modules["mmcv._ext"]
    if isinstance(ext, _MissingExtension):
        ext.psamask_forward, ext.psamask_backward = psamask_forward, psamask_backward
