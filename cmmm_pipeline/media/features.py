"""Transformed media: per channel adstock → scale by the mean → saturation, plus seasonality and
trend features, laid out as one column per graph node (seasonality may span several columns)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import SEASONALITY, TREND, AdstockType, ChannelConfig, PipelineConfig
from cmmm_pipeline.dag.feedback import from_name, generated_history
from cmmm_pipeline.media.transforms import (
    fourier_terms,
    geometric_adstock,
    hill_saturation,
    linear_trend,
    weibull_adstock,
    weibull_pdf_adstock,
)

WEEK = "week"

# Used when the config omits a parameter and no selection is run: moderate carryover, a
# concave curve whose half-saturation is the average week.
DEFAULT_DECAY = 0.5
DEFAULT_WEIBULL_SHAPE = 1.5
DEFAULT_WEIBULL_SCALE = 2.0
DEFAULT_HALF_SATURATION = 1.0
DEFAULT_SLOPE = 1.0


class ParameterSource(Enum):
    CONFIG = "config"
    DEFAULT = "default"
    SELECTED = "selected"


@dataclass(frozen=True)
class ChannelTransform:
    """The fully resolved transform of one channel, and where its parameters came from."""

    channel: str
    adstock: AdstockType
    decay: float
    weibull_shape: float
    weibull_scale: float
    max_lag: int
    half_saturation: float
    slope: float
    source: ParameterSource

    def adstocked(self, spend: np.ndarray) -> np.ndarray:
        if self.adstock is AdstockType.WEIBULL:
            return weibull_adstock(spend, self.weibull_shape, self.weibull_scale, self.max_lag)
        if self.adstock is AdstockType.WEIBULL_PDF:
            return weibull_pdf_adstock(spend, self.weibull_shape, self.weibull_scale, self.max_lag)
        return geometric_adstock(spend, self.decay)

    def apply(self, spend: np.ndarray, reference: float) -> np.ndarray:
        """Transformed media for `spend`; `reference` is the mean adstocked spend of the observed data,
        held fixed so that counterfactual spend (e.g. zero) is measured on the same scale."""
        return hill_saturation(self.adstocked(spend) / reference, self.half_saturation, self.slope)

    def reference(self, spend: np.ndarray) -> float:
        ref = float(np.mean(self.adstocked(spend)))
        return ref if ref > 0 else 1.0


def configured_transform(channel: ChannelConfig) -> ChannelTransform:
    """The transform as configured, with documented defaults for omitted parameters (an AUTO
    carryover defaults to geometric)."""
    a, s = channel.adstock, channel.saturation
    given = (*_given_adstock(a.type, a.decay, a.shape, a.scale), s.half_saturation, s.slope)
    source = ParameterSource.CONFIG if all(v is not None for v in given) else ParameterSource.DEFAULT
    return ChannelTransform(
        channel=channel.name, adstock=AdstockType.GEOMETRIC if a.type is AdstockType.AUTO else a.type,
        decay=DEFAULT_DECAY if a.decay is None else a.decay,
        weibull_shape=DEFAULT_WEIBULL_SHAPE if a.shape is None else a.shape,
        weibull_scale=DEFAULT_WEIBULL_SCALE if a.scale is None else a.scale,
        max_lag=a.max_lag,
        half_saturation=DEFAULT_HALF_SATURATION if s.half_saturation is None else s.half_saturation,
        slope=DEFAULT_SLOPE if s.slope is None else s.slope,
        source=source,
    )


def _given_adstock(kind: AdstockType, decay: float | None, shape: float | None,
                   scale: float | None) -> tuple[float | None, ...]:
    """The adstock parameters the config must give for `kind` to need no selection (AUTO: a family)."""
    if kind is AdstockType.AUTO:
        return (None,)
    return (decay,) if kind is AdstockType.GEOMETRIC else (shape, scale)


def needs_selection(channel: ChannelConfig) -> bool:
    """True when the config leaves any transform parameter for the data to choose."""
    a, s = channel.adstock, channel.saturation
    given = (*_given_adstock(a.type, a.decay, a.shape, a.scale), s.half_saturation, s.slope)
    return any(v is None for v in given)


def seasonality_columns(raw: pd.DataFrame, config: PipelineConfig) -> list[str]:
    """A provided `seasonality` column is used as is; otherwise Fourier terms stand for the node."""
    if SEASONALITY in raw.columns:
        return [SEASONALITY]
    order = config.features.fourier_order
    return [f"{SEASONALITY}_{kind}{k}" for k in range(1, order + 1) for kind in ("sin", "cos")]


def node_columns(raw: pd.DataFrame, config: PipelineConfig) -> dict[str, list[str]]:
    """Graph node → the feature columns that carry it (one each, except generated seasonality)."""
    out: dict[str, list[str]] = {c.name: [c.name] for c in config.channels}
    for control in config.controls:
        out[control] = seasonality_columns(raw, config) if control == SEASONALITY else [control]
    out[config.kpi] = [config.kpi]
    return out


def control_features(raw: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Controls as model columns: observed ones copied; seasonality, trend and the KPI's past
    (`kpi_lag52`, `kpi_mean_last4`, ...) generated when the data lacks them."""
    n = len(raw)
    out = pd.DataFrame(index=raw.index)
    for control in config.controls:
        if control == SEASONALITY and SEASONALITY not in raw.columns:
            terms = fourier_terms(n, config.features.fourier_order)
            for j, name in enumerate(seasonality_columns(raw, config)):
                out[name] = terms[:, j]
        elif control == TREND and TREND not in raw.columns:
            out[TREND] = linear_trend(n)
        elif control not in raw.columns and (history := from_name(control, config.kpi)) is not None:
            out[control] = generated_history(raw[config.kpi].to_numpy(dtype=float), history)
        else:
            out[control] = raw[control].astype(float)
    return out


