"""The Ray engine on a real local Ray cluster (2 CPUs, 2 fake GPUs), against the local engine.

One cluster per module; HOME and RAY_TMPDIR point into temporary folders. Test scorers live in this
module and are registered in every Ray worker through a ``worker_process_setup_hook``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from image_zoo import write_zoo
from PIL import Image
from pipeline_helpers import good_images, rows_of, write_files

from diverseg_hf import scoring
from diverseg_hf.engines.ray import run_ray
from diverseg_hf.errors import DiversegError, MissingExtraError
from diverseg_hf.score import score, score_with_ray
from diverseg_hf.scoring.base import Scorer
from diverseg_hf.storage import ScoreTable
from diverseg_hf.storage.score_table import MANIFEST, UNITS_DIR

ray = pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own DataContext notices
TESTS = Path(__file__).resolve().parent
SETUP_HOOK = "test_engine_ray.register_test_scorers"
# Two actors on two CPUs: each takes half a CPU so that the read tasks still get one.
RAY_OPTS: dict[str, Any] = {"cpus_per_worker": 0.5, "timeout_s": 120}


class MeanScorer(Scorer):
    """Mean pixel value; ``delay`` seconds per image. With ``crash_marker``, the first call creates
    that file and kills its process (an actor crash), later calls (marker present) score normally;
    with ``crash_always``, every call kills its process."""

    name: ClassVar[str] = "test_mean"
    columns: ClassVar[dict[str, str]] = {"mean": "float64"}

    def __init__(self, delay: float = 0.0, crash_marker: str | None = None, crash_always: bool = False):
        self.delay = delay
        self.crash_marker = crash_marker
        self.crash_always = crash_always

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        if self.crash_always:
            os._exit(1)
        if self.crash_marker and not os.path.exists(self.crash_marker):
            Path(self.crash_marker).write_text(str(os.getpid()))
            os._exit(1)
        time.sleep(self.delay * len(images))
        return {"mean": [float(im.mean()) for im in images], "error": [None] * len(images)}


class GpuProbeScorer(Scorer):
    """Records the GPU Ray gave this process and the device the engine put the scorer on."""

    name: ClassVar[str] = "test_gpu_probe"
    columns: ClassVar[dict[str, str]] = {"gpu": "int32", "device": "string"}
    uses_gpu: ClassVar[bool] = True

    def __init__(self) -> None:
        self.device = "unset"

    def to(self, device: str) -> GpuProbeScorer:
        self.device = device
        return self

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        gpus = ray.get_gpu_ids()
        return {"gpu": [int(gpus[0]) if len(gpus) == 1 else -1] * len(images),
                "device": [self.device] * len(images), "error": [None] * len(images)}


TEST_SCORERS = {"test_mean": "test_engine_ray:MeanScorer", "test_gpu_probe": "test_engine_ray:GpuProbeScorer",
                "optprobe": "pipeline_helpers:OptionsProbe", "counted_sam": "load_helpers:CountedSamScorer"}


def register_test_scorers() -> None:
    """Add this module's scorers to the registry (driver and Ray workers)."""
    for name, target in TEST_SCORERS.items():
        scoring.register_scorer(name, target)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for this module; yields its address."""
    with tempfile.TemporaryDirectory(prefix="dsr") as tmp, pytest.MonkeyPatch.context() as mp:
        home, ray_tmp = Path(tmp, "home"), Path(tmp, "ray")  # short: Ray's socket paths are length-capped
        home.mkdir()
        ray_tmp.mkdir()
        mp.setenv("HOME", str(home))
        mp.setenv("RAY_TMPDIR", str(ray_tmp))
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
        register_test_scorers()
        ray.init(num_cpus=2, num_gpus=2, object_store_memory=200 * 1024**2, include_dashboard=False,
                 _temp_dir=str(ray_tmp), runtime_env={"worker_process_setup_hook": SETUP_HOOK},
                 logging_level="WARNING")
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()
            for name in TEST_SCORERS:
                scoring.unregister_scorer(name)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Random images of several sizes plus every awkward case of the image zoo."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(7)
    for i in range(21):
        h, w = rng.integers(24, 90, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"img.{i:02d}.png")
    write_zoo(root / "zoo")
    return root


def _read(out: Path) -> tuple[dict, dict[str, Any]]:
    """(manifest, {unit file name: pandas frame}) of a score table folder."""
    import pyarrow.parquet as pq

    manifest = json.loads((out / MANIFEST).read_text())
    units = {}
    for path in sorted((out / UNITS_DIR).glob("*.parquet")):
        table = pq.read_table(path)
        units[path.name] = (table.schema, table.to_pandas())
    return manifest, units


def assert_same_table(a: Path, b: Path) -> None:
    """Same unit files, each with the same schema (+metadata) and rows; same manifest."""
    manifest_a, units_a = _read(a)
    manifest_b, units_b = _read(b)
    assert manifest_a["complete"] and manifest_b["complete"]
    for key in ("header", "totals", "units", "unit_counts"):
        assert manifest_a[key] == manifest_b[key], key
    assert sorted(units_a) == sorted(units_b)
    for name, (schema, frame) in units_a.items():
        other_schema, other_frame = units_b[name]
        assert schema.equals(other_schema, check_metadata=True), name
        assert frame.equals(other_frame), name  # NaN == NaN here, unlike Arrow's Table.equals
    assert ScoreTable.open(a).read().num_rows == ScoreTable.open(b).read().num_rows > 0


def test_ray_table_equals_local_table(cluster, folder, tmp_path):
    score(str(folder), tmp_path / "local", unit_size=4, progress=False)
    summary = score_with_ray(str(folder), tmp_path / "ray", workers=2, batch_size=2, rows_per_block=3,
                             unit_size=4, progress=False, **RAY_OPTS)
    assert summary.rows == 21 + len(list((folder / "zoo").iterdir()))
    assert summary.errors > 0 and summary.undefined > 0  # the zoo's bad images are recorded, not fatal
    assert_same_table(tmp_path / "local", tmp_path / "ray")


@pytest.fixture(scope="module")
def broken_sources(tmp_path_factory) -> dict[str, Path]:
    """Sources whose records carry source-level errors: a folder with a dangling link, a FIFO and a
    zero-byte file; a Parquet file with path-only cells; a tar with a sample that has no image."""
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("broken")
    folder = root / "folder"
    folder.mkdir()
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(png, "PNG")
    (folder / "good.png").write_bytes(png.getvalue())
    (folder / "empty.png").write_bytes(b"")
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    os.mkfifo(folder / "fifo.png")
    cells = [{"bytes": png.getvalue(), "path": "a.png"}, {"bytes": None, "path": "good.png"},
             {"bytes": None, "path": "absent.png"}, {"bytes": None, "path": None}]
    pq.write_table(pa.table({"image": cells}), folder.parent / "cells.parquet")
    (root / "good.png").write_bytes(png.getvalue())  # what the path-only cell "good.png" names
    with tarfile.open(root / "samples.tar", "w") as tar:
        for name, data in (("a.png", png.getvalue()), ("b.json", b"{}"), ("c.png", png.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {"folder": folder, "parquet": root / "cells.parquet", "tar": root / "samples.tar"}


@pytest.mark.parametrize("kind", ["folder", "parquet", "tar"])
def test_ray_carries_source_errors_like_local(cluster, broken_sources, tmp_path, kind):
    """Records with source-level errors (the source could not hand over the bytes) reach Ray's actors
    whole: the same rows, error reasons included, as the local engine's."""
    source = str(broken_sources[kind])
    score(source, tmp_path / "local", unit_size=2, progress=False)
    score_with_ray(source, tmp_path / "ray", workers=2, rows_per_block=1, unit_size=2, progress=False, **RAY_OPTS)
    assert_same_table(tmp_path / "local", tmp_path / "ray")
    errors = [e for e in ScoreTable.open(tmp_path / "ray").read().column("error").to_pylist() if e]
    expected = {"folder": ("missing: dangling symlink", "unsupported: a FIFO", "empty:"),
                "parquet": ("unreadable: image cell holds only the path 'absent.png'", "empty: image cell has"),
                "tar": ("missing: no image member",)}[kind]
    for reason in expected:
        assert any(e.startswith(reason) for e in errors), (reason, errors)


