"""curate refuses a selection rule on a column no chosen scorer makes before it scores anything."""

from __future__ import annotations

import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf.curate import curate
from diverseg_hf.errors import ParameterError


@pytest.mark.parametrize(("select_options", "missing"), [
    ({"thetas": {"sam_masks": 100}}, "'sam_masks'"),
    ({"keep": 0.2}, "'sam_masks'"),  # --keep ranks by sam_masks unless --by says otherwise
    ({"keep": 0.2, "by": "det_objects"}, "'det_objects'"),
    ({"max_blockiness": 10, "thetas": {"det_objects": 18}}, "'det_objects'"),
])
def test_rule_on_a_column_no_scorer_makes_is_refused_before_scoring(tmp_path, select_options, missing):
    write_files(tmp_path / "src", good_images(3))
    with pytest.raises(ParameterError, match=f"blockiness make no column {missing}"):
        curate(str(tmp_path / "src"), tmp_path / "ds", "mine", score_options={"scorers": ["blockiness"]},
               select_options=select_options, progress=False)
    assert not (tmp_path / "ds").exists()  # nothing scored, nothing written


def test_rules_on_the_tables_own_columns_and_the_scorers_columns_run(tmp_path):
    write_files(tmp_path / "src", good_images(4))
    result = curate(str(tmp_path / "src"), tmp_path / "ds", "mine", score_options={"scorers": ["blockiness"]},
                    select_options={"thetas": {"width": 40, "blockiness": 1e9}}, progress=False)
    assert result.selection.kept == 4
