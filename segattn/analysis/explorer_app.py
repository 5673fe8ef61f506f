"""The attention explorer's web page (Gradio): pick or upload an image, click a pixel, see where each head looks.

:class:`ExplorerPage` holds the handlers (plain methods, tested without a
browser); :func:`build_app` lays them out on a ``gr.Blocks`` page. The model
work is :class:`segattn.analysis.explorer.Explorer`'s: maps once per image,
each click answered from them.

Gradio is an optional dependency (``pip install -e ".[demo]"``); importing this
module without it is a :class:`segattn.errors.MissingPackageError` saying so.
"""
import html
import os
import sys
import time

from ..data.io import UnreadableImage, read_image
from ..errors import MissingPackageError, SegattnError, first_line
from ..models.maps import MAP_KINDS
from ..registry import parse_spec
from .attention_maps import query_maps
from .explorer import TITLES, Explorer, OpenImage

try:
    import gradio as gr
except ImportError:  # pragma: no cover - the [demo] extra is missing
    raise MissingPackageError("the attention explorer needs Gradio: pip install -e \".[demo]\"") from None

MAP_KEYS = tuple(TITLES)
HOW = ("Click a pixel of the prediction to see where the head looks from there. **clip**: weights above this "
       "share of a map's maximum are drawn at full colour (lower it to see the weak ones).")


def describe_model(cfg, checkpoint: str, config: str = None, images: int = 0) -> str:
    """The page's header: the head, its encoder, where the weights and the config came from (relative to the
    working folder where they lie in it), the images offered."""
    def shown(path):
        relative = os.path.relpath(path)
        return path if relative.startswith("..") else relative

    checkpoint, config = shown(checkpoint), config and shown(config)
    model = f"{parse_spec(cfg.model.head, 'model.head')[0]} head on {cfg.model.encoder.name}"
    source = (f"config `{config}`, checkpoint `{checkpoint}`" if config
              else f"checkpoint `{checkpoint}` (with the config saved in it)")
    return f"{model}: {source}; {images} images to choose from."


def percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def legend_html(entries) -> str:
    """Class names in their palette colours, each with its share of the image."""
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:0 12px 4px 0">'
        f'<span style="width:14px;height:14px;margin-right:5px;border:1px solid #555;'
        f'background:rgb({r},{g},{b})"></span>{html.escape(name)} ({percent(share)})</span>'
        for name, (r, g, b), share in entries)
    return f'<div class="segattn-legend">{items}</div>'


def channels_markdown(rows) -> str:
    if not rows:
        return ""
    if rows[0][0] is None:  # a gate per channel for the whole image (EncNet)
        lines = ["**Channel gates** (the same for every query): the channels the image's encoding opens most", "",
                 "| channel | gate |", "|---:|---:|"]
    else:
        lines = [f"**DANet channel attention**: channel {rows[0][0]} (the most active at the query) takes most "
                 "from", "", "| channel | weight |", "|---:|---:|"]
    lines += [f"| {i} | {w:.4f} |" for _, i, w in rows]
    return "\n".join(lines)