def test_workers_get_their_own_gpu(cluster, folder, tmp_path):
    score_with_ray(str(folder), tmp_path / "ray", ["test_gpu_probe"], workers=2, gpus_per_worker=1,
                   rows_per_block=2, unit_size=8, progress=False, **RAY_OPTS)
    table = ScoreTable.open(tmp_path / "ray").read(columns=["gpu", "device", "error"])
    decoded = [i for i, e in enumerate(table.column("error").to_pylist()) if e is None]
    assert decoded
    gpus = {table.column("gpu")[i].as_py() for i in decoded}
    assert gpus <= {0, 1}  # exactly one of the two (fake) GPUs per actor
    assert {table.column("device")[i].as_py() for i in decoded} == {"cuda"}


def test_engine_options_reach_the_actors(cluster, folder, tmp_path):
    given = {"batch_size": 3, "points_per_batch": 5, "image_batch_size": 2, "compile": True}
    score_with_ray(str(folder), tmp_path / "ray", ["optprobe"], workers=1, rows_per_block=8, unit_size=12,
                   progress=False, **given, **RAY_OPTS)
    rows = [r for r in ScoreTable.open(tmp_path / "ray").read().to_pylist() if r["error"] is None]
    assert len(rows) >= 21
    for row in rows:
        assert (row["got_batch_size"], row["got_points_per_batch"], row["got_image_batch_size"]) == (3, 5, 2)
        assert row["got_compile"] is True and 1 <= row["call_size"] <= 3
    header = json.loads((tmp_path / "ray" / MANIFEST).read_text())["header"]
    assert header["scorers"][0]["options"] == given


