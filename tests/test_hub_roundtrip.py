"""Round trips through the local Hub: push a dataset folder, then ``datasets.load_dataset`` (and streaming)
from the server must give back the pushed image bytes exactly; so must loading the folder locally."""

from __future__ import annotations

from pathlib import Path

from conftest_hub import (
    READ_TOKEN,
    WRITE_TOKEN,
    client_env,
    image_bytes,
    run_client,
    sha,
    write_card,
    write_parquet_config,
    write_tar_config,
)
from huggingface_hub import HfApi

from diverseg_hf.hub.push import push_folder

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/roundtrip"

#: Client code: rows of ``split`` of config ``cfg`` as [key, sha256 of image bytes], for each way of loading.
LOAD_ROWS = """
def rows(path, cfg, streaming, key_col, image_col, revision=None):
    ds = datasets.load_dataset(path, cfg, split="train", streaming=streaming, revision=revision)
    ds = ds.cast_column(image_col, datasets.Image(decode=False))
    return [[r[key_col], digest(r[image_col]["bytes"])] for r in ds]
"""


def expected_rows(images: dict[str, bytes]) -> list[list[str]]:
    return [[key, sha(data)] for key, data in images.items()]


def test_parquet_configs_roundtrip_private_repo(hub_env, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    images = {"A": image_bytes(1, 4), "B": image_bytes(2, 3)}
    for name, imgs in images.items():
        write_parquet_config(root, name, imgs)
    write_card(root, {"A": "data/A/*.parquet", "B": "data/B/*.parquet"})
    push_folder(root, REPO, private=True)

    code = LOAD_ROWS + f"""
out = {{}}
for cfg in ("A", "B"):
    out[cfg + " hub"] = rows({REPO!r}, cfg, False, "key", "image")
    out[cfg + " hub streaming"] = rows({REPO!r}, cfg, True, "key", "image")
    out[cfg + " local folder"] = rows({str(root)!r}, cfg, False, "key", "image")
print(json.dumps(out))
"""
    # A read-only token is enough to load the private repo.
    got = run_client(code, client_env(hub_env.url, tmp_path / "client_home", READ_TOKEN))
    for cfg, imgs in images.items():
        for how in ("hub", "hub streaming", "local folder"):
            assert got[f"{cfg} {how}"] == expected_rows(imgs), f"{cfg} {how}"
    # Loading went through the resolve route with Range reads when streaming.
    assert hub_env.requests("GET", "/resolve/") and hub_env.requests("HEAD", "/resolve/")


def test_webdataset_config_roundtrip_on_a_branch(hub_env, tmp_path: Path) -> None:
    """A tar config pushed to branch ``release/v1`` (percent-encoded in every URL), loaded from that branch."""
    root = tmp_path / "ds"
    images = {k: v for k, v in image_bytes(3, 6).items() if v.startswith(b"\x89PNG")}
    write_tar_config(root, "W", images)
    write_card(root, {"W": "wds/W/*.tar"})
    push_folder(root, REPO, message="main card")
    HfApi(endpoint=hub_env.url, token=WRITE_TOKEN).create_branch(REPO, branch="release/v1", repo_type="dataset")
    write_tar_config(root, "W", {**images, "extra": image_bytes(5, 2)["img5-1"]})
    images = {**images, "extra": image_bytes(5, 2)["img5-1"]}
    push_folder(root, REPO, revision="release/v1")
    assert len(hub_env.files(REPO, "release/v1")["wds/W/train-00000.tar"]) > len(
        hub_env.files(REPO, "main")["wds/W/train-00000.tar"])

    code = LOAD_ROWS + f"""
print(json.dumps([rows({REPO!r}, "W", s, "__key__", "png", "release/v1") for s in (False, True)]))
"""
    got = run_client(code, client_env(hub_env.url, tmp_path / "client_home", None))
    assert got == [expected_rows(images)] * 2


def test_source_hosted_on_hub_streams_equal_rows(hub_env, tmp_path: Path) -> None:
    """What scoring a Hub source needs: ``load_dataset(repo, streaming=True)`` through the server."""
    root = tmp_path / "ds"
    images = image_bytes(4, 5)
    write_parquet_config(root, None, images)
    push_folder(root, REPO)

    code = LOAD_ROWS + f"""
from diverseg_hf.sources import open_source
src = open_source({REPO!r}, kind="hub", key_column="key")
records = [[r.key, digest(r.data)] for unit in src.units() for r in unit.records()]
print(json.dumps([rows({REPO!r}, None, True, "key", "image"), records]))
"""
    streamed, records = run_client(code, client_env(hub_env.url, tmp_path / "client_home", WRITE_TOKEN))
    assert streamed == expected_rows(images)
    assert records == expected_rows(images)
