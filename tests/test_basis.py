"""Basis handling: released TSV parsing, folder discovery, save/load, default download with checksums."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from shared_data import DF2K_BASIS, needs_df2k_basis

from diverseg_hf import DiversegError, estimate_quality, load_basis
from diverseg_hf.files import TEMP_GLOB
from diverseg_hf.quality import basis as basis_mod
from diverseg_hf.quality.basis import discover_basis_files, read_scores_tsv, save_basis

needs_df2k = needs_df2k_basis


def touch(folder: Path, *names: str, text: str = "a.png\t1.0\nb.png\t2.0\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(text)
    return folder


# --- read_scores_tsv -------------------------------------------------------------------------------


def test_tsv_nan_blank_crlf_and_tabbed_paths(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_bytes(b"HR/1.png\t0.5\r\n\n   \nHR/2.png\tnan\nodd\tname.png\t7.25\nx.png\t1e3\n")
    values = read_scores_tsv(path)
    assert values.dtype == np.float64
    assert values[0] == 0.5 and np.isnan(values[1]) and values[2:].tolist() == [7.25, 1000.0]


@pytest.mark.parametrize("bad", ["a.png 1.0", "a.png\tone", "a.png\t"], ids=["no-tab", "word", "no-value"])
def test_tsv_bad_line_names_file_and_line(tmp_path, bad):
    path = tmp_path / "s.tsv"
    path.write_text(f"ok.png\t1.0\n\n{bad}\n")
    with pytest.raises(DiversegError, match=r"s\.tsv:3: expected 'path<TAB>value'"):
        read_scores_tsv(path)


def test_tsv_missing_file(tmp_path):
    with pytest.raises(DiversegError, match="no such scores file"):
        read_scores_tsv(tmp_path / "nope.tsv")


@needs_df2k
def test_tsv_reads_released_file_exactly():
    values = read_scores_tsv(DF2K_BASIS / "DF2K_q95.txt")
    first = (DF2K_BASIS / "DF2K_q95.txt").read_text().splitlines()[0].split("\t")[1]
    assert values.size == 3450 and values[0] == float(first)


# --- folder discovery --------------------------------------------------------------------------------


def test_discovery_suffixless_is_q100_and_other_files_ignored(tmp_path):
    folder = touch(tmp_path / "b", "DF2K.txt", "DF2K_q95.txt", "DF2K_q50.txt")
    (folder / "basis.json").write_text("{}")
    (folder / "notes.md").write_text("hi")
    found = discover_basis_files(folder)
    assert list(found) == [100, 95, 50]
    assert found[100].name == "DF2K.txt" and found[50].name == "DF2K_q50.txt"


def test_discovery_name_with_underscores(tmp_path):
    found = discover_basis_files(touch(tmp_path / "b", "my_set_q.txt", "my_set_q_q75.txt"))
    assert {q: p.name for q, p in found.items()} == {100: "my_set_q.txt", 75: "my_set_q_q75.txt"}


def test_discovery_name_ending_like_a_quality_is_ambiguous(tmp_path):
    with pytest.raises(DiversegError, match=r"several basis names \(my_set, my_set_q2\)"):
        discover_basis_files(touch(tmp_path / "b", "my_set_q2.txt", "my_set_q2_q75.txt"))


def test_discovery_without_q100(tmp_path):
    assert list(discover_basis_files(touch(tmp_path / "b", "X_q90.txt", "X_q60.txt"))) == [90, 60]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("DF2K.txt", "DF2K_q95.txt", "LSDIR_q95.txt"), "several basis names"),
        (("DF2K.txt", "DF2K_q100.txt"), "both DF2K.txt and DF2K_q100.txt are q100"),
        (("DF2K_q0.txt",), "quality 0"),
        (("DF2K_q101.txt",), "quality 101"),
        ((), "no basis files"),
    ],
    ids=["two-names", "two-q100", "q0", "q101", "empty"],
)
def test_discovery_refuses_ambiguous_or_bad_folders(tmp_path, names, message):
    folder = touch(tmp_path / "b", *names)
    with pytest.raises(DiversegError, match=message):
        discover_basis_files(folder)


def test_folder_basis_drops_nan_values(tmp_path):
    folder = touch(tmp_path / "b", "S.txt", text="a\t1.0\nb\tnan\nc\t3.0\n")
    assert load_basis(folder)[100].tolist() == [1.0, 3.0]


@needs_df2k
def test_load_released_folder():
    basis = load_basis(DF2K_BASIS)
    assert list(basis) == [100, 95, 85, 75, 50]
    assert all(v.dtype == np.float64 and v.size == 3450 for v in basis.values())


# --- save / load ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_save_load_round_trip_is_exact(tmp_path, suffix):
    rng = np.random.default_rng(0)
    basis = {50: rng.normal(180, 30, 40), 100: rng.gamma(2, 1, 50), 85: np.array([0.1, 1 / 3, 1e-300, 2.5e10])}
    path = tmp_path / f"basis{suffix}"
    save_basis(basis, path, metadata={"source": "test"})
    loaded = load_basis(path)
    assert list(loaded) == [100, 85, 50]
    for q in basis:
        np.testing.assert_array_equal(loaded[q], basis[q])
    assert not list(tmp_path.glob(TEMP_GLOB))


def test_parquet_metadata_recorded(tmp_path):
    import pyarrow.parquet as pq

    save_basis({100: np.arange(3.0)}, tmp_path / "b.parquet", metadata={"corpus": "demo"})
    meta = pq.read_schema(tmp_path / "b.parquet").metadata
    assert b'"corpus": "demo"' in meta[b"diverseg_basis"]


def test_save_refuses_unknown_suffix(tmp_path):
    with pytest.raises(DiversegError, match=r"\.parquet or \.json"):
        save_basis({100: np.arange(3.0)}, tmp_path / "b.csv")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("calib.json", '{"qualities": [100]}', "not a basis file"),
        ("broken.json", "{", "cannot read basis file"),
        ("keys.json", '{"format": "diverseg-basis", "values": {"high": [1, 2]}}', "must map qualities"),
        ("lists.json", '{"format": "diverseg-basis", "values": [1, 2]}', "must map qualities"),
        ("b.parquet", "not parquet", "cannot read basis file"),
        ("b.csv", "a,b", "expected a folder"),
    ],
)
def test_load_refuses_bad_files(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DiversegError, match=message):
        load_basis(tmp_path / name)


def test_load_missing_path(tmp_path):
    with pytest.raises(DiversegError, match="no such basis"):
        load_basis(tmp_path / "nope")


def test_environment_variable_wins_over_default(tmp_path, monkeypatch):
    save_basis({100: np.arange(4.0)}, tmp_path / "b.json")
    monkeypatch.setenv("DIVERSEG_BASIS", str(tmp_path / "b.json"))
    monkeypatch.setattr(basis_mod, "_BASE_URL", "http://127.0.0.1:9/unreachable")
    assert load_basis()[100].tolist() == [0.0, 1.0, 2.0, 3.0]


# --- default basis download (local server, no network) -----------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A local copy of the released files behind http://127.0.0.1:PORT, an empty cache, no env basis."""
    if not (DF2K_BASIS / "DF2K.txt").is_file():
        pytest.skip(f"released DF2K basis not found at {DF2K_BASIS}")
    root = tmp_path / "www"
    root.mkdir()
    for name in basis_mod.DF2K_SHA256:
        shutil.copy(DF2K_BASIS / name, root / name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(basis_mod, "_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("DIVERSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DIVERSEG_BASIS", raising=False)
    yield root
    server.shutdown()
    server.server_close()


def test_checksums_pin_the_released_files():
    if not (DF2K_BASIS / "DF2K.txt").is_file():
        pytest.skip(f"released DF2K basis not found at {DF2K_BASIS}")
    for name, digest in basis_mod.DF2K_SHA256.items():
        assert hashlib.sha256((DF2K_BASIS / name).read_bytes()).hexdigest() == digest


def test_released_files_downloaded_once_and_verified(served, tmp_path, monkeypatch):
    folder = basis_mod.fetch_default_basis()
    assert folder == tmp_path / "cache" / "basis" / f"df2k-{basis_mod.DF2K_COMMIT}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(basis_mod.DF2K_SHA256)
    np.testing.assert_array_equal(load_basis(folder)[95], load_basis(DF2K_BASIS)[95])
    # Second use: served from the cache, the server is not asked again.
    monkeypatch.setattr(basis_mod, "_BASE_URL", "http://127.0.0.1:9/unreachable")
    assert list(load_basis(basis_mod.fetch_default_basis())) == [100, 95, 85, 75, 50]


def test_corrupt_cached_file_is_fetched_again(served, tmp_path):
    folder = basis_mod.fetch_default_basis()
    (folder / "DF2K_q50.txt").write_text("x.png\t1.0\n")
    basis_mod.fetch_default_basis()
    assert (folder / "DF2K_q50.txt").read_bytes() == (DF2K_BASIS / "DF2K_q50.txt").read_bytes()


def test_checksum_mismatch_is_refused(served, tmp_path):
    with (served / "DF2K_q85.txt").open("a") as fh:
        fh.write("extra.png\t1.0\n")
    with pytest.raises(DiversegError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/DF2K_q85\.txt"):
        basis_mod.fetch_default_basis()
    folder = tmp_path / "cache" / "basis" / f"df2k-{basis_mod.DF2K_COMMIT}"
    assert not (folder / "DF2K_q85.txt").exists()
    assert not list(folder.glob(TEMP_GLOB))


def test_offline_download_error_is_one_line(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(basis_mod, "_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DIVERSEG_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DiversegError, match=r"cannot download the released DF2K basis files .*needs no network"):
        basis_mod.fetch_default_basis()


# --- the packaged DF2K basis ---------------------------------------------------------------------------


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No reachable download server, an empty cache and no $DIVERSEG_BASIS: only the packaged basis."""
    monkeypatch.setattr(basis_mod, "_BASE_URL", "http://127.0.0.1:9/unreachable")
    monkeypatch.setenv("DIVERSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DIVERSEG_BASIS", raising=False)


def test_default_basis_is_packaged_and_needs_no_network(offline, tmp_path):
    basis = load_basis()
    assert {q: v.size for q, v in basis.items()} == {100: 3450, 95: 3450, 85: 3450, 75: 3450, 50: 3450}
    assert all(v.dtype == np.float64 and np.isfinite(v).all() for v in basis.values())
    assert not (tmp_path / "cache").exists()


def test_packaged_basis_records_its_provenance():
    import pyarrow.parquet as pq

    side = json.loads(basis_mod.DF2K_PACKAGED.with_suffix(".json").read_text())
    inside = json.loads(pq.read_schema(basis_mod.DF2K_PACKAGED).metadata[b"diverseg_basis"])
    assert side == inside
    assert side["commit"] == basis_mod.DF2K_COMMIT and side["files_sha256"] == basis_mod.DF2K_SHA256
    assert side["repository"].endswith("gohtanii/DiverSeg-dataset") and side["licence"].startswith("MIT")
    assert "MIT License" in basis_mod.DF2K_PACKAGED.with_suffix(".LICENSE").read_text()


@needs_df2k
def test_packaged_basis_equals_the_released_files_exactly(offline):
    packaged, released = load_basis(), load_basis(DF2K_BASIS)
    assert list(packaged) == list(released)
    for quality, values in released.items():
        assert packaged[quality].tobytes() == values.tobytes()  # same float64 bits, same order


@needs_df2k
@pytest.mark.parametrize("case", ["df2k_q95", "df2k_q100", "df2k_q50"])
def test_packaged_basis_reproduces_the_released_estimates(offline, case):
    expected = json.loads((DF2K_BASIS / "EXPECTED_QUALITY.json").read_text())[case]
    est = estimate_quality(read_scores_tsv(DF2K_BASIS / expected["target"]), load_basis())
    assert abs(est.quality - expected["quality"]) <= 1e-6
    for name, kl in expected["kl_by_basis"].items():
        assert est.kl[int(name[1:])] == pytest.approx(kl, rel=1e-9, abs=1e-9)


def test_cli_quality_works_offline_with_the_packaged_basis(offline, tmp_path, capsys):
    from diverseg_hf.cli import main

    (tmp_path / "t.tsv").write_text("".join(f"i{i}\t{0.3 + 0.01 * i}\n" for i in range(50)))
    assert main(["quality", str(tmp_path / "t.tsv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quality"] > 0.95