def test_models_load_only_in_the_actors(cluster, tmp_path):
    """The driver reads the scorers' settings without loading weights; each actor loads its model once."""
    pytest.importorskip("transformers")
    from load_helpers import loads
    from sam_helpers import shape_images

    root = tmp_path / "src"
    root.mkdir()
    for i, rgb in enumerate(shape_images(4, seed=2, low=40, high=64)):
        Image.fromarray(rgb).save(root / f"{i}.png")
    log = tmp_path / "loads"
    score_with_ray(str(root), tmp_path / "ray", ["counted_sam"], scorer_options={"counted_sam": {"load_log": str(log)}},
                   workers=1, rows_per_block=2, unit_size=2, progress=False, **RAY_OPTS)
    pids = loads(log)
    assert pids and os.getpid() not in pids and len(pids) == len(set(pids))  # loaded in actors only, once each
    assert all(r["error"] is None for r in ScoreTable.open(tmp_path / "ray").read().to_pylist())


def test_crashed_actor_is_restarted_and_block_retried(cluster, folder, tmp_path):
    marker = tmp_path / "crashed"
    options = {"test_mean": {"crash_marker": str(marker)}}
    score_with_ray(str(folder), tmp_path / "ray", ["test_mean"], scorer_options=options, workers=1,
                   rows_per_block=4, unit_size=6, progress=False, **RAY_OPTS)
    assert marker.exists()  # an actor did die in its first call
    score(str(folder), tmp_path / "local", ["test_mean"], scorer_options=options, unit_size=6, progress=False)
    assert_same_table(tmp_path / "local", tmp_path / "ray")


def test_actor_that_always_crashes_fails_cleanly(cluster, tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "a.png")
    with pytest.raises(DiversegError, match="ray engine failed after 0 of 1 units"):
        score_with_ray(str(root), tmp_path / "ray", ["test_mean"], workers=1, progress=False,
                       scorer_options={"test_mean": {"crash_always": True}}, max_retries=1, **RAY_OPTS)
    assert not ScoreTable.open(tmp_path / "ray").complete


_DRIVER = """
import sys, test_engine_ray
from diverseg_hf.score import score_with_ray
test_engine_ray.register_test_scorers()
score_with_ray(sys.argv[1], sys.argv[2], ["test_mean"], address=sys.argv[3], workers=1, rows_per_block=2,
               unit_size=3, scorer_options={"test_mean": {"delay": 0.05}}, progress=False,
               runtime_env={"worker_process_setup_hook": test_engine_ray.SETUP_HOOK}, cpus_per_worker=0.5)
"""