class ExplorerPage:
    """The page's handlers. Each returns the values of its outputs, in the order :func:`build_app` wires them."""

    def __init__(self, explorer: Explorer, images=(), describe: str = ""):
        self.explorer, self.images, self.describe = explorer, list(images), describe

    def open_file(self, path):
        """Open an image file: (prediction, legend, status, opened, query, *maps, channels, query text).

        A file that cannot be read, or a model error on it, leaves the page as
        it was and says why in the status line.
        """
        if not path:
            return self.unchanged("Choose or upload an image.")
        name = os.path.basename(path)
        try:
            image = read_image(path)
            start = time.perf_counter()
            opened = self.explorer.open(image)
        except (UnreadableImage, SegattnError) as err:
            return self.unchanged(f"⚠️ {err}")
        except Exception as err:  # noqa: BLE001 - one image must not take the page down
            first = first_line(err)
            return self.unchanged(f"⚠️ {name}: {type(err).__name__}: {first}")
        took = time.perf_counter() - start
        h, w = image.shape[:2]
        if opened.maps:
            gh, gw = opened.maps["grid"]
            status = (f"**{html.escape(name)}** ({w} x {h}): prediction and maps ({gw} x {gh} feature grid) in "
                      f"{took:.2f} s. {HOW}")
        else:
            status = (f"**{html.escape(name)}** ({w} x {h}): prediction in {took:.2f} s. No attention maps: "
                      f"{opened.no_maps}")
        shown = self.shown(opened)
        maps = [gr.update(value=None, visible=key in shown, label=TITLES[key]) for key in MAP_KEYS]
        return [self.explorer.prediction(opened), legend_html(self.explorer.legend(opened)), status, opened, None,
                *maps, gr.update(value="", visible=any(MAP_KINDS[k].table for k in opened.maps if k in MAP_KINDS)),
                ""]

    @staticmethod
    def unchanged(status: str):
        """open_file's outputs that change only the status line."""
        return [gr.update(), gr.update(), status] + [gr.update()] * (4 + len(MAP_KEYS))

    def shown(self, opened: OpenImage):
        """The map pictures this head has: those one query gives (:func:`query_maps` names them)."""
        return set(query_maps(opened.maps, 0, 0)) & set(MAP_KEYS) if opened.maps else set()

    def click(self, opened, opacity, clip, evt: "gr.SelectData"):
        """A click on the prediction: evt.index is (x, y) in the shown image's pixels."""
        x, y = evt.index[:2]
        return self.draw(opened, (int(y), int(x)), opacity, clip)

    def draw(self, opened, query, opacity, clip):
        """(query, *maps, channels, query text) for ``query`` (y, x) of the shown image."""
        if opened is None or query is None:
            return [query] + [gr.update()] * (len(MAP_KEYS) + 2)
        start = time.perf_counter()
        pictures, channels, where = self.explorer.click(opened, query[0], query[1], opacity, clip)
        took = (time.perf_counter() - start) * 1000
        maps = [gr.update(value=pictures[k]) if k in pictures else gr.update() for k in MAP_KEYS]
        text = f"Query: {where}. Answered in {took:.0f} ms." if opened.maps else f"Query: {where}."
        return [query, *maps, channels_markdown(channels), text]


class _OneLine:
    """Stands in for the ``traceback`` module in Gradio's queue, which prints a whole traceback for every call
    that fails before reaching a handler (any client can send bogus ones): one line each instead."""

    @staticmethod
    def print_exc(*args, **kwargs):
        kind, err, _ = sys.exc_info()
        first = first_line(err)
        print(f"explorer: a call was refused ({kind.__name__ if kind else 'error'}: {first})", file=sys.stderr,
              flush=True)


def one_line_per_failed_call():
    """Gradio's queue reports a failed call in one line (the handlers here catch their own failures)."""
    import gradio.queueing

    gradio.queueing.traceback = _OneLine


def build_app(page: ExplorerPage):
    """The ``gr.Blocks`` page; ``launch()`` it (or mount it) to serve."""
    first = page.images[0] if page.images else None
    with gr.Blocks(title="segattn attention explorer", analytics_enabled=False) as app:
        gr.Markdown(f"## segattn attention explorer\n{page.describe}")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                choice = gr.Dropdown([(os.path.basename(p), p) for p in page.images], value=first,
                                     label="image", elem_id="image-choice", allow_custom_value=False)
                upload = gr.File(label="or upload an image", type="filepath", elem_id="upload")
                opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="opacity of the maps", elem_id="opacity")
                clip = gr.Slider(0.05, 1, value=1.0, step=0.05, label="clip", elem_id="clip")
                status = gr.Markdown("Choose or upload an image.", elem_id="status")
            with gr.Column(scale=3):
                prediction = gr.Image(label="prediction (click a pixel)", type="numpy", interactive=False,
                                      elem_id="prediction", format="png")
                legend = gr.HTML(elem_id="legend")
        query_text = gr.Markdown(elem_id="query")
        with gr.Row():
            maps = [gr.Image(label=TITLES[k], type="numpy", interactive=False, visible=False, elem_id=f"map-{k}",
                             format="png") for k in MAP_KEYS]
        channels = gr.Markdown(elem_id="channels", visible=False)
        opened, query = gr.State(None), gr.State(None)

        opened_outputs = [prediction, legend, status, opened, query, *maps, channels, query_text]
        drawn_outputs = [query, *maps, channels, query_text]
        choice.change(page.open_file, choice, opened_outputs)
        upload.upload(page.open_file, upload, opened_outputs).then(lambda: None, None, upload)  # ready for the next
        app.load(page.open_file, choice, opened_outputs)
        prediction.select(page.click, [opened, opacity, clip], drawn_outputs, queue=False, show_progress="hidden",
                          trigger_mode="always_last")
        for slider in (opacity, clip):
            slider.release(lambda o, q, a, c: page.draw(o, q, a, c), [opened, query, opacity, clip], drawn_outputs)
    return app


__all__ = ["ExplorerPage", "build_app", "legend_html"]
