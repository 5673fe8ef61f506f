"""What the attention explorer shows, apart from the web page: one image's prediction and maps, and a click's pictures.

:meth:`Explorer.open` runs the model once per image: the prediction as the
config evaluates (:func:`segattn.engine.predictor.predict_labels`, sliding
windows for a huge image) and the head's attention maps
(:func:`segattn.analysis.attention_maps.head_maps`) on the image at
``eval.scales[0]``, shrunk further where its longer side would pass
``max_side`` (CCNet's two loops over a 6000 x 4000 photo at full size hold
about 4 GB of maps at stride 8). :meth:`Explorer.click` then answers a query pixel from those maps
alone: each map as a heat map over the image, with an opacity and a clip
(weights above ``clip`` times the map's maximum drawn at full colour, the
CCNet authors' advice for readable maps in
https://github.com/speedinghzl/CCNet/issues/3), the query marked, and DANet's
top channel-attention weights as a table.

Everything here returns numpy RGB arrays and text; :mod:`segattn.analysis.explorer_app`
puts them on a Gradio page.
"""
import importlib
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..data.palette import colorize
from ..data.transforms import normalize_image
from ..engine.inference import scaled_size
from ..engine.predictor import overlay, predict_labels
from ..errors import ConfigError
from ..models.maps import TABLE_VIEWS, VIEW_TITLES

# the titles of the views drawn as pictures, from the one table of map kinds
TITLES = {view: title for view, title in VIEW_TITLES.items() if view not in TABLE_VIEWS}
from .attention_maps import head_maps, query_maps

VIEW_SIDE = 1024  # pictures are sent to the browser at most this large (the click is mapped back)
SCALE_HEIGHT = 34  # the colour scale under each map picture


@dataclass
class OpenImage:
    """One image as the explorer holds it between clicks."""

    view: np.ndarray  # the image as shown, longer side <= VIEW_SIDE
    labels: np.ndarray  # prediction at ``view``'s size (train ids; the image's own prediction when not shrunk)
    size: tuple  # the input image's (H, W)
    maps: dict = field(default_factory=dict)  # head_maps of the map input; empty for a head without maps
    no_maps: str = ""  # why there are no maps


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    s = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def heat_colors(values: np.ndarray, clip: float) -> np.ndarray:
    """``(h, w)`` non-negative weights -> ``(h, w, 3)`` uint8 RGB (inferno), saturating at ``clip * max``."""
    import matplotlib

    top = float(values.max()) * min(max(clip, 1e-6), 1.0)
    scaled = np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)
    return (matplotlib.colormaps["inferno"](scaled)[..., :3] * 255).round().astype(np.uint8)