@pytest.mark.slow
def test_killed_driver_resumes_to_the_same_table(cluster, folder, tmp_path):
    out = tmp_path / "ray"
    units = out / UNITS_DIR
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(folder), str(out), cluster],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (units.exists() and any(units.glob("*.parquet"))):
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no unit committed in 120 s"
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait()
        driver.stderr.close()
    total = len(json.loads((out / MANIFEST).read_text())["units"])
    assert 0 < len(list(units.glob("*.parquet"))) < total  # killed mid-run, some units done

    options = {"test_mean": {"delay": 0.05}}  # part of the table's header: the same on resume
    summary = score_with_ray(str(folder), out, ["test_mean"], scorer_options=options, workers=2,
                             rows_per_block=2, unit_size=3, progress=False, **RAY_OPTS)
    assert 0 < summary.units_done_before < total
    score(str(folder), tmp_path / "local", ["test_mean"], scorer_options=options, unit_size=3, progress=False)
    assert_same_table(tmp_path / "local", out)


def test_unreachable_address_is_a_clean_error(folder, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DiversegError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        score_with_ray(str(folder), tmp_path / "ray", address=f"127.0.0.1:{port}", progress=False)
    with pytest.raises(DiversegError, match="HOST:PORT"):
        score_with_ray(str(folder), tmp_path / "ray", address="no-port", progress=False)


def test_missing_ray_names_the_extra(monkeypatch, folder):
    from diverseg_hf.sources import open_source

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"diverseg-hf\[ray\]"):
        run_ray(open_source(str(folder)).units(), [("blockiness", {})], lambda uid, table: None, progress=False)


@pytest.mark.slow
def test_ray_is_imported_only_when_used():
    code = "import sys, diverseg_hf.score, diverseg_hf.engines.ray; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_assembler_puts_rows_back_in_order_once():
    import pyarrow as pa

    from diverseg_hf.engines.ray import _Assembler
    from diverseg_hf.sources import Unit

    schema = pa.schema([("__unit", pa.int64()), ("__seq", pa.int64()), ("__end", pa.bool_()), ("key", pa.string())])

    def rows(unit: int, seqs: list[int], end: int | None = None) -> pa.Table:
        items = [{"__unit": unit, "__seq": s, "__end": False, "key": f"{unit}-{s}"} for s in seqs]
        if end is not None:
            items.append({"__unit": unit, "__seq": end, "__end": True, "key": None})
        return pa.Table.from_pylist(items, schema=schema)

    assembler = _Assembler([Unit("u0", None), Unit("u1", None), Unit("empty", 0)])
    done = []
    for batch in (rows(1, [2], end=3), rows(0, [1, 0]), rows(2, [], end=0), rows(1, [0, 2]), rows(0, [], end=2),
                  rows(1, [1]), rows(1, [1])):  # out of order, unit 1's rows 1 and 2 delivered twice
        done.extend((uid, table.column("key").to_pylist()) for uid, table in assembler.add(batch))
    assert done == [("empty", []), ("u0", ["0-0", "0-1"]), ("u1", ["1-0", "1-1", "1-2"])]


def test_ray_actors_resolve_a_scorer_registered_at_run_time(cluster, tmp_path, register_scorer):
    """The cluster's setup hook does not register it: the spec's "module:Class" is enough in the actors."""
    write_files(tmp_path / "src", good_images(6))
    register_scorer("mean_level", "scorer_helpers:MeanLevel")
    assert "mean_level" not in TEST_SCORERS
    score(str(tmp_path / "src"), tmp_path / "local", ["mean_level"], progress=False)
    score_with_ray(str(tmp_path / "src"), tmp_path / "ray", ["mean_level"], workers=1, progress=False, **RAY_OPTS)
    local, remote = (rows_of(ScoreTable.open(tmp_path / name).read()) for name in ("local", "ray"))
    assert remote == local and all(row["mean_level"] > 0 for row in remote)
