"""The config's types: frozen dataclasses whose thresholds are validated at construction, and the
enums of its modes. `core.loading` builds them from YAML."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from cmmm_pipeline.core.errors import ConfigError, brief, combined

SEASONALITY = "seasonality"
TREND = "trend"
GENERATED_CONTROLS = (SEASONALITY, TREND)
MAX_KPI_HISTORY_WEEKS = 104
"""The longest KPI history a generated lagged-KPI control may read (two years of weeks)."""


def lagged_kpi_name(name: str, kpi: str) -> tuple[str, int] | None:
    """('lag' or 'mean_last', weeks) when `name` names the KPI's past: `kpi_lag52` / `<kpi>_lag52`
    (the KPI 52 weeks before), `kpi_mean_last4` / `<kpi>_mean_last4` (the mean of the 4 weeks before)."""
    m = re.fullmatch(rf"(?:kpi|{re.escape(kpi)})_(lag|mean_last)([0-9]+)", name)
    return (m.group(1), int(m.group(2))) if m and int(m.group(2)) > 0 else None


def is_generated_control(name: str, kpi: str) -> bool:
    """A control the pipeline can generate when the data lacks it: seasonality, trend, the KPI's past."""
    return name in GENERATED_CONTROLS or lagged_kpi_name(name, kpi) is not None


RESERVED_COLUMN = "week"
"""The normalised date column (`cmmm_pipeline.media.features.WEEK`): no other data column or node may take it."""

MAX_LAG_WEEKS = 104
MAX_FOURIER_ORDER = 26



def is_finite_number(value: Any) -> bool:
    """A real, finite number (bools excluded; an integer too large for a float is not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _type_problem(value: Any, annotation: str) -> str | None:
    """Why `value` does not fit a threshold field's annotation (None when it does)."""
    optional = annotation.replace(" ", "").endswith("|None")
    base = annotation.split("|")[0].strip()
    if value is None and optional:
        return None
    if base == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if base == "int":
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if base == "float":
        return None if is_finite_number(value) else "must be a finite number"
    return None


def field_type_problems(section: Any, key: str) -> list[ConfigError]:
    """Thresholds built in code get the same type checks as those read from YAML (every field)."""
    problems = []
    for name, spec in section.__dataclass_fields__.items():
        value = getattr(section, name)
        problem = _type_problem(value, str(spec.type))
        if problem:
            problems.append(ConfigError("config-type", f"{key}.{name}", f"{problem}, got {brief(value)}.",
                                        f"write a value of type {spec.type}."))
    return problems


def require_field_types(section: Any, key: str) -> None:
    """Raise every type problem of a threshold section at once."""
    error = combined(field_type_problems(section, key))
    if error is not None:
        raise error


def _range_problems(section: Any, key: str, rules: list[tuple[str, bool, str, str]]) -> None:
    """Raise every broken range rule (field, broken, detail, fix) at once; types are checked before."""
    error = combined(ConfigError("threshold-range", f"{key}.{name}", detail, fix)
                     for name, broken, detail, fix in rules if broken)
    if error is not None:
        raise error


class AdstockType(Enum):
    """Carryover families. AUTO (the default when the config names no type and no decay) lets the
    data choose between geometric decay and a delayed-peak Weibull-PDF kernel."""

    GEOMETRIC = "geometric"
    WEIBULL = "weibull"
    WEIBULL_PDF = "weibull_pdf"
    AUTO = "auto"


class SaturationType(Enum):
    HILL = "hill"


class SelectionCriterion(Enum):
    """How a channel's transform is chosen from its cross-validation errors (media/selection.py).

    CV_MIN takes the smallest error. ONE_SE takes, among the points whose error is within one
    paired standard error (across folds) of the smallest, the one nearest the reference transform
    (geometric decay 0.5, half-saturation at the average week, slope 1): shrinkage toward the
    reference, for data that cannot tell the curves apart (measured in docs/transforms.md).
    IN_SAMPLE takes the smallest residual sum of squares on all weeks (the transform's profile
    likelihood): an ablation, better at one selection but worse once the bootstrap smooths over
    re-selections (docs/transforms.md)."""

    CV_MIN = "cv_min"
    ONE_SE = "one_se"
    IN_SAMPLE = "in_sample"


class CvScheme(Enum):
    """How the selection's cross validation splits the weeks (media/selection.py).

    FORWARD: expanding window; each fold trains on the weeks before its test block, and the first
    `cv_initial_fraction` of the weeks are never tested. BLOCKED: `cv_folds` contiguous blocks, each
    predicted from all the others, past and future: every week is tested, so a curve is judged over
    the whole range of spend (valid for a regression whose errors are serially uncorrelated given its
    regressors, Bergmeir, Hyndman & Koo 2018; the media are transformed from spend alone, so a test
    block's regressors carry none of its KPI).
    Measured against the oracle in docs/accuracy.md; FORWARD stays the default."""

    FORWARD = "forward"
    BLOCKED = "blocked"


