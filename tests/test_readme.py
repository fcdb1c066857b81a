"""The README is a short front door whose quoted figures are what the pipeline prints."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block(name: str) -> str:
    match = re.search(rf"<!-- {name} -->\n```\n(.*?)\n```\n<!-- /{name} -->", README, re.S)
    assert match, f"README lacks the {name} block"
    return match.group(1)


def test_the_readme_is_a_short_front_door_whose_links_resolve() -> None:
    assert len(README.encode("utf-8")) <= 15_000
    for target in re.findall(r"\]\(((?!https?://|#)[^)#]+)", README):
        assert (ROOT / target).exists(), target
    assert README.index("pip install -e .") < README.index("pip install -e '.[test]'") < README.index("## ")


def test_the_quoted_sample_summary_is_what_the_run_prints(sample_run: Path, sample_truth: pd.DataFrame) -> None:
    from cmmm_pipeline.data import warehouse
    from cmmm_pipeline.run import summary_table

    with duckdb.connect(str(sample_run / "cmmm.duckdb"), read_only=True) as con:
        published = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
    assert _block("sample-summary") == summary_table(published)

    # The sentences under the table quote the same run and the simulator's truth.
    rows = published.set_index(["channel", "effect"])
    truth = sample_truth.set_index(["channel", "effect"])["roi"]
    tv_total = rows.loc[("tv", "total")]
    quoted = (f"TV's total ROI, {tv_total['roi']:.3f}, is within 1% of the truth ({truth[('tv', 'total')]:.3f}); "
              f"the naive regression's\n  {tv_total['naive_roi']:.3f} misses TV's halo through search (TV's indirect "
              f"effect, {rows.loc[('tv', 'indirect'), 'roi']:.3f}).")
    assert quoted in README
    assert tv_total["roi"] == pytest.approx(truth[("tv", "total")], rel=0.01)
    extrapolated = sorted(c for (c, e), r in rows.iterrows() if e == "total" and r["roi_support"] == "extrapolated")
    assert extrapolated == ["digital", "email", "search"]
    assert "Digital, email and search are\n  always on in the sample" in README
