"""The score table's commit journal: a commit appends one line (the manifest is not rewritten), a kill -9
at any point of a commit resumes byte-identically, and a resumed run re-scores units whose source changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf.errors import DiversegError
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage import ScoreTable, table_schema
from diverseg_hf.storage.journal import Journal
from diverseg_hf.storage.score_table import JOURNAL, MANIFEST

TESTS = Path(__file__).resolve().parent
HEADER = {"source": {"kind": "test", "spec": "x"}, "limit": None, "scorers": [], "columns": []}


def unit_table(n: int) -> pa.Table:
    rows = [{"key": f"k{i}", "origin": f"o{i}", "sha256": "0" * 64, "bytes": 1, "width": 1, "height": 1,
             "format": "PNG", "error": None if i % 2 else "corrupt: test"} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=table_schema([]))


def units(n: int) -> list[dict]:
    return [{"id": f"u{i}", "size": 2, "max_records": None} for i in range(n)]


def test_commit_appends_a_journal_line_and_leaves_the_manifest_until_the_last_unit(tmp_path):
    table = ScoreTable.create(tmp_path, HEADER, units(3))
    manifest = (tmp_path / MANIFEST).read_bytes()
    table.commit("u0", unit_table(2))
    table.commit("u1", unit_table(3))
    assert (tmp_path / MANIFEST).read_bytes() == manifest  # not rewritten per unit
    assert [e["unit"] for e in Journal(tmp_path / JOURNAL).entries()] == ["u0", "u1"]
    reopened = ScoreTable.open(tmp_path)
    assert reopened.counts == table.counts and not reopened.complete
    table.commit("u2", unit_table(1))
    assert not (tmp_path / JOURNAL).exists()  # folded into the manifest when the table completes
    final = json.loads((tmp_path / MANIFEST).read_text())
    assert final["complete"] is True and final["totals"]["rows"] == 6
    assert list(final["unit_counts"]) == ["u0", "u1", "u2"]


def test_torn_last_line_and_missing_line_are_recovered_from_the_unit_files(tmp_path):
    table = ScoreTable.create(tmp_path, HEADER, units(3))
    table.commit("u0", unit_table(2))
    table.commit("u1", unit_table(3))
    data = (tmp_path / JOURNAL).read_bytes()
    (tmp_path / JOURNAL).write_bytes(data[:-7])  # u1's line torn by a kill
    reopened = ScoreTable.open(tmp_path)
    assert reopened.counts == table.counts  # u1 counted from its file
    (tmp_path / JOURNAL).write_bytes(data.replace(b'"rows":2', b'"rows":9'))  # damaged: checksum fails
    assert ScoreTable.open(tmp_path).counts == table.counts
    resumed = ScoreTable.create(tmp_path, HEADER, units(3))  # opening for writing compacts
    assert not (tmp_path / JOURNAL).exists() and resumed.done() == {"u0", "u1"}
    assert json.loads((tmp_path / MANIFEST).read_text())["unit_counts"] == table.counts


def test_commit_of_an_unknown_unit_is_refused(tmp_path):
    table = ScoreTable.create(tmp_path, HEADER, units(1))
    with pytest.raises(DiversegError, match="not a unit"):
        table.commit("u9", unit_table(1))


KILL_IN_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from diverseg_hf.storage import journal
    from diverseg_hf.score import score

    append, count = journal.Journal.append, [0]

    def torn_append(self, entry):
        count[0] += 1
        if count[0] == {at}:
            line = journal.encode_line(entry)
            with open(self.path, "ab") as fh:  # half the line reaches the file, then the process dies
                fh.write(line[: len(line) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        append(self, entry)

    journal.Journal.append = torn_append
    score({src!r}, {out!r}, unit_size=2, progress=False)
    """
)


def run_score_script(code: str) -> int:
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ}, capture_output=True, timeout=120)
    return proc.returncode


def table_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "units").glob("*.parquet"))}


@pytest.mark.slow
@pytest.mark.parametrize("at", [1, 3])
def test_kill_during_the_journal_append_resumes_byte_identically(tmp_path, at):
    write_files(tmp_path / "src", good_images(9))
    code = KILL_IN_COMMIT.format(src=str(tmp_path / "src"), out=str(tmp_path / "killed"), at=at)
    assert run_score_script(code) == -9
    journal = (tmp_path / "killed" / JOURNAL).read_bytes()
    assert not journal.endswith(b"\n")  # the kill landed inside an append
    assert len(list((tmp_path / "killed" / "units").glob("*.parquet"))) == at
    resumed = score(str(tmp_path / "src"), tmp_path / "killed", unit_size=2, progress=False)
    assert resumed.units_done_before == at
    score(str(tmp_path / "src"), tmp_path / "clean", unit_size=2, progress=False)
    assert table_files(tmp_path / "killed") == table_files(tmp_path / "clean")
    killed, clean = (json.loads((tmp_path / d / MANIFEST).read_text()) for d in ("killed", "clean"))
    assert killed == clean and not (tmp_path / "killed" / JOURNAL).exists()


def test_resume_rescores_a_file_changed_in_place_and_publish_then_copies_it(tmp_path):
    images = good_images(5)
    paths = write_files(tmp_path / "src", images)
    score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    victim = sorted(paths.values())[2]  # in the second unit
    other = next(b for n, b in good_images(8, seed=7).items() if Path(n).suffix == victim.suffix)
    time.sleep(0.01)
    victim.write_bytes(other)
    again = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    assert again.units_done_before == 2  # the unit holding the changed file is scored again
    fresh = score(str(tmp_path / "src"), tmp_path / "fresh", unit_size=2, progress=False)
    assert fresh.rows == again.rows
    assert ScoreTable.open(tmp_path / "scores").read().equals(ScoreTable.open(tmp_path / "fresh").read())
    select(tmp_path / "scores", tmp_path / "sel", max_blockiness=1e9)
    result = publish(tmp_path / "sel", tmp_path / "ds", "mine", progress=False)
    keys = set(pq.read_table(result.files[0], columns=["key"]).column("key").to_pylist())
    assert len(keys) == result.num_examples


def test_publish_of_a_stale_selection_names_the_command_that_rescores(tmp_path):
    paths = write_files(tmp_path / "src", good_images(4))
    score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    select(tmp_path / "scores", tmp_path / "sel", max_blockiness=1e9)
    victim = sorted(paths.values())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(DiversegError, match=r"run `diverseg score \S+src --out \S+scores`"):
        publish(tmp_path / "sel", tmp_path / "ds", "mine", progress=False)
