"""Which way a column is better is declared once (by its scorer) and every statement of a rule follows it:
the rows select keeps, selection.json, the card's rule line and snippet, select's message, --theta's help."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from image_zoo import textured
from shared_data import encode

from diverseg_hf.cli import main
from diverseg_hf.errors import ParameterError
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.scoring import _REGISTRY
from diverseg_hf.scoring.base import Scorer
from diverseg_hf.select import select
from diverseg_hf.storage import load_selection


class ContrastScorer(Scorer):
    """A custom scorer whose column is better higher (the default direction)."""

    name: ClassVar[str] = "test_contrast"
    columns: ClassVar[dict[str, str]] = {"contrast": "float64"}

    def __call__(self, images):
        return {"contrast": [float(im.std()) for im in images], "error": [None] * len(images)}


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    root = tmp_path_factory.mktemp("direction")
    (root / "src").mkdir()
    for i in range(8):
        rgb = textured(48, 48, i)
        (root / "src" / f"{i}.jpg").write_bytes(encode(rgb, "JPEG", quality=40 + 8 * i))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(_REGISTRY, "test_contrast", "test_select_direction:ContrastScorer")
        score(str(root / "src"), root / "scores", scorers=["blockiness", "test_contrast"], progress=False)
    return root


def card_rule(card: str) -> str:
    return re.search(r"\*\*Selection rules\*\*:(.*)", card).group(1)


CASES = {
    "theta blockiness (lower is better)": ({"thetas": {"blockiness": "median"}}, "blockiness", "lower"),
    "theta contrast (higher is better)": ({"thetas": {"contrast": "median"}}, "contrast", "higher"),
    "keep by blockiness": ({"keep": 0.5, "by": "blockiness"}, "blockiness", "lower"),
    "keep by contrast": ({"keep": 0.5, "by": "contrast"}, "contrast", "higher"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_card_states_the_rule_select_applied(scores, tmp_path, case):
    kwargs, column, better = CASES[case]
    table = load_selection_all(scores)
    median = float(np.median(table[column]))
    if "thetas" in kwargs:
        kwargs = {"thetas": {column: median}}
    result = select(scores / "scores", tmp_path / "sel", **kwargs)
    kept, info = load_selection(tmp_path / "sel")
    theta = result.max_blockiness if column == "blockiness" and "thetas" in kwargs else result.thetas[column]
    values = kept.column(column).to_pylist()
    assert values and all((v <= theta) if better == "lower" else (v >= theta) for v in values)
    assert info["better"][column] == better
    assert result.rules() == f"{column} {'<=' if better == 'lower' else '>='} {theta}"

    publish(tmp_path / "sel", tmp_path / "ds", "mine", progress=False)
    card = (tmp_path / "ds" / "README.md").read_text()
    symbol, wrong = ("≤", "≥") if better == "lower" else ("≥", "≤")
    rule = card_rule(card)
    assert re.search(rf"`?{column}`? {symbol} {re.escape(str(theta))}", rule), rule
    assert wrong not in rule
    snippet = re.search(rf'row\["{column}"\] (\S+) ', card)
    assert snippet is None or snippet.group(1) == ("<=" if better == "lower" else ">=")


def load_selection_all(scores: Path) -> dict[str, list[float]]:
    select(scores / "scores", scores / "all")
    table, _ = load_selection(scores / "all")
    return {c: table.column(c).to_pylist() for c in ("blockiness", "contrast")}


def test_theta_on_blockiness_is_max_blockiness(scores, tmp_path):
    a = select(scores / "scores", tmp_path / "a", thetas={"blockiness": 20})
    b = select(scores / "scores", tmp_path / "b", max_blockiness=20)
    assert load_selection(tmp_path / "a")[0].equals(load_selection(tmp_path / "b")[0])
    assert a.dropped == b.dropped and a.max_blockiness == b.max_blockiness == 20
    with pytest.raises(ParameterError, match="the same rule"):
        select(scores / "scores", tmp_path / "c", max_blockiness=20, thetas={"blockiness": 30})


def test_select_message_and_theta_help_name_the_direction(scores, tmp_path, capsys):
    assert main(["select", str(scores / "scores"), "--out", str(tmp_path / "s"), "--theta", "blockiness=100",
                 "--theta", "contrast=1"]) == 0
    assert "kept where blockiness <= 100.0, contrast >= 1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "COL <= N where lower is better (blockiness)" in help_text
