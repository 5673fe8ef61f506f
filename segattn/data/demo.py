"""A procedural street-scene dataset in the exact Cityscapes layout, for training out of the box.

    python -m segattn.data.demo [--root data/demo] [--train 300] [--val 50]

Writes ``leftImg8bit/{train,val}/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png``
and ``gtFine/.../*_gtFine_labelIds.png`` with real Cityscapes label ids, so
both this package and the official cityscapesScripts read it unchanged.

Scenes are drawn in perspective: sky, buildings with windows, vegetation,
terrain, a road with lane marks, sidewalks, cars, people, poles carrying traffic
signs or lights. Colour is not a shortcut: every object takes its colour from
shared palettes (a car may be the colour of a building or of the sky), with
texture, noise, and global lighting changes; shape, position and context
decide the class. Generation is deterministic for a given seed.
"""
import os

import cv2
import numpy as np

from .generated import finish_generating, generator_main, start_generating
from .io import write_png

# Cityscapes label ids of the classes drawn
ROAD, SIDEWALK, BUILDING, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = 7, 8, 11, 17, 19, 20, 21, 22, 23, 24, 26

SHARED = np.array([  # shared by buildings, cars, people, signs, sky
    (70, 70, 70), (120, 120, 125), (180, 180, 185), (230, 230, 235), (60, 90, 160), (130, 170, 220),
    (160, 50, 45), (200, 170, 60), (90, 130, 60), (60, 45, 40), (170, 120, 90), (40, 40, 50)], np.float32)
GROUND = np.array([(95, 90, 95), (120, 115, 110), (140, 135, 140), (165, 160, 150), (110, 100, 120)], np.float32)
GREENS = np.array([(60, 110, 40), (90, 130, 60), (110, 140, 50), (80, 100, 70), (130, 150, 90)], np.float32)

CITIES = {"train": ["aachen", "bochum", "cologne"], "val": ["frankfurt"]}
SIZE = (256, 512)  # H, W


def _colour(rng, palette, jitter=18.0):
    return np.clip(palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3), 0, 255)


def _fill(img, lab, rng, pts_or_rect, palette, label_id, texture=8.0):
    """Fill a polygon (Nx2 points) in both the image (textured colour) and the label."""
    mask = np.zeros(lab.shape, np.uint8)
    cv2.fillPoly(mask, [np.asarray(pts_or_rect, np.int32)], 1)
    _paint(img, lab, rng, mask.astype(bool), palette, label_id, texture)


def _paint(img, lab, rng, mask, palette, label_id, texture=8.0):
    if not mask.any():
        return
    colour = _colour(rng, palette)
    img[mask] = colour + rng.normal(0, texture, (int(mask.sum()), 1))
    lab[mask] = label_id


def _sky_and_buildings(img, lab, rng, horizon):
    h, w = lab.shape
    _fill(img, lab, rng, [(0, 0), (w, 0), (w, horizon), (0, horizon)], SHARED, SKY, texture=3.0)
    x = -rng.integers(0, 40)
    while x < w:
        bw = int(rng.integers(50, 140))
        top = int(rng.integers(horizon * 0.15, horizon * 0.8))
        _fill(img, lab, rng, [(x, top), (x + bw, top), (x + bw, horizon + 5), (x, horizon + 5)], SHARED, BUILDING)
        win = _colour(rng, SHARED) * 0.6  # windows: darker, still building
        for wy in range(top + 8, horizon - 10, int(rng.integers(14, 22))):
            for wx in range(x + 6, x + bw - 10, int(rng.integers(12, 20))):
                cv2.rectangle(img, (wx, wy), (wx + 6, wy + 8), win.tolist(), -1)
        x += bw + int(rng.integers(0, 25))


def _vegetation(img, lab, rng, horizon):
    h, w = lab.shape
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = int(rng.integers(0, w)), int(horizon - rng.integers(0, 30))
        mask = np.zeros(lab.shape, np.uint8)
        for _ in range(int(rng.integers(4, 9))):
            r = int(rng.integers(10, 30))
            cv2.circle(mask, (cx + int(rng.integers(-35, 35)), cy + int(rng.integers(-40, 10))), r, 1, -1)
        cv2.rectangle(mask, (cx - 3, cy), (cx + 3, horizon + 10), 1, -1)  # trunk counts as vegetation
        _paint(img, lab, rng, mask.astype(bool), GREENS, VEGETATION, texture=22.0)


