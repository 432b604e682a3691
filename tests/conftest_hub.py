"""Fixtures and helpers for tests against the local Hub server (tests/hub_server.py).

huggingface_hub and datasets read ``HF_ENDPOINT`` into module constants at import time, so the client
side of a round trip (``load_dataset``, the ``diverseg`` CLI) runs in a subprocess whose environment
points at the server; ``diverseg_hf.hub.push`` itself reads ``HF_ENDPOINT`` at call time and runs in-process.
Test modules import the helpers and register the fixtures with ``pytest_plugins = ["conftest_hub"]``
(PYTEST_DONT_REWRITE: it is imported before pytest could rewrite its asserts).

Example:
    >>> env = client_env("http://127.0.0.1:1", "/tmp/x", WRITE_TOKEN)
    >>> env["HF_HUB_DISABLE_XET"]
    '1'
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import HubServer

WRITE_TOKEN = "hf_test_write_token_5f2a9c"
READ_TOKEN = "hf_test_read_token_81d0be"

#: Imported first by every client subprocess: offline-safe datasets settings.
CLIENT_PRELUDE = """
import hashlib, json, sys
import datasets
datasets.config.USE_PARQUET_EXPORT = False
datasets.disable_progress_bars()
def digest(b):
    return hashlib.sha256(b).hexdigest()
"""


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A fresh local Hub with a write token and a read-only token."""
    server = HubServer({WRITE_TOKEN: "write", READ_TOKEN: "read"}).start()
    yield server
    server.stop()


@pytest.fixture
def hub_env(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """Point this process's ``diverseg_hf.hub.push`` at the local server with the write token (classic LFS)."""
    import huggingface_hub.constants

    for key, value in client_env(hub.url, tmp_path / "hf_home", WRITE_TOKEN).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    return hub


def client_env(url: str, hf_home: str | os.PathLike, token: str | None) -> dict[str, str]:
    """Environment for a client of the local Hub: endpoint, token, classic LFS, private cache, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update({
        "HF_ENDPOINT": url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(hf_home), "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1",
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
    })
    if token:
        env["HF_TOKEN"] = token
    return env


def run_client(code: str, env: dict[str, str], timeout: float = 180) -> object:
    """Run ``CLIENT_PRELUDE + code`` in a subprocess; ``code`` prints one JSON value on its last line."""
    proc = subprocess.run([sys.executable, "-c", CLIENT_PRELUDE + code], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"client failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_bytes(seed: int, count: int) -> dict[str, bytes]:
    """``count`` small distinct PNG/JPEG images keyed ``img<seed>-<i>`` (textured, from tests/image_zoo)."""
    from image_zoo import textured
    from PIL import Image

    out = {}
    for i in range(count):
        im = Image.fromarray(textured(24 + i, 31 + 2 * i, seed * 100 + i))
        buf = io.BytesIO()
        im.save(buf, "PNG" if i % 2 else "JPEG", **({} if i % 2 else {"quality": 93}))
        out[f"img{seed}-{i}"] = buf.getvalue()
    return out


def write_parquet_config(root: Path, config: str | None, images: dict[str, bytes]) -> Path:
    """``data/<config>/train-00000-of-00001.parquet`` (``data/`` if no config) with a ``key`` column and an
    Image feature, written by datasets."""
    import datasets

    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image()})
    ds = datasets.Dataset.from_dict(
        {"key": list(images), "image": [{"bytes": b, "path": None} for b in images.values()]}, features=features)
    path = root / "data" / (config or "") / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


def write_tar_config(root: Path, config: str, images: dict[str, bytes]) -> Path:
    """``wds/<config>/train-00000.tar`` with ``<key>.png``/``<key>.jpg`` members."""
    path = root / "wds" / config / "train-00000.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, data in images.items():
            suffix = "png" if data.startswith(b"\x89PNG") else "jpg"
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return path


def write_card(root: Path, configs: dict[str, str]) -> Path:
    """A README.md whose YAML declares one config per ``{name: data_files glob}``."""
    lines = ["---", "license: mit", "configs:"]
    for name, glob in configs.items():
        lines += [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: {glob}"]
    lines += ["---", "", "# Test dataset", ""]
    path = root / "README.md"
    path.write_text("\n".join(lines))
    return path