class SelectionBand(Enum):
    """Which intervals reach the estimates of the transforms the data cannot tell from the selected
    one (effects/selection_band.py): ALL (incremental KPI, ROI and mROI, with the p-value to
    match), MROI (the marginal ROI only), OFF (the bootstrap's intervals as they are)."""

    ALL = "all"
    MROI = "mroi"
    OFF = "off"


class EffectType(Enum):
    """Which paths a channel's effect flows through."""

    TOTAL = "total"
    DIRECT = "direct"
    INDIRECT = "indirect"


@dataclass(frozen=True)
class AdstockConfig:
    """Carryover. Geometric uses `decay`; Weibull (survival) and Weibull-PDF (delayed peak) use
    `shape`, `scale`, `max_lag`. A None parameter means: select it from the data. AUTO with a
    decay is geometric, so `adstock: {decay: 0.6}` reads as it always did."""

    type: AdstockType = AdstockType.AUTO
    decay: float | None = None
    shape: float | None = None
    scale: float | None = None
    max_lag: int = 12

    def __post_init__(self) -> None:
        if self.type is AdstockType.AUTO and self.decay is not None:
            object.__setattr__(self, "type", AdstockType.GEOMETRIC)


@dataclass(frozen=True)
class SaturationConfig:
    """Hill saturation on adstocked spend divided by its mean (so K = 1 is the average week).
    A None parameter means: select it from the data."""

    type: SaturationType = SaturationType.HILL
    half_saturation: float | None = None
    slope: float | None = None


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    spend_column: str
    adstock: AdstockConfig = field(default_factory=AdstockConfig)
    saturation: SaturationConfig = field(default_factory=SaturationConfig)


@dataclass(frozen=True)
class DataConfig:
    """Where the weekly table comes from: a CSV/Parquet file, or a table in a DuckDB file."""

    path: Path
    date_column: str
    kpi: str
    table: str | None = None
    kpi_must_be_positive: bool = False
    market_column: str | None = None
    """When set, one model per market (a Dagster partition each); the column is not a control."""
    markets: tuple[str, ...] = ()
    """The markets as static partitions; empty = dynamic partitions, added as new markets arrive."""


@dataclass(frozen=True)
class FeatureConfig:
    """Generated controls: Fourier seasonality (unless the data has a `seasonality` column) and trend."""

    fourier_order: int = 2