def _ground(img, lab, rng, horizon):
    h, w = lab.shape
    vx = int(w * rng.uniform(0.35, 0.65))  # vanishing point
    left, right = int(-w * rng.uniform(0.1, 0.4)), int(w * rng.uniform(1.1, 1.4))
    # terrain strips outside the sidewalks, then sidewalks, then the road
    _fill(img, lab, rng, [(vx - 30, horizon), (vx + 30, horizon), (w, horizon), (w, h), (0, h), (0, horizon)],
          GREENS, TERRAIN, texture=14.0)
    walk = rng.uniform(0.15, 0.3)
    _fill(img, lab, rng, [(vx - 18, horizon), (vx + 18, horizon), (right + w * walk * 2, h), (left - w * walk * 2, h)],
          GROUND, SIDEWALK, texture=10.0)
    road = [(vx - 10, horizon), (vx + 10, horizon), (right, h), (left, h)]
    _fill(img, lab, rng, road, GROUND, ROAD, texture=6.0)
    for t in np.linspace(0.1, 0.9, 6):  # lane marks: painted, still road
        y0, y1 = horizon + (h - horizon) * t, horizon + (h - horizon) * (t + 0.06)
        x0, x1 = vx + ((left + right) / 2 - vx) * t, vx + ((left + right) / 2 - vx) * (t + 0.06)
        cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), (235, 235, 235), max(1, int(4 * t)))
    return vx, left, right


def _lerp(a, b, t):
    return a + (b - a) * t


