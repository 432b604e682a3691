"""Opt-in smoke test of ``push_folder`` against the real Hugging Face Hub.

Runs only with ``DIVERSEG_HUB_SMOKE=1``, a write token in ``HF_TOKEN`` and the Hub reachable; it creates a
private dataset repo under the token's user, pushes twice, loads it back with ``datasets`` and deletes it.

    DIVERSEG_HUB_SMOKE=1 HF_TOKEN=hf_... pytest tests/test_hub_network.py -m network
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_hub import image_bytes, sha, write_card, write_parquet_config

from diverseg_hf.hub.push import push_folder

pytestmark = pytest.mark.network


def _hub_reachable() -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(f"{endpoint}/api/whoami-v2", timeout=5)
    except urllib.error.HTTPError:
        return True  # it answered (401 without a token)
    except OSError:
        return False
    return True


@pytest.fixture
def real_hub() -> Iterator[str]:
    if os.environ.get("DIVERSEG_HUB_SMOKE") != "1" or not os.environ.get("HF_TOKEN"):
        pytest.skip("real-Hub smoke test: set DIVERSEG_HUB_SMOKE=1 and HF_TOKEN (a write token) to run it")
    if not _hub_reachable():
        pytest.skip("the Hugging Face Hub is not reachable from here")
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = f"{api.whoami()['name']}/diverseg-hf-smoke-{uuid.uuid4().hex[:8]}"
    yield repo_id
    api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)


def test_push_and_load_on_the_real_hub(real_hub: str, tmp_path: Path) -> None:
    images = image_bytes(7, 3)
    write_parquet_config(tmp_path / "ds", "S", images)
    write_card(tmp_path / "ds", {"S": "data/S/*.parquet"})
    first = push_folder(tmp_path / "ds", real_hub, private=True)
    assert first.uploaded[-1] == "README.md"
    again = push_folder(tmp_path / "ds", real_hub, private=True)
    assert again.commits == [] and again.uploaded == []
    code = f"""
import datasets, hashlib, json
ds = datasets.load_dataset({real_hub!r}, "S", split="train", streaming=True)
ds = ds.cast_column("image", datasets.Image(decode=False))
print(json.dumps([[r["key"], hashlib.sha256(r["image"]["bytes"]).hexdigest()] for r in ds]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[k, sha(v)] for k, v in images.items()]