@dataclass(frozen=True)
class ExperimentConfig:
    """A lift test: the measured incremental KPI of `channel` over [start, end] with its interval."""

    channel: str
    start: dt.date
    end: dt.date
    incremental_kpi: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class CampaignConfig:
    """A named window of one channel's spend (dates inclusive, each a week of the data): its effect is
    the KPI as run minus the KPI with the channel's spend removed in the window only."""

    name: str
    channel: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class EffectModifierConfig:
    """A channel's effect by level of an observed pre-treatment column: by terciles of `modifier`, or
    by the user's `cut_points` (levels `modifier<=c1`, `c1<modifier<=c2`, ..., `modifier>ck`)."""

    channel: str
    modifier: str
    cut_points: tuple[float, ...] = ()


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the data-quality, independence and overlap gates. `overlap_min_spread` is each
    stratum's SD of transformed media relative to the channel's overall SD; `overlap_min_residual_share`
    the SD of the media left after its adjustment set relative to its SD (calibrated by
    benchmarks/overlap_calibration.py)."""

    min_weeks: int = 52
    independence_alpha: float = 0.05
    independence_blocking: bool = False
    max_implications: int = 300
    """At most this many of the DAG's implied independences are tested (those naming a channel
    first): a DAG with 60 controls implies over 2,000, about a minute of tests per 1,000."""
    overlap_bins: int = 3
    overlap_min_weeks: int = 8
    overlap_min_spread: float = 0.1
    overlap_min_residual_share: float = 0.1
    max_data_age_days: int = 10
    """The freshness check warns when the newest week is older than this many days at run time."""
    outlier_kpi_threshold: float = 20.0
    outlier_spend_threshold: float = 10.0
    """`value-outlier`: robust z-scores beyond which a KPI week / a spending week is refused
    (`cmmm_pipeline.data.outliers`; calibrated by benchmarks/outlier_calibration.py)."""
    outlier_columns: tuple[tuple[str, float | None], ...] | None = None
    """Per-column thresholds that replace the two above: (column, threshold), None switching the rule
    off for the column. Read from a YAML mapping `column: number | off`."""

    def __post_init__(self) -> None:
        if self.outlier_columns is not None:
            object.__setattr__(self, "outlier_columns", _outlier_columns(self.outlier_columns))
        require_field_types(self, "checks")
        _range_problems(self, "checks", [
            ("min_weeks", self.min_weeks < 8, f"is {self.min_weeks}.",
             "set at least 8 weeks; fewer cannot support any estimate."),
            ("independence_alpha", not 0.0 < self.independence_alpha < 1.0, f"is {self.independence_alpha}.",
             "use a level in (0, 1), e.g. 0.05."),
            ("max_implications", self.max_implications < 1, f"is {self.max_implications}.",
             "test at least 1 implication, e.g. the default 300."),
            ("overlap_bins", self.overlap_bins < 1, f"is {self.overlap_bins}.", "use at least 1 stratum."),
            ("overlap_min_weeks", self.overlap_min_weeks < 2, f"is {self.overlap_min_weeks}.",
             "use at least 2 weeks per stratum."),
            ("overlap_min_spread", self.overlap_min_spread < 0, "must be >= 0.",
             "use a share of the channel's media variation (stratum SD / overall SD), e.g. 0.1."),
            ("overlap_min_residual_share", not 0 <= self.overlap_min_residual_share < 1, "must be in [0, 1).",
             "use a share of the channel's media variation left after its adjustment set, e.g. 0.1."),
            ("max_data_age_days", self.max_data_age_days < 1, f"is {self.max_data_age_days}.",
             "use a number of days of at least 1, e.g. 10 for a weekly export."),
            *((name, getattr(self, name) < MIN_OUTLIER_THRESHOLD, f"is {getattr(self, name)}.", _OUTLIER_FIX)
              for name in ("outlier_kpi_threshold", "outlier_spend_threshold")),
            *((f"outlier_columns.{column}", threshold is not None and threshold < MIN_OUTLIER_THRESHOLD,
               f"is {threshold}.", _OUTLIER_FIX) for column, threshold in self.outlier_columns or ()),
        ])

    def outlier_threshold(self, column: str, is_kpi: bool) -> float | None:
        """The `value-outlier` threshold of a column (None: the rule is off for it)."""
        for name, threshold in self.outlier_columns or ():
            if name == column:
                return threshold
        return self.outlier_kpi_threshold if is_kpi else self.outlier_spend_threshold


MIN_OUTLIER_THRESHOLD = 3.0
"""Below 3 robust scales ordinary weeks of normal data would be refused."""
_OUTLIER_FIX = ("use a robust z-score of at least 3 (defaults: 20 for the KPI, 10 for spend); to let a known "
                "one-off week through, set checks.outlier_columns.<column> to a higher number or to off.")


def _outlier_columns(raw: Any) -> tuple[tuple[str, float | None], ...]:
    """`checks.outlier_columns` as (column, threshold | None) pairs, from a YAML mapping (`off`, which
    YAML reads as false, switches a column off) or from pairs built in code."""
    pairs = list(raw.items()) if isinstance(raw, Mapping) else list(raw) if isinstance(raw, (list, tuple)) else None
    if pairs is None or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pairs):
        raise ConfigError("config-type", "checks.outlier_columns", f"must be a mapping of column: threshold, got "
                          f"{brief(raw)}.", "write e.g. outlier_columns: {tv_spend: 25, sales: off}.")
    problems, out = [], []
    for column, value in pairs:
        if not isinstance(column, str) or not column.strip():
            problems.append(ConfigError("config-type", "checks.outlier_columns", f"has the key {brief(column)}, "
                                        "not a column name.", "write each key as a data column's name."))
            continue
        off = value is None or value is False or (isinstance(value, str) and value.strip().lower() == "off")
        if not off and not is_finite_number(value):
            problems.append(ConfigError("config-type", f"checks.outlier_columns.{column}", f"must be a number or "
                                        f"off, got {brief(value)}.", "write a robust z-score such as 25, or off."))
            continue
        out.append((column.strip(), None if off else float(value)))
    error = combined(problems)
    if error is not None:
        raise error
    return tuple(out)


_KIND_NOUNS = {SelectionCriterion: "criterion", CvScheme: "scheme"}


@dataclass(frozen=True)
class EstimationConfig:
    """Estimation settings. `seed` makes every random step (bootstrap, refuters) reproducible.
    `block_length` None: chosen from the data (Politis–White). `null_test_samples`: null datasets
    of the selection-aware test of no effect (0: skipped). Transform selection: `cv_folds`
    forward-chaining folds after an initial training window of `cv_initial_fraction` of the weeks
    (`cv_scheme: blocked`: `cv_folds` blocks, each predicted from the others), at most
    `selection_passes` coordinate passes over the channels, points chosen by `selection_criterion`;
    `selection_band`: which intervals also reach the near-equivalent transforms' estimates."""

    ci_level: float = 0.95
    bootstrap_samples: int = 400
    block_length: int | None = None
    refuter_simulations: int = 20
    null_test_samples: int = 99
    seed: int = 20240101
    cv_folds: int = 4
    cv_initial_fraction: float = 0.5
    selection_passes: int = 3
    selection_criterion: SelectionCriterion = SelectionCriterion.CV_MIN
    cv_scheme: CvScheme = CvScheme.FORWARD
    selection_band: SelectionBand = SelectionBand.MROI
    selection_average: bool = False
    """Ablation (docs/accuracy.md): publish the band's estimates averaged by predictive likelihood
    instead of the selected transforms' (effects/selection_band.py)."""
    confounder_multiple: float = 1.0
    """Hidden-confounder sensitivity: robustness is REVIEW when a confounder this many times as strong
    as the strongest observed control (in explaining spend and KPI) could make an effect not significant."""

    def __post_init__(self) -> None:
        if self.selection_band is False:  # YAML 1.1 reads an unquoted `off` as false
            object.__setattr__(self, "selection_band", SelectionBand.OFF)
        for name, kind in (("selection_criterion", SelectionCriterion), ("cv_scheme", CvScheme),
                           ("selection_band", SelectionBand)):
            value = getattr(self, name)
            if isinstance(value, kind):
                continue
            try:  # as read from YAML
                object.__setattr__(self, name, kind(value))
            except ValueError:
                raise ConfigError("config-unknown-value", f"estimation.{name}", f"is {brief(value)}, not a known "
                                  f"{_KIND_NOUNS.get(kind, 'setting')}.",
                                  f"use one of: {', '.join(m.value for m in kind)}.") from None
        require_field_types(self, "estimation")
        _range_problems(self, "estimation", [
            ("ci_level", not 0.5 < self.ci_level < 1.0, f"is {self.ci_level}.", "use a level in (0.5, 1), e.g. 0.95."),
            ("bootstrap_samples", self.bootstrap_samples < 50, f"is {self.bootstrap_samples}.",
             "use at least 50 resamples."),
            ("block_length", self.block_length is not None and self.block_length < 1, f"is {self.block_length}.",
             "use a positive number of weeks or omit it."),
            ("refuter_simulations", self.refuter_simulations < 2, f"is {self.refuter_simulations}.",
             "use at least 2: a refuter's p-value needs the spread of its simulations."),
            ("null_test_samples", self.null_test_samples != 0 and self.null_test_samples < 20,
             f"is {self.null_test_samples}.", "use at least 20 null datasets, or 0 to skip the test."),
            ("seed", self.seed < 0, f"is {self.seed}.", "use a non-negative integer seed."),
            ("cv_folds", self.cv_folds < 2, f"is {self.cv_folds}.", "use at least 2 folds, e.g. 4."),
            ("cv_initial_fraction", not 0.2 <= self.cv_initial_fraction <= 0.8, f"is {self.cv_initial_fraction}.",
             "use a share of the weeks in [0.2, 0.8], e.g. 0.5."),
            ("selection_passes", self.selection_passes < 1, f"is {self.selection_passes}.", "use at least 1 pass."),
            ("confounder_multiple", not 0.0 < self.confounder_multiple <= 10.0, f"is {self.confounder_multiple}.",
             "use a multiple in (0, 10], e.g. 1: as strong as the strongest observed control."),
        ])


