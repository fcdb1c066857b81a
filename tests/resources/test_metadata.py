"""What the Dagster UI shows of the estimates: tables whose headers name the estimand (the ROI at the
applied transforms before the bootstrap, the published ROI after it, smoothed over the selection
where transforms were selected) and numbers rounded to what their interval supports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from resources.metadata import (
    MARKDOWN_INLINE_CHARS,
    changes_table,
    estimates_table,
    interval_decimals,
    marginal_table,
    point_estimates_table,
    roi_metadata,
    significant,
    with_interval,
)


def _published(smoothed: bool = False) -> pd.DataFrame:
    """Published estimates as robustness_report writes them (the sample's numbers, full precision)."""
    rows = [
        ("tv", "total", 1.8933470523, 1.7225600311, 1.9791622517, 1.1532990441, 1.0875540213, 1.2718330987,
         "observed", "REVIEW", 1.8933470523, "percentile"),
        ("email", "total", 1.9195590134, 1.2085450377, 2.5510830071, 1.1341540011, 0.7140580329, 1.5072850918,
         "extrapolated", "PASS", 1.6001234567 if smoothed else 1.9195590134, "smoothed" if smoothed else "percentile"),
        ("radio", "total", np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, "", "", np.nan, ""),
    ]
    return pd.DataFrame(rows, columns=["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "mroi", "mroi_ci_low",
                                       "mroi_ci_high", "roi_support", "robustness", "applied_transform_roi",
                                       "interval_method"])


def _rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_two_significant_digits_of_the_interval_width_set_the_decimal_place() -> None:
    assert interval_decimals(1.7226, 1.9792) == 2          # width 0.26
    assert interval_decimals(1.2085, 2.5511) == 1          # width 1.3
    assert interval_decimals(196133.2, 225350.4) == -3     # width 29,000: thousands
    assert interval_decimals(1.0, 1.0) is None and interval_decimals(np.nan, 2.0) is None
    assert with_interval(1.8933470523, 1.7225600311, 1.9791622517) == "1.89 [1.72, 1.98]"
    assert with_interval(215579.36, 196133.2, 225350.4) == "216,000 [196,000, 225,000]"
    assert with_interval(1.8933470523, np.nan, np.nan) == "1.89"  # no interval: 3 significant digits
    assert significant(113861.51) == "114,000" and significant(0.00123456) == "0.00123"


def test_the_published_estimates_table_names_its_estimand_and_keeps_robustness_in_view() -> None:
    markdown = estimates_table(_published()).value
    header, *rows = _rows(markdown)
    assert header == ["estimate", "ROI, published [95%]", "robustness"]
    assert rows == [["tv", "1.89 [1.72, 1.98]", "REVIEW"], ["email", "1.9 [1.2, 2.6]", "PASS"], ["radio", "—", "—"]]
    assert len(markdown) < MARKDOWN_INLINE_CHARS  # shown in place in the UI, not behind a link
    # The metadata panel is ~400 px wide at 1440 px: three columns, no cell wider than 20 characters.
    assert not any(len(cell) > 20 for row in rows for cell in row)
    header, *rows = _rows(marginal_table(_published()).value)
    assert header == ["estimate", "mROI, next unit [95%]", "ROI support"]
    assert rows[:2] == [["tv", "1.15 [1.09, 1.27]", "observed"], ["email", "1.13 [0.71, 1.51]", "extrapolated"]]


def test_a_selected_transform_says_the_published_roi_is_smoothed_over_the_selection() -> None:
    header, *rows = _rows(estimates_table(_published(smoothed=True)).value)
    assert header[1] == "ROI, published (smoothed over selection) [95%]"
    assert rows[1] == ["email", "1.9 [1.2, 2.6]", "PASS"]


def test_the_ate_estimates_table_says_its_roi_is_at_the_applied_transforms() -> None:
    table = pd.DataFrame({"channel": ["tv", "tv"], "effect": ["total", "direct"], "ate": [2984.090165, 2381.7327],
                          "incremental_kpi": [215579.361998, 165250.5017], "roi": [1.893347052, 1.451329],
                          "naive_roi": [1.451329123, np.nan]})
    header, *rows = _rows(point_estimates_table(table).value)
    assert header == ["estimate", "ROI at applied transforms", "naive ROI (one OLS, no DAG)",
                      "incremental KPI at applied transforms"]
    assert rows == [["tv", "1.89", "1.45", "216,000"], ["tv direct", "1.45", "—", "165,000"]]


def test_roi_floats_are_rounded_to_their_interval_and_the_change_table_names_both_runs() -> None:
    est = _published()
    values = {k: v.value for k, v in roi_metadata(est).items()}
    assert values == {"roi/tv/total": 1.89, "roi/email/total": 1.9, "mroi/tv/total": 1.15, "mroi/email/total": 1.13}
    assert all(len(repr(v)) <= 5 for v in values.values())  # not 1.8933470523
    changes = pd.DataFrame([{"channel": "tv", "effect": "total", "roi": 1.8933470523, "previous_roi": 1.8630001,
                             "change": 0.0303469523, "previous_roi_ci_low": 1.70012, "previous_roi_ci_high": 1.95044,
                             "outside_previous_interval": False, "restated_weeks": ""}])
    header, row = _rows(changes_table(changes, est).value)
    assert header == ["estimate", "ROI, published: this run", "previous run [95%]", "change"]
    assert row == ["tv", "1.89", "1.86 [1.70, 1.95]", "0.03"]
    moved = changes.assign(outside_previous_interval=True)
    assert _rows(changes_table(moved, est).value)[1][3] == "0.03 outside"
    assert not math.isnan(values["roi/tv/total"])


def test_the_forest_plot_is_an_inline_svg_with_one_row_per_estimate_and_falls_back_when_too_long() -> None:
    import urllib.parse
    import xml.etree.ElementTree as ET

    from resources.metadata import forest_plot

    est = _published()
    shown = forest_plot(est, b"\x89PNG...").value
    assert len(shown) < MARKDOWN_INLINE_CHARS and shown.startswith("![")
    svg = ET.fromstring(urllib.parse.unquote(shown.split("](data:image/svg+xml,", 1)[1][:-1]))
    ns = "{http://www.w3.org/2000/svg}"
    assert [t.text for t in svg.iter(f"{ns}text")][:2] == ["tv total", "email total"]  # radio has no estimate
    assert len(list(svg.iter(f"{ns}circle"))) == 2
    many = pd.concat([est.iloc[:2].assign(channel=f"channel_{i}") for i in range(12)], ignore_index=True)
    assert forest_plot(many, b"png").value.startswith("![ROI by channel, naive ROI in orange](data:image/png;base64,")