def _car(img, lab, rng, horizon, vx, left, right, t):
    h, _ = lab.shape
    t = 0.15 + 0.8 * t
    y = int(_lerp(horizon, h, t))
    xl, xr = _lerp(vx, left, t), _lerp(vx, right, t)
    cw = int(20 + 110 * t)
    cx = int(rng.uniform(xl, xr - cw))
    ch = int(cw * rng.uniform(0.45, 0.6))
    body = [(cx, y - ch // 2), (cx + cw, y - ch // 2), (cx + cw, y), (cx, y)]
    roof = [(cx + cw // 5, y - ch), (cx + 4 * cw // 5, y - ch), (cx + 9 * cw // 10, y - ch // 2), (cx + cw // 10, y - ch // 2)]
    mask = np.zeros(lab.shape, np.uint8)
    cv2.fillPoly(mask, [np.array(body), np.array(roof)], 1)
    r = max(2, cw // 9)
    for wx in (cx + cw // 5, cx + 4 * cw // 5):
        cv2.circle(mask, (wx, y), r, 1, -1)
    _paint(img, lab, rng, mask.astype(bool), SHARED, CAR, texture=6.0)
    for wx in (cx + cw // 5, cx + 4 * cw // 5):
        cv2.circle(img, (wx, y), r, (25, 25, 25), -1)
    glass = np.clip(_colour(rng, SHARED) * 0.5, 0, 255).tolist()
    cv2.fillPoly(img, [np.array([(cx + cw // 4, y - ch + 3), (cx + 3 * cw // 4, y - ch + 3),
                                 (cx + 17 * cw // 20, y - ch // 2 - 2), (cx + 3 * cw // 20, y - ch // 2 - 2)])], glass)


def _person(img, lab, rng, horizon, vx, left, right, t):
    h, w = lab.shape
    t = 0.2 + 0.75 * t
    y = int(_lerp(horizon, h, t))
    side = rng.integers(2)
    edge = _lerp(vx, left if side == 0 else right, t)
    x = int(edge + (-1 if side == 0 else 1) * rng.uniform(5, 40) * (0.3 + t))
    ph = int(30 + 80 * t)
    pw = max(8, ph // 3)
    mask = np.zeros(lab.shape, np.uint8)
    cv2.ellipse(mask, (x, y - ph + pw // 2), (pw // 2, pw // 2 + 1), 0, 0, 360, 1, -1)  # head
    cv2.rectangle(mask, (x - pw // 2, y - ph + pw), (x + pw // 2, y - ph // 2), 1, -1)  # torso
    cv2.rectangle(mask, (x - pw // 2, y - ph // 2), (x - 1, y), 1, -1)  # legs
    cv2.rectangle(mask, (x + 1, y - ph // 2), (x + pw // 2, y), 1, -1)
    _paint(img, lab, rng, mask.astype(bool), SHARED, PERSON, texture=10.0)


def _pole(img, lab, rng, horizon, vx, left, right, t):
    h, _ = lab.shape
    t = 0.2 + 0.7 * t
    y = int(_lerp(horizon, h, t))
    side = rng.integers(2)
    x = int(_lerp(vx, left if side == 0 else right, t) + (-1 if side == 0 else 1) * 6 * (0.5 + t))
    ph, pw = int(60 + 120 * t), max(5, int(5 + 9 * t))
    _fill(img, lab, rng, [(x - pw // 2, y - ph), (x + pw // 2, y - ph), (x + pw // 2, y), (x - pw // 2, y)],
          GROUND, POLE, texture=6.0)
    size = int(20 + 30 * t)
    top = y - ph
    if rng.random() < 0.6:  # sign: disc, triangle or square from the shared palette, with a rim
        kind = rng.integers(3)
        cx, cy = x, top - size // 2
        if kind == 0:
            pts = cv2.ellipse2Poly((cx, cy), (size // 2, size // 2), 0, 0, 360, 20)
        elif kind == 1:
            pts = np.array([(cx - size // 2, cy + size // 2), (cx + size // 2, cy + size // 2), (cx, cy - size // 2)])
        else:
            pts = np.array([(cx - size // 2, cy - size // 2), (cx + size // 2, cy - size // 2),
                            (cx + size // 2, cy + size // 2), (cx - size // 2, cy + size // 2)])
        _fill(img, lab, rng, pts, SHARED, SIGN, texture=4.0)
        cv2.polylines(img, [np.asarray(pts, np.int32)], True, _colour(rng, SHARED).tolist(), 2)
    else:  # traffic light: dark box with three lamps
        bw, bh = max(8, size // 2), size + size // 2
        box = [(x - bw // 2, top - bh), (x + bw // 2, top - bh), (x + bw // 2, top), (x - bw // 2, top)]
        _fill(img, lab, rng, box, SHARED[[0, 9, 11]], LIGHT, texture=4.0)
        for i, c in enumerate([(220, 40, 30), (230, 190, 40), (40, 200, 80)]):
            cv2.circle(img, (x, top - bh + bh * (2 * i + 1) // 6), max(1, bw // 3), c, -1)


def render_scene(rng: np.random.Generator, size=SIZE):
    """One (image HxWx3 uint8 RGB, label HxW uint8 Cityscapes ids) pair."""
    h, w = size
    img = np.zeros((h, w, 3), np.float32)
    lab = np.zeros((h, w), np.uint8)
    horizon = int(h * rng.uniform(0.38, 0.55))
    _sky_and_buildings(img, lab, rng, horizon)
    _vegetation(img, lab, rng, horizon)
    vx, left, right = _ground(img, lab, rng, horizon)
    things = [_car] * int(rng.integers(1, 5)) + [_person] * int(rng.integers(1, 5)) + [_pole] * int(rng.integers(1, 4))
    depths = np.sort(rng.random(len(things)))  # 0 = at the horizon, 1 = at the camera
    for draw, t in zip(rng.permutation(things), depths):  # far to near, so near things occlude
        draw(img, lab, rng, horizon, vx, left, right, t)
    # lighting: a global gain and offset, a left-right gradient, sensor noise
    gain = rng.uniform(0.6, 1.3)
    grad = np.linspace(rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2), w, dtype=np.float32)[None, :, None]
    img = img * gain * grad + rng.uniform(-25, 25) + rng.normal(0, 6, img.shape)
    img = cv2.GaussianBlur(np.clip(img, 0, 255), (3, 3), 0)
    return np.clip(img, 0, 255).astype(np.uint8), lab


# Cityscapes' classes with instances (hasInstances in labels.py): person .. bicycle
INSTANCE_IDS = (24, 25, 26, 27, 28, 29, 30, 31, 32, 33)


def instance_ids(label: np.ndarray) -> np.ndarray:
    """``*_gtFine_instanceIds.png`` as Cityscapes writes it (uint16): the label id for stuff, and
    ``id * 1000 + k`` for the k-th connected region of a class with instances (touching objects merge)."""
    out = label.astype(np.uint16)
    for class_id in np.intersect1d(np.unique(label), INSTANCE_IDS):
        count, regions = cv2.connectedComponents((label == class_id).astype(np.uint8), connectivity=8)
        for k in range(1, count):
            out[regions == k] = class_id * 1000 + (k - 1)
    return out


def _write_scene(job):
    root, split, i, seed, size = job
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
    cities = CITIES[split]
    city = cities[i % len(cities)]
    name = f"{city}_{i // len(cities):06d}_{19:06d}"
    image, label = render_scene(rng, size)
    for kind, array, suffix in (("leftImg8bit", image, "_leftImg8bit.png"), ("gtFine", label, "_gtFine_labelIds.png"),
                                ("gtFine", instance_ids(label), "_gtFine_instanceIds.png")):
        folder = os.path.join(root, kind, split, city)
        os.makedirs(folder, exist_ok=True)
        write_png(os.path.join(folder, name + suffix), array)


def generate(root: str, num_train: int = 300, num_val: int = 50, seed: int = 0, size=SIZE, progress=True) -> str:
    """Write the demo dataset under ``root`` (skips it when already complete).

    Only into a folder that is empty, absent, or a demo set already (``.demo``, written before the first scene,
    or ``.complete``, after the last): a folder holding anything else is someone's data, and a ConfigError
    says so instead of writing into it.
    """
    expected = f"{num_train} {num_val} {seed} {size[0]} {size[1]} instances"
    if not start_generating(root, expected, "the procedural demo set (python -m segattn.data.demo); safe to delete"):
        return root
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    jobs = [(root, split, i, seed, size) for split, count in (("train", num_train), ("val", num_val))
            for i in range(count)]
    workers = min(os.cpu_count() or 1, 8)
    desc = f"generating demo data in {root}"
    if workers > 1 and len(jobs) > 16:  # each scene depends only on (seed, split, index): any order, any process
        with ProcessPoolExecutor(workers) as pool:
            for _ in tqdm(pool.map(_write_scene, jobs, chunksize=8), total=len(jobs), desc=desc, disable=not progress):
                pass
    else:
        for job in tqdm(jobs, desc=desc, disable=not progress):
            _write_scene(job)
    finish_generating(root, expected)
    return root


def main(argv=None):
    generator_main(generate, "Generate the procedural Cityscapes-layout demo dataset.", "data/demo", 300, 50, argv)


if __name__ == "__main__":
    main()
