"""Benchmark: `push_folder` to the local test Hub (tests/hub_server.py): first push, no-op re-push, one change.

Run: python benchmarks/hub_push.py [--files 40] [--mb 5]
Measures the client-side cost of a push (hashing, preupload, LFS PUT, commits) over loopback, and what the
idempotency check costs when nothing changed (every file hashed and compared with the remote tree).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import huggingface_hub.constants
from hub_server import HubServer

from diverseg_hf.hub.push import push_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=40, help="shards in the folder")
    parser.add_argument("--mb", type=float, default=5, help="MB per shard")
    args = parser.parse_args()
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # the local server speaks classic LFS only
    hub = HubServer({"hf_bench": "write"}).start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.files):
            path = root / "data" / "I" / f"train-{i:05d}-of-{args.files:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(int(args.mb * 1e6)))
        (root / "README.md").write_text("---\nlicense: mit\n---\n# bench\n")
        total_mb = args.files * args.mb
        for label in ("first push", "re-push, nothing changed", "re-push, one shard changed"):
            if label.startswith("re-push, one"):
                (root / "data" / "I" / f"train-00000-of-{args.files:05d}.parquet").write_bytes(
                    os.urandom(int(args.mb * 1e6)))
            start = time.perf_counter()
            result = push_folder(root, "bench/push", token="hf_bench", endpoint=hub.url, max_files_per_commit=10)
            took = time.perf_counter() - start
            print(f"{label:28s} {took:6.2f} s  {total_mb / took:7.1f} MB/s of folder  "
                  f"{len(result.commits)} commits, {len(result.uploaded)} uploaded, {len(result.skipped)} skipped")
    hub.stop()


if __name__ == "__main__":
    main()
