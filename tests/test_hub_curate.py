"""``curate``/``publish --push-to-hub``: the published folder lands on the (local) Hub and loads from it."""

from __future__ import annotations

from pathlib import Path

from conftest_hub import READ_TOKEN, client_env, run_client
from huggingface_hub import HfApi
from image_zoo import write_zoo

from diverseg_hf.cli import main

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/curated"

LOAD = """
def rows(path, streaming):
    ds = datasets.load_dataset(path, "mine", split="train", streaming=streaming)
    ds = ds.cast_column("image", datasets.Image(decode=False))
    return sorted([r["key"], digest(r["image"]["bytes"])] for r in ds)
print(json.dumps({"hub": rows(REPO, False), "stream": rows(REPO, True), "local": rows(LOCAL, False)}))
"""


def test_curate_push_to_hub_then_load_equals_local_folder(hub_env, tmp_path: Path, capsys) -> None:
    write_zoo(tmp_path / "photos")
    out = tmp_path / "mysubset"
    code = main(["curate", str(tmp_path / "photos"), "--out", str(out), "--name", "mine",
                 "--scorers", "blockiness", "--max-blockiness", "1000", "--push-to-hub", REPO])
    assert code == 0
    assert "push: " in capsys.readouterr().err
    files = set(HfApi(endpoint=hub_env.url).list_repo_files(REPO, repo_type="dataset"))
    assert "README.md" in files and not any(f.startswith(".diverseg") for f in files)
    assert f'load_dataset("{REPO}"' in (out / "README.md").read_text()  # the card names the Hub repo

    got = run_client(f"REPO = {REPO!r}\nLOCAL = {str(out)!r}\n" + LOAD,
                     client_env(hub_env.url, tmp_path / "client_home", READ_TOKEN))
    assert got["hub"] == got["local"] == got["stream"]
    assert len(got["hub"]) == 9  # the zoo's valid images minus the undefined 1x1 and flat ones

    # publishing again changes nothing, so pushing again uploads nothing
    assert main(["publish", str(out / ".diverseg" / "mine" / "selection"), "--out", str(out), "--name", "mine",
                 "--push-to-hub", REPO]) == 0
    assert "push: 0 files uploaded in 0 commits" in capsys.readouterr().err


def test_curate_push_to_a_bare_repo_id_names_the_owners_repo_on_the_card(hub_env, tmp_path: Path, capsys) -> None:
    """A REPO_ID without a namespace is the token owner's: the card on the Hub must name owner/REPO_ID."""
    write_zoo(tmp_path / "photos")
    out = tmp_path / "bare"
    assert main(["curate", str(tmp_path / "photos"), "--out", str(out), "--name", "mine",
                 "--scorers", "blockiness", "--max-blockiness", "1000", "--push-to-hub", "curated"]) == 0
    assert f"-> datasets/{REPO}@main" in capsys.readouterr().err
    card = Path(HfApi(endpoint=hub_env.url).hf_hub_download(REPO, "README.md", repo_type="dataset",
                                                             local_dir=tmp_path / "dl")).read_text()
    assert f'load_dataset("{REPO}"' in card and 'load_dataset("curated"' not in card
