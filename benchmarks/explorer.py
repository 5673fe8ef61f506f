#!/usr/bin/env python
"""How fast the attention explorer answers: opening an image, and a click, on the demo models.

    python benchmarks/explorer.py                 # every demo head; the browser rows need Chromium
    python benchmarks/explorer.py --screenshot docs/explorer_ccnet.png   # and the docs' picture of the page

For each head, ``configs/demo/<head>.yaml`` with ``checkpoints/demo_<head>/best.pth``
where it exists (random weights otherwise; the work per click is the same),
on the demo val images (generated on first use):

* open: :meth:`Explorer.open` per image (the prediction as the config
  evaluates it, and the head's maps), median over the images;
* click: :meth:`Explorer.click` at random pixels plus the PNG encoding of its
  pictures (what the server does per click), median and slowest;
* in the browser: ``tools/explore.py`` served as a user starts it, headless
  Chromium clicking random pixels of the prediction; the time, measured in the
  page, from the click event to the new map picture loaded (request, work,
  transfer, decoding), median and slowest. Skipped without Chromium, its
  driver, Gradio or selenium.
"""
import argparse
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import torch

from _common import ROOT, demo_heads, write_results
from segattn.analysis.explorer import Explorer
from segattn.configure import load_tool_config
from segattn.data import build_dataset, dataset_class_names, dataset_palette
from segattn.data.io import read_image
from segattn.engine.predictor import load_model
from segattn.models import HEADS, build_model
from segattn.models.maps import MAP_KINDS, TABLE_VIEWS


def first_map(head: str):
    """The first map picture the explorer shows for ``head`` (the one the browser rows wait for); None: no maps."""
    views = [view for kind in HEADS[head].map_kinds for view in MAP_KINDS[kind].views if view not in TABLE_VIEWS]
    return views[0] if views else None


def demo_model(head: str, tmp: str):
    """The config, and a checkpoint: the trained one where present, else random weights saved to ``tmp``."""
    config = os.path.join(ROOT, "configs", "demo", f"{head}.yaml")
    cfg = load_tool_config(config, [f"data.root={os.path.join(ROOT, 'data', 'demo')}"])
    trained = os.path.join(ROOT, "checkpoints", f"demo_{head}", "best.pth")
    if os.path.isfile(trained):
        return cfg, config, trained, "trained"
    torch.manual_seed(0)
    path = os.path.join(tmp, f"{head}.pth")
    torch.save({"model": build_model(cfg).state_dict()}, path)
    return cfg, config, path, "random"


def core_times(cfg, checkpoint, images, clicks, rng):
    model, _ = load_model(cfg, checkpoint, torch.device("cpu"))
    explorer = Explorer(model, cfg, torch.device("cpu"), dataset_class_names(cfg.data), dataset_palette(cfg.data))
    opened, opens = None, []
    for path in images:
        image = read_image(path)
        start = time.perf_counter()
        opened = explorer.open(image)
        opens.append(time.perf_counter() - start)
    h, w = opened.view.shape[:2]
    explorer.click(opened, 0, 0)  # warm-up
    times = []
    for _ in range(clicks):
        start = time.perf_counter()
        pictures, _, _ = explorer.click(opened, int(rng.integers(h)), int(rng.integers(w)))
        for picture in pictures.values():
            cv2.imencode(".png", picture)
        times.append(time.perf_counter() - start)
    return opens, times


# In the page: the time of the click (capture phase) and of the first new map picture loaded after it.
STOPWATCH = """
const box = document.querySelector(arguments[0]);
window.__segattn = {};
let seen = null;
document.querySelector('#prediction').addEventListener('click',
                                                       () => { window.__segattn = {click: performance.now()}; }, true);
new MutationObserver(() => {
  const img = box.querySelector('img'), t = window.__segattn;
  if (!img || !t.click || t.shown || img.src === seen) return;
  const src = img.src, done = () => { if (!t.shown) { t.shown = performance.now(); seen = src; } };
  if (img.complete && img.naturalWidth) done(); else img.addEventListener('load', done, {once: true});
}).observe(box, {subtree: true, childList: true, attributes: true});
"""


