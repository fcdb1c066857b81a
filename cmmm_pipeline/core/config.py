"""The config's types: frozen dataclasses whose thresholds are validated at construction, and the
enums of its modes. `core.loading` builds them from YAML."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from cmmm_pipeline.core.errors import ConfigError

SEASONALITY = "seasonality"
TREND = "trend"
GENERATED_CONTROLS = (SEASONALITY, TREND)

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


def require_field_types(section: Any, key: str) -> None:
    """Thresholds built in code get the same type checks as those read from YAML."""
    for name, spec in section.__dataclass_fields__.items():
        value = getattr(section, name)
        problem = _type_problem(value, str(spec.type))
        if problem:
            raise ConfigError("config-type", f"{key}.{name}", f"{problem}, got {value!r}.",
                              f"write a value of type {spec.type}.")


class AdstockType(Enum):
    GEOMETRIC = "geometric"
    WEIBULL = "weibull"


class SaturationType(Enum):
    HILL = "hill"


class EffectType(Enum):
    """Which paths a channel's effect flows through."""

    TOTAL = "total"
    DIRECT = "direct"
    INDIRECT = "indirect"


@dataclass(frozen=True)
class AdstockConfig:
    """Carryover. Geometric uses `decay`; Weibull uses `shape`, `scale`, `max_lag`.
    A None parameter means: select it from the data."""

    type: AdstockType = AdstockType.GEOMETRIC
    decay: float | None = None
    shape: float | None = None
    scale: float | None = None
    max_lag: int = 12


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
class CheckConfig:
    """Thresholds of the data-quality, independence and overlap gates. `overlap_min_spread` is each
    stratum's spend CV relative to the channel's overall CV."""

    min_weeks: int = 52
    independence_alpha: float = 0.05
    independence_blocking: bool = False
    overlap_bins: int = 3
    overlap_min_weeks: int = 8
    overlap_min_spread: float = 0.5

    def __post_init__(self) -> None:
        require_field_types(self, "checks")
        if self.min_weeks < 8:
            raise ConfigError("threshold-range", "checks.min_weeks", f"is {self.min_weeks}.",
                              "set at least 8 weeks; fewer cannot support any estimate.")
        if not 0.0 < self.independence_alpha < 1.0:
            raise ConfigError("threshold-range", "checks.independence_alpha",
                              f"is {self.independence_alpha}.", "use a level in (0, 1), e.g. 0.05.")
        if self.overlap_bins < 1 or self.overlap_min_weeks < 2:
            raise ConfigError("threshold-range", "checks.overlap_bins / overlap_min_weeks",
                              "must be >= 1 and >= 2.", "raise them.")
        if self.overlap_min_spread < 0:
            raise ConfigError("threshold-range", "checks.overlap_min_spread",
                              "must be >= 0.", "use a share of the channel's spend variation (stratum CV / overall CV), e.g. 0.5.")


@dataclass(frozen=True)
class EstimationConfig:
    """Estimation settings. `seed` makes every random step (bootstrap, refuters) reproducible.
    `block_length` None: chosen from the data (Politis–White). Transform selection: `cv_folds`
    forward-chaining folds after an initial training window of `cv_initial_fraction` of the weeks,
    at most `selection_passes` coordinate passes over the channels."""

    ci_level: float = 0.95
    bootstrap_samples: int = 400
    block_length: int | None = None
    refuter_simulations: int = 20
    seed: int = 20240101
    cv_folds: int = 4
    cv_initial_fraction: float = 0.5
    selection_passes: int = 3

    def __post_init__(self) -> None:
        require_field_types(self, "estimation")
        if not 0.5 < self.ci_level < 1.0:
            raise ConfigError("threshold-range", "estimation.ci_level", f"is {self.ci_level}.",
                              "use a level in (0.5, 1), e.g. 0.95.")
        if self.bootstrap_samples < 50:
            raise ConfigError("threshold-range", "estimation.bootstrap_samples",
                              f"is {self.bootstrap_samples}.", "use at least 50 resamples.")
        if self.block_length is not None and self.block_length < 1:
            raise ConfigError("threshold-range", "estimation.block_length",
                              f"is {self.block_length}.", "use a positive number of weeks or omit it.")
        if self.refuter_simulations < 1:
            raise ConfigError("threshold-range", "estimation.refuter_simulations",
                              f"is {self.refuter_simulations}.", "use at least 1.")
        if self.seed < 0:
            raise ConfigError("threshold-range", "estimation.seed", f"is {self.seed}.",
                              "use a non-negative integer seed.")
        if self.cv_folds < 2:
            raise ConfigError("threshold-range", "estimation.cv_folds", f"is {self.cv_folds}.",
                              "use at least 2 forward-chaining folds, e.g. 4.")
        if not 0.2 <= self.cv_initial_fraction <= 0.8:
            raise ConfigError("threshold-range", "estimation.cv_initial_fraction", f"is {self.cv_initial_fraction}.",
                              "use a share of the weeks in [0.2, 0.8], e.g. 0.5.")
        if self.selection_passes < 1:
            raise ConfigError("threshold-range", "estimation.selection_passes", f"is {self.selection_passes}.",
                              "use at least 1 pass.")


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