def colour_scale(width: int, top: float, clip: float) -> np.ndarray:
    """A strip for under a heat map: the inferno ramp from 0 to the weight drawn at full colour (``clip`` times
    the map's maximum ``top``; '+' where the clip saturates larger weights), its ends labelled."""
    import matplotlib

    ramp = matplotlib.colormaps["inferno"](np.linspace(0, 1, max(1, width - 16)))[:, :3]
    strip = np.full((SCALE_HEIGHT, width, 3), 255, np.uint8)
    strip[4:16, 8:width - 8] = (ramp[None] * 255).round().astype(np.uint8)
    saturate = top * min(max(clip, 1e-6), 1.0)
    right = f"{saturate:.3g}" + ("+" if clip < 1 else "")
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    cv2.putText(strip, "0", (8, 30), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    size = cv2.getTextSize(right, font, scale, 1)[0][0]
    cv2.putText(strip, right, (width - 8 - size, 30), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    middle = "attention weight"
    size = cv2.getTextSize(middle, font, scale, 1)[0][0]
    if width > 2 * size:
        cv2.putText(strip, middle, ((width - size) // 2, 30), font, scale, (90, 90, 90), 1, cv2.LINE_AA)
    return strip


def mark(image: np.ndarray, y: int, x: int) -> np.ndarray:
    """A ring at (y, x): white with a black edge, visible on any colour."""
    out = image.copy()
    r = max(4, round(max(image.shape[:2]) / 80))
    cv2.circle(out, (x, y), r + 1, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.circle(out, (x, y), r, (255, 255, 255), 2, cv2.LINE_AA)
    return out


class Explorer:
    """A trained segmentor, its config and its dataset's names and palette; no web code."""

    def __init__(self, model, cfg, device, class_names, palette, max_side: int = 1024):
        self.model, self.cfg, self.device = model.eval(), cfg, device
        self.class_names, self.palette = list(class_names), palette
        self.max_side = max_side
        importlib.import_module("matplotlib")  # now, not on the first click (a third of a second)

    @torch.no_grad()
    def open(self, image: np.ndarray) -> OpenImage:
        """Predict ``image`` (HxWx3 uint8 RGB) and compute its maps once."""
        view = _shrink(image, VIEW_SIDE)
        labels = predict_labels(self.model, self.cfg, image, self.device, out_size=view.shape[:2])
        opened = OpenImage(view=view, labels=labels, size=image.shape[:2])
        h, w = scaled_size(*image.shape[:2], self.cfg.eval.scales[0])
        if max(h, w) > self.max_side:
            h, w = scaled_size(h, w, self.max_side / max(h, w))
        small = image if (h, w) == image.shape[:2] else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        try:
            opened.maps = head_maps(self.model, normalize_image(small)[None].to(self.device))
        except ConfigError as err:
            opened.no_maps = str(err).split(": ", 1)[-1]
        return opened

    def prediction(self, opened: OpenImage, alpha: float = 0.5) -> np.ndarray:
        """The image with its prediction overlaid in the dataset palette."""
        return overlay(opened.view, colorize(opened.labels, self.palette), alpha)

    def legend(self, opened: OpenImage):
        """``[(class name, (r, g, b), share of the image)]`` of the predicted classes, largest first."""
        counts = np.bincount(opened.labels.ravel(), minlength=len(self.class_names))
        order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] and c < len(self.class_names)]
        return [(self.class_names[c], tuple(self.palette[c]), counts[c] / opened.labels.size) for c in order]

    def cell(self, opened: OpenImage, y: int, x: int):
        """The feature-grid cell of view pixel (y, x) (clamped into the image)."""
        gh, gw = opened.maps["grid"]
        vh, vw = opened.view.shape[:2]
        y, x = min(max(int(y), 0), vh - 1), min(max(int(x), 0), vw - 1)
        return min(gh - 1, y * gh // vh), min(gw - 1, x * gw // vw)

    def click(self, opened: OpenImage, y: int, x: int, opacity: float = 0.6, clip: float = 1.0):
        """The maps of view pixel (y, x): ``({name: RGB picture}, channel table rows, query description)``.

        Each picture is the view image blended with the heat map (``opacity`` 1:
        the heat map alone), the map drawn block by block over the image (one
        block per feature cell, no smoothing that would blur a row into its
        neighbours), the query ringed, and a colour scale below (0 to the weight drawn at full colour).
        """
        vh, vw = opened.view.shape[:2]
        y, x = min(max(int(y), 0), vh - 1), min(max(int(x), 0), vw - 1)
        name = self.class_names[opened.labels[y, x]] if opened.labels[y, x] < len(self.class_names) else "ignore"
        scale_y, scale_x = opened.size[0] / vh, opened.size[1] / vw
        where = f"pixel (y={round(y * scale_y)}, x={round(x * scale_x)}) of the image, predicted {name}"
        if not opened.maps:
            return {}, [], where
        qy, qx = self.cell(opened, y, x)
        gh, gw = opened.maps["grid"]
        where += f"; feature cell (y={qy}, x={qx}) of {gh} x {gw}"
        pictures, channels = {}, []
        for key, value in query_maps(opened.maps, qy, qx).items():
            if key in TABLE_VIEWS:  # the channel table: (channel, indices, weights)
                channel, idx, weights = value
                channels = [(channel, int(i), float(v)) for i, v in zip(idx, weights)]
                continue
            weights = value.float().numpy()
            heat = cv2.resize(heat_colors(weights, clip), (vw, vh), interpolation=cv2.INTER_NEAREST)
            pictures[key] = np.concatenate([mark(overlay(opened.view, heat, opacity), y, x),
                                            colour_scale(vw, float(weights.max()), clip)])
        return pictures, channels, where


__all__ = ["SCALE_HEIGHT", "Explorer", "OpenImage", "TITLES", "colour_scale", "heat_colors"]
