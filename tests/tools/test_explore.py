"""tools/explore.py served as a user starts it, driven in headless Chromium as a person uses the page.

Needs the demo extra (Gradio), selenium (test extra) and Debian's ``chromium`` with ``chromium-driver``,
which .ci/run installs; skipped where one is missing.
"""
import glob
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import tiny_config
from segattn.analysis.explorer import SCALE_HEIGHT

pytest.importorskip("gradio", reason="the explorer comes with the demo extra: pip install -e '.[demo]'")
pytest.importorskip("selenium", reason="the browser test drives Chromium through selenium (test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_root, tmp_path_factory):
    """``python tools/explore.py CONFIG --checkpoint CKPT --images DIR --port P`` on a CCNet checkpoint."""
    from segattn import build_model

    tmp = tmp_path_factory.mktemp("explore")
    cfg = tiny_config(demo_root, tmp, head="ccnet")
    OmegaConf.save(cfg, tmp / "ccnet.yaml")
    torch.manual_seed(0)
    torch.save({"model": build_model(OmegaConf.to_container(cfg.model, resolve=True)).state_dict()}, tmp / "ccnet.pth")
    images = tmp / "images"
    images.mkdir()
    for path in sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[:2]:
        shutil.copy(path, images)
    port = free_port()
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "explore.py"), str(tmp / "ccnet.yaml"),
                             "--checkpoint", str(tmp / "ccnet.pth"), "--images", str(images), "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise AssertionError(f"explore.py did not serve:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, tmp
    proc.terminate()
    proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def shown_image(wait, selector, old_src=None):
    """The picture an <img> shows (fetched from its src, as the browser did), once its src is not ``old_src``."""
    def ready(driver):
        found = [e.get_attribute("src") for e in driver.find_elements(By.CSS_SELECTOR, selector)]
        return next((s for s in found if s and s != old_src), False)

    src = wait.until(ready)
    with urllib.request.urlopen(src, timeout=30) as response:
        return src, np.array(Image.open(io.BytesIO(response.read())).convert("RGB"))


def click_pixel(driver, element, y, x):
    """A mouse click on pixel (y, x) of an <img> shown at its natural size."""
    natural = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", element)
    rect = element.rect
    assert (round(rect["width"]), round(rect["height"])) == tuple(natural)
    ActionChains(driver).move_to_element_with_offset(element, x + 0.5 - rect["width"] / 2,
                                                     y + 0.5 - rect["height"] / 2).click().perform()


def open_page(browser, url):
    """Load the page and wait for the prediction the first image gets: ``(wait, its <img>, (src, picture))``."""
    wait = WebDriverWait(browser, 90)
    browser.get(url)
    prediction = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#prediction img"))
    return wait, prediction, shown_image(wait, "#prediction img")


def test_click_two_pixels_and_see_where_ccnet_looks(server, browser, demo_root):
    url, tmp = server
    wait, prediction, (_, predicted) = open_page(browser, url)
    first = sorted(os.listdir(tmp / "images"))[0]
    original = np.array(Image.open(tmp / "images" / first).convert("RGB"))
    assert predicted.shape == original.shape and not np.array_equal(predicted, original)  # the overlay is drawn
    assert first in browser.find_element(By.ID, "status").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#legend span[style*='background']")) >= 1
    box = browser.find_element(By.CSS_SELECTOR, "#opacity input[type=number]")  # opacity 1: the heat map alone
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("1", Keys.TAB)
    slider = (By.CSS_SELECTOR, "#opacity input[type=range]")
    wait.until(lambda d: float(d.find_element(*slider).get_property("value")) == 1)

    seen = []
    for y, x in ((60, 100), (200, 400)):
        click_pixel(browser, prediction, y, x)
        src, loop1 = shown_image(wait, "#map-cca_loop1 img", seen[-1][0] if seen else None)
        text = wait.until(lambda d: re.search(r"pixel \(y=(\d+), x=(\d+)\).*feature cell \(y=(\d+), x=(\d+)\) of (\d+) "
                                              r"x (\d+)", d.find_element(By.ID, "query").text))
        py, px, qy, qx, gh, gw = map(int, text.groups())
        scale = loop1[-SCALE_HEIGHT:]  # the map's colour scale below it: white, the inferno ramp
        assert (scale[:3] == 255).all() and scale[10, 8:-8].astype(int).sum(-1).std() > 50
        loop1 = loop1[:-SCALE_HEIGHT]
        assert abs(py - y) <= 1 and abs(px - x) <= 1, text.group(0)
        h, w = loop1.shape[:2]
        on = (np.arange(h)[:, None] * gh // h == qy) | (np.arange(w)[None, :] * gw // w == qx)
        lum = loop1.astype(float).mean(-1)
        ring = np.hypot(*np.mgrid[:h, :w] - np.array([py, px])[:, None, None]) <= 12
        brightest = lum >= np.quantile(lum[~ring], 0.95)
        assert on[brightest & ~ring].all(), "the one-loop map's brightest pixels leave the query's row and column"
        assert lum[~on & ~ring].max() <= 2
        seen.append((src, loop1))
    assert np.abs(seen[0][1].astype(int) - seen[1][1]).mean() > 5  # the second click shows another map
    _, composed = shown_image(wait, "#map-cca_effective img")
    assert composed.shape == (seen[1][1].shape[0] + SCALE_HEIGHT, *seen[1][1].shape[1:])
    browser.save_screenshot(str(tmp / "explorer.png"))


def test_a_text_file_gets_a_message_and_the_page_keeps_working(server, browser, tmp_path):
    url, tmp = server
    wait, prediction, (before, _) = open_page(browser, url)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(bad))
    wait.until(lambda d: "not a readable image" in d.find_element(By.ID, "status").text)
    assert browser.find_element(By.CSS_SELECTOR, "#prediction img").get_attribute("src") == before
    click_pixel(browser, prediction, 30, 30)  # the page still answers clicks on the image it had
    wait.until(lambda d: "feature cell" in d.find_element(By.ID, "query").text)
    tiny = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny)
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tiny))
    wait.until(lambda d: "one.png" in d.find_element(By.ID, "status").text)
    _, one = shown_image(wait, "#prediction img", before)
    assert one.shape == (1, 1, 3)
