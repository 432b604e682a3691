"""Blockiness TSVs round-trip every legal file name; inputs that are no image give NaN with a reason."""

from __future__ import annotations

import json
import math
import os

import pytest
from image_zoo import textured
from PIL import Image

from diverseg_hf import DiversegError, blockiness
from diverseg_hf.cli import main
from diverseg_hf.errors import ImageError
from diverseg_hf.quality.basis import escape_name, read_scores_table, read_scores_tsv, unescape_name
from diverseg_hf.quality.blockiness import blockiness_batch, score_image, write_blockiness_tsv

HOSTILE = ["line\u2028sep.png", "form\ffeed.png", "new\nline.png", "carriage\rreturn.png", "para\u2029.png",
           "next\x85line.png", '"quoted".png', "tab\tin.png", "back\\slash.png", "caf\u00e9 .png"]


@pytest.mark.parametrize("bad", [None, 3.5, object(), ["a.png"]])
def test_score_image_of_something_that_is_no_image(bad):
    result = score_image(bad)
    assert math.isnan(result.value) and result.error
    assert result.reason.startswith("unsupported: not an image: ")


def test_blockiness_of_none_is_an_image_error():
    with pytest.raises(ImageError, match="not an image: NoneType"):
        blockiness(None)


@pytest.mark.parametrize("workers", [1, 2])
def test_one_none_does_not_lose_the_batch(workers):
    good = textured(64, 64, 1)
    results = blockiness_batch([good, None, good], workers=workers)
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].value == results[2].value == blockiness(good)
    assert "NoneType" in results[1].reason


@pytest.mark.parametrize("name", [*HOSTILE, "bad\udcff.png", "plain.png", 'a"b.png'])
def test_escape_round_trips(name):
    field = escape_name(name)
    assert unescape_name(field) == name
    assert len((field + "\t1.0").splitlines()) == 1
    field.encode("utf-8")


@pytest.mark.parametrize("name", ["plain.png", "n01440764/n01440764_18.JPEG", "tab\tin.png", "caf\u00e9 .png",
                                  "back\\slash.png", 'a"b.png'])
def test_ordinary_names_keep_the_released_format(name):
    assert escape_name(name) == name


def write_images(folder, names) -> list:
    folder.mkdir()
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        Image.fromarray(textured(48 + 8 * i, 64, i)).save(path, "PNG")
        paths.append(path)
    return paths


def test_blockiness_tsv_round_trips_every_legal_name(tmp_path):
    paths = write_images(tmp_path / "imgs", HOSTILE)
    undecodable = os.fsdecode(os.fsencode(str(tmp_path / "imgs")) + b"/bad\xff.png")
    os.rename(paths[-1], os.fsencode(undecodable))  # a name that is not valid UTF-8
    paths[-1] = undecodable
    out = tmp_path / "scores.tsv"
    summary = write_blockiness_tsv([tmp_path / "imgs"], out)
    assert summary.scored == len(HOSTILE)
    names, values = read_scores_table(out)
    expected = {str(p): blockiness(p) for p in paths}
    assert dict(zip(names, values.tolist())) == expected
    lines = out.read_bytes().split(b"\n")
    assert f"{tmp_path / 'imgs' / 'tab'}\tin.png\t".encode() in out.read_bytes()  # ordinary: as released
    assert len([line for line in lines if line]) == len(HOSTILE)
    assert json.loads(next(line for line in lines if b"feed" in line).split(b"\t")[0]).endswith("form\ffeed.png")


def test_cli_quality_reads_what_cli_blockiness_wrote(tmp_path, capsys):
    write_images(tmp_path / "imgs", HOSTILE)
    assert main(["blockiness", str(tmp_path / "imgs"), "-o", str(tmp_path / "x.tsv")]) == 0
    assert main(["quality", str(tmp_path / "x.tsv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == len(HOSTILE)


def test_older_files_with_raw_line_separators_in_names_still_read(tmp_path):
    tsv = tmp_path / "old.tsv"
    tsv.write_bytes("a\u2028b.png\t1.5\r\nc\fd.png\tnan\n\n".encode())
    names, values = read_scores_table(tsv)
    assert names == ["a\u2028b.png", "c\fd.png"] and values[0] == 1.5 and math.isnan(values[1])
    assert read_scores_tsv(tsv).size == 2


def test_a_broken_line_is_still_named(tmp_path):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("a.png\t1.0\nno tab here\n")
    with pytest.raises(DiversegError, match=r"bad.tsv:2: expected"):
        read_scores_tsv(tsv)

