import numpy as np

from segattn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_preset


def _pair(h=40, w=60):
    """An image whose red channel encodes the mask, so alignment can be checked after any geometry."""
    blocks = np.random.randint(0, 19, (h // 16 + 1, w // 16 + 1)).astype(np.uint8)
    mask = np.kron(blocks, np.ones((16, 16), np.uint8))[:h, :w]  # blocks: interiors survive resampling
    image = np.stack([mask * 10, np.zeros_like(mask), np.zeros_like(mask)], -1).astype(np.uint8)
    return image, mask


def test_geometry_keeps_image_and_mask_aligned_and_pads_with_ignore():
    np.random.seed(0)
    t = train_preset((96, 128), (0.5, 2.0), ignore_index=255, flip=True)
    for seed in range(10):
        t.pipeline.set_random_seed(seed)
        image, mask = _pair()
        x, y = t(image, mask)
        assert x.shape == (3, 96, 128) and y.shape == (96, 128)
        red = (x[0].numpy() * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
        valid = y.numpy() != 255
        # nearest-neighbour masks: every valid label is one of the original values, matching the image
        assert set(np.unique(y.numpy()[valid])) <= set(range(19))
        # bilinear image vs nearest mask differ only along block edges; a misaligned pair differs everywhere
        assert (np.abs(red[valid] - y.numpy()[valid] * 10) < 6).mean() > 0.7
        # padded area: image 0 (normalised) and mask 255
        pad = ~valid
        if pad.any():
            np.testing.assert_allclose(red[pad], 0, atol=1e-3)


def test_small_images_are_padded_to_the_crop():
    t = train_preset((64, 64), (1.0, 1.0), ignore_index=255, flip=False)
    image, mask = _pair(20, 30)
    x, y = t(image, mask)
    assert (y.numpy()[:20, :30] != 255).all() and (y.numpy()[20:] == 255).all() and (y.numpy()[:, 30:] == 255).all()


def _flip_everything(pad):
    """The preset with every random step forced on: scale 1, flip always (to see where the padding ends up)."""
    import albumentations as A

    t = train_preset((64, 80), (1.0, 1.0), ignore_index=255, flip=True, photometric="mmseg", train_scale=None,
                     cat_max_ratio=0.75, pad=pad)
    for step in t.pipeline.transforms:
        if isinstance(step, A.HorizontalFlip):
            step.p = 1.0
    return t


def test_padding_modes_put_the_padding_where_their_sources_do():
    """black: padded before the crop and flip (the flip moves it left); black_after and mean: below and right."""
    image, mask = _pair(40, 60)
    mean_black = -np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD)  # a black pixel, normalised
    for pad, left in (("black", True), ("black_after", False), ("mean", False)):
        t = _flip_everything(pad)
        t.pipeline.set_random_seed(0)
        x, y = t(image, mask)
        assert x.shape == (3, 64, 80) and y.shape == (64, 80)
        y = y.numpy()
        assert (y[40:] == 255).all()
        padded_columns = y[:40, :20] if left else y[:40, 60:]
        assert (padded_columns == 255).all(), pad
        corner = x[:, 63, 79].numpy()
        expected = np.zeros(3) if pad == "mean" else mean_black
        np.testing.assert_allclose(corner, expected, atol=1e-5, err_msg=pad)


def test_photometric_accepts_the_first_configs_booleans():
    from segattn.config import photometric_kind

    assert [photometric_kind(v) for v in (True, False, "true", None, "mmseg")] == ["jitter", "none", "jitter", "none",
                                                                                    "mmseg"]