@dataclass(frozen=True)
class PlanningConfig:
    """`planning: {plan: plan.yaml}`: the plan the weekly run evaluates or optimises (`budget_plan`),
    parsed and checked against the config when the config is loaded."""

    plan: Path
    """The plan file, resolved against the config's folder."""
    spec: Any = field(default=None, compare=False, repr=False)
    """The parsed plan (`cmmm_pipeline.plan.spec.PlanSpec`; typed loosely to keep the plan package off
    the config's import path)."""


@dataclass(frozen=True)
class PipelineConfig:
    source: Path
    data: DataConfig
    channels: tuple[ChannelConfig, ...]
    controls: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    features: FeatureConfig = field(default_factory=FeatureConfig)
    experiments: tuple[ExperimentConfig, ...] = ()
    checks: CheckConfig = field(default_factory=CheckConfig)
    estimation: EstimationConfig = field(default_factory=EstimationConfig)
    graph_file: Path | None = None
    latent: tuple[str, ...] = ()
    """Graph nodes with no data column (unobserved causes); DoWhy treats them as unobserved."""
    campaigns: tuple[CampaignConfig, ...] = ()
    effect_modifiers: tuple[EffectModifierConfig, ...] = ()
    interactions: tuple[tuple[str, str], ...] = ()
    """`graph.interactions`: declared channel pairs whose synergy is estimated (no other pair is)."""
    planning: PlanningConfig | None = None
    """`planning`: the plan file the weekly run refreshes `budget_plan` from (None: no plan)."""

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def kpi(self) -> str:
        return self.data.kpi

    def channel(self, name: str) -> ChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)