def build_features(raw: pd.DataFrame, config: PipelineConfig,
                   transforms: dict[str, ChannelTransform]) -> pd.DataFrame:
    """The model table: week, transformed media per channel, control columns, the KPI."""
    out = pd.DataFrame({WEEK: raw[WEEK].to_numpy()})
    for channel in config.channels:
        spend = raw[channel.spend_column].to_numpy(dtype=float)
        t = transforms[channel.name]
        out[channel.name] = t.apply(spend, t.reference(spend))
    controls = control_features(raw, config)
    for column in controls.columns:
        out[column] = controls[column].to_numpy()
    out[config.kpi] = raw[config.kpi].to_numpy(dtype=float)
    return out


def transforms_table(transforms: dict[str, ChannelTransform], cv_errors: dict[str, float] | None = None,
                     grid_edges: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The resolved parameters, for the warehouse and the report; `cv_error` is the out-of-sample
    error at the chosen point for channels whose parameters were selected from the data, and
    `grid_edge` names the selected parameters that sit on an edge of their grid (the truth may lie
    beyond it, or the data cannot tell the values apart)."""
    errors, edges = cv_errors or {}, grid_edges or {}
    return pd.DataFrame([{
        "channel": t.channel, "adstock": t.adstock.value, "decay": t.decay, "weibull_shape": t.weibull_shape,
        "weibull_scale": t.weibull_scale, "max_lag": t.max_lag, "half_saturation": t.half_saturation,
        "slope": t.slope, "source": t.source.value, "cv_error": float(errors.get(t.channel, float("nan"))),
        "grid_edge": ", ".join(edges.get(t.channel, ())),
    } for t in transforms.values()])


def transforms_from_table(table: pd.DataFrame) -> dict[str, ChannelTransform]:
    """Inverse of `transforms_table`, so downstream steps reuse exactly what was applied."""
    out: dict[str, ChannelTransform] = {}
    for row in table.to_dict("records"):
        out[row["channel"]] = ChannelTransform(
            channel=row["channel"], adstock=AdstockType(row["adstock"]), decay=float(row["decay"]),
            weibull_shape=float(row["weibull_shape"]), weibull_scale=float(row["weibull_scale"]),
            max_lag=int(row["max_lag"]), half_saturation=float(row["half_saturation"]),
            slope=float(row["slope"]), source=ParameterSource(row["source"]))
    return out