def browser_times(config, checkpoint, key, clicks, rng, screenshot=None):
    """Click -> new map shown, in headless Chromium, or None where the browser stack is missing.

    ``screenshot``: ``(path, (y, x), clip)``: after the timed clicks, set the clip slider, click (y, x) and save
    the page there.
    """
    chromium, driver_path = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if importlib.util.find_spec("gradio") is None:
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return None
    if not (chromium and driver_path):
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "explore.py"), config, "--checkpoint",
                               checkpoint, "--port", str(port), f"data.root={os.path.join(ROOT, 'data', 'demo')}"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500"):
        options.add_argument(arg)
    options.binary_location = chromium
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.05)
        image = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#prediction img"))
        driver.execute_script(STOPWATCH, f"#map-{key}")
        rect, times = image.rect, []
        for i in range(clicks + 1):
            y, x = int(rng.integers(rect["height"])), int(rng.integers(rect["width"]))
            ActionChains(driver, duration=0).move_to_element_with_offset(
                image, x + 0.5 - rect["width"] / 2, y + 0.5 - rect["height"] / 2).click().perform()
            took = wait.until(lambda d: d.execute_script("const t = window.__segattn; "
                                                         "return t.shown ? t.shown - t.click : false"))
            if i:  # the first click is a warm-up
                times.append(took / 1000)
        if screenshot:
            path, (y, x), clip = screenshot
            box = driver.find_element(By.CSS_SELECTOR, "#clip input[type=number]")
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(str(clip), Keys.TAB)
            wait.until(lambda d: float(d.find_element(By.CSS_SELECTOR, "#clip input[type=range]").get_property("value"))
                       == clip)
            before = driver.find_element(By.ID, "query").text
            ActionChains(driver).move_to_element_with_offset(image, x + 0.5 - rect["width"] / 2,
                                                             y + 0.5 - rect["height"] / 2).click().perform()
            wait.until(lambda d: d.find_element(By.ID, "query").text != before)
            time.sleep(1)  # the pictures' fade-in
            driver.set_window_size(1400, driver.execute_script("return document.body.scrollHeight") + 40)
            driver.save_screenshot(path)
        return times
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--heads", default=",".join(demo_heads()))
    p.add_argument("--clicks", type=int, default=20, help="clicks timed per head (each row)")
    p.add_argument("--images", type=int, default=5, help="demo val images opened per head")
    p.add_argument("--no-browser", action="store_true", help="only the in-process rows")
    p.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    p.add_argument("--screenshot", help="save the page of --screenshot-head here, after a click at --screenshot-query")
    p.add_argument("--screenshot-head", help="the head whose page is saved (default: the first of --heads with maps)")
    p.add_argument("--screenshot-query", default="150,260", help="y,x of the screenshot's click")
    p.add_argument("--screenshot-clip", type=float, default=0.3, help="the clip slider for the screenshot")
    args = p.parse_args(argv)
    shot = ((args.screenshot, tuple(int(v) for v in args.screenshot_query.split(",")), args.screenshot_clip)
            if args.screenshot else None)
    heads = args.heads.split(",")
    shot_head = args.screenshot_head or next((h for h in heads if first_map(h)), None)
    rows = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for head in heads:
            cfg, config, checkpoint, weights = demo_model(head, tmp)
            images = [pair[0] for pair in build_dataset(cfg.data, "val", need_labels=False).pairs][:args.images]
            rng = np.random.default_rng(0)
            print(f"[cpu] {head}: open and click ...", file=sys.stderr, flush=True)
            opens, clicks = core_times(cfg, checkpoint, images, args.clicks, rng)
            row = {"head": head, "weights": weights, "images": len(opens), "open_median_s": float(np.median(opens)),
                   "click_median_ms": 1000 * float(np.median(clicks)), "click_max_ms": 1000 * max(clicks)}
            if first_map(head) and not args.no_browser:
                print(f"[cpu] {head}: in Chromium ...", file=sys.stderr, flush=True)
                shown = browser_times(config, checkpoint, first_map(head), args.clicks, rng,
                                      shot if head == shot_head else None)
                if shown:
                    row.update(browser_median_ms=1000 * float(np.median(shown)), browser_max_ms=1000 * max(shown))
            rows.append(row)
    lines = ["| head (demo config) | weights | open an image (median) | click: server work, median / slowest "
             "| click to map shown in Chromium, median / slowest |", "|---|---|---|---|---|"]
    for r in rows:
        browser = (f"{r['browser_median_ms']:.0f} ms / {r['browser_max_ms']:.0f} ms" if "browser_median_ms" in r
                   else ("no maps" if not first_map(r["head"]) else "not measured"))
        lines.append(f"| {r['head']} | {r['weights']} | {r['open_median_s']:.2f} s | {r['click_median_ms']:.1f} ms / "
                     f"{r['click_max_ms']:.1f} ms | {browser} |")
    table = "\n".join(lines)
    print(table)
    write_results("explorer", "cpu", rows, table, extra={"clicks": args.clicks}, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
