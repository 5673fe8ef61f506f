"""tools/explore.py as a server facing any client on its port: uploads bounded and removed when it stops, and one
log line per bogus call (no browser needed)."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import torch
from omegaconf import OmegaConf

from helpers import ROOT, tiny_config

pytest.importorskip("gradio", reason="the explorer comes with the demo extra: pip install -e '.[demo]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body: bytes, content_type: str):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def multipart(name: str, payload: bytes):
    boundary = "segattn-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_uploads_are_bounded_removed_at_exit_and_bad_calls_are_one_line(demo_root, tmp_path):
    from segattn import build_model

    cfg = tiny_config(demo_root, tmp_path, head="ccnet")
    OmegaConf.save(cfg, tmp_path / "ccnet.yaml")
    torch.save({"model": build_model(OmegaConf.to_container(cfg.model, resolve=True)).state_dict()},
               tmp_path / "ccnet.pth")
    port, log_path = free_port(), tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "explore.py"), str(tmp_path / "ccnet.yaml"),
                                 "--checkpoint", str(tmp_path / "ccnet.pth"), "--port", str(port),
                                 "--max-upload-mb", "0.05"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.5)
        uploads = re.search(r"kept in (\S+) until it stops", log_path.read_text()).group(1)
        assert os.path.isdir(uploads)

        status, _ = post(url + "/gradio_api/upload", *multipart("big.png", b"\0" * 200_000))  # 0.2 MB > 0.05 MB
        assert status == 413
        status, answer = post(url + "/gradio_api/upload", *multipart("small.png", b"\0" * 1000))
        assert status == 200
        (kept,) = json.loads(answer)
        assert kept.startswith(uploads) and os.path.getsize(kept) == 1000
        assert not [p for p in glob.glob(os.path.join(uploads, "**", "big.png"), recursive=True)]

        for i in range(5):  # bogus calls: a value the image dropdown does not offer
            status, answer = post(url + "/gradio_api/queue/join", json.dumps(
                {"data": [f"/etc/passwd{i}"], "fn_index": 0, "session_hash": f"s{i}"}).encode(), "application/json")
            assert status == 200
            with urllib.request.urlopen(f"{url}/gradio_api/queue/data?session_hash=s{i}", timeout=30) as stream:
                assert b"process_completed" in stream.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert len(re.findall(r"^explorer: a call was refused \(Error: .*/etc/passwd\d", text, re.M)) == 5, text[-3000:]
    assert not os.path.exists(uploads)  # what was uploaded is gone with the server
    shutil.rmtree(uploads, ignore_errors=True)
