"""Downloads of released checkpoints: named ``...-<sha256 prefix>.pth`` as mmsegmentation names them, checked
against that prefix when downloaded and when found in the cache."""
import hashlib

import pytest

from helpers import local_site
from segattn.errors import CheckpointError
from segattn.interop.foreign import fetch, hash_prefix


@pytest.fixture()
def site(tmp_path):
    """A local web server over tmp_path/site, and torch.hub's cache in tmp_path/hub."""
    (tmp_path / "site").mkdir()
    with local_site(tmp_path / "site", tmp_path / "hub") as url:
        yield tmp_path / "site", url, tmp_path / "hub" / "checkpoints"


def test_hash_prefix_of_release_names():
    assert hash_prefix("ccnet_r50-d8_769x769_80k_cityscapes_20200617_010421-73eed8ca.pth") == "73eed8ca"
    assert hash_prefix("fcn.pth") is None and hash_prefix("resnet50-d8.pth") is None


def test_a_matching_download_is_kept_and_a_changed_cache_is_refused(site):
    folder, url, cache = site
    data = b"weights" * 1000
    name = f"m_20200101_000000-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (folder / name).write_bytes(data)
    path = fetch(f"{url}/{name}", progress=False)
    assert open(path, "rb").read() == data
    assert fetch(f"{url}/{name}", progress=False) == path  # the cached file, checked again
    with open(path, "ab") as f:
        f.write(b"!")
    with pytest.raises(CheckpointError, match="does not match the sha256 prefix .* it was removed"):
        fetch(f"{url}/{name}", progress=False)
    assert not (cache / name).exists()
    assert open(fetch(f"{url}/{name}", progress=False), "rb").read() == data  # the next try downloads it again


def test_a_download_that_does_not_match_its_name_leaves_nothing(site):
    folder, url, cache = site
    name = "m_20200101_000000-0123abcd.pth"
    (folder / name).write_bytes(b"not what the name promises")
    with pytest.raises(CheckpointError, match="sha256 does not start with 0123abcd .* nothing was written"):
        fetch(f"{url}/{name}", progress=False)
    assert not cache.exists() or not list(cache.iterdir())
