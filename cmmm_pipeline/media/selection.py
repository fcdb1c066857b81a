"""Transform parameters chosen from the data, by one objective only.

Where the config leaves a channel's adstock or saturation parameters out, they are chosen on a
modest per-channel grid by the out-of-sample error of the KPI regression (all channels + all
controls) under expanding-window, forward-chaining time-series cross validation: fold j trains on
weeks [0, m_{j-1}) and predicts weeks [m_{j-1}, m_j) (or, `CvScheme.BLOCKED`, every block of weeks
is predicted from all the others). Channels are searched coordinate-wise (each
channel's whole grid with the others held at their current values) until a pass changes nothing.
Configured values are used as given: they are single points on their axis of the grid.

The in-sample residual sum of squares (the transform's profile likelihood) is recorded beside the
CV error and can be the criterion (`in_sample`). It picks curvature better at one selection, but
it also picks, for a channel without effect, the curve that fits the noise best (the test of no
effect's null dispersion grows by half), and once the bootstrap smooths over re-selections it errs
more than cross validation (`benchmarks/curvature_study.py`, docs/transforms.md).

The same kernel serves the bootstrap, which re-selects inside every resample: the transformed
series of every grid point is computed once on the full series, and a resample only gathers rows.
The cross-validation error of all grid points of all resamples comes from per-segment sums of
cross products (Frisch–Waugh on the normal equations), so its cost is one pass over the rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import (AdstockType, ChannelConfig, CvScheme, EstimationConfig, PipelineConfig,
                                       SelectionCriterion)
from cmmm_pipeline.core.threads import numeric_step
from cmmm_pipeline.media.features import (
    DEFAULT_DECAY,
    DEFAULT_HALF_SATURATION,
    DEFAULT_SLOPE,
    DEFAULT_WEIBULL_SCALE,
    DEFAULT_WEIBULL_SHAPE,
    ChannelTransform,
    ParameterSource,
    configured_transform,
    control_features,
    needs_selection,
)

SELECTION_COLUMNS = ["channel", "adstock", "decay", "weibull_shape", "weibull_scale", "half_saturation", "slope",
                     "fit_rmse", "cv_error", "selected", "grid_edge"]


@dataclass(frozen=True)
class ParameterGrid:
    """The candidate values of each parameter the config may leave out. Modest on purpose: the
    KPI regression cannot tell nearby values apart, and a large grid only buys overfitting."""

    decays: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    weibull_shapes: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    weibull_scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    weibull_pdf_shapes: tuple[float, ...] = (2.0, 4.0)
    """Delayed-peak kernels: with the scales below, their weights peak at lags 1–4 weeks."""
    weibull_pdf_scales: tuple[float, ...] = (2.0, 3.5, 5.0)
    half_saturations: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    slopes: tuple[float, ...] = (1.0, 1.5, 2.0)

    def __post_init__(self) -> None:
        axes = self.axes()
        for name, values in axes.items():
            if not values:
                raise ValueError(f"parameter grid axis '{name}' is empty")
        if any(not 0.0 <= d < 1.0 for d in self.decays):
            raise ValueError("grid decays must lie in [0, 1)")
        if any(v <= 0 for name, values in axes.items() if name != "decays" for v in values):
            raise ValueError("grid shapes, scales, half-saturations and slopes must be > 0")

    def axes(self) -> dict[str, tuple[float, ...]]:
        return {"decays": self.decays, "weibull_shapes": self.weibull_shapes, "weibull_scales": self.weibull_scales,
                "weibull_pdf_shapes": self.weibull_pdf_shapes, "weibull_pdf_scales": self.weibull_pdf_scales,
                "half_saturations": self.half_saturations, "slopes": self.slopes}

    def edges(self, transform: ChannelTransform) -> tuple[str, ...]:
        """The parameters of `transform` that sit on the edge of their grid axis: where the truth
        may lie beyond the grid, or the data cannot tell the values apart (a flat CV surface)."""
        kind = transform.adstock
        checks = [("half_saturation", transform.half_saturation, self.half_saturations),
                  ("slope", transform.slope, self.slopes)]
        if kind is AdstockType.GEOMETRIC:
            checks.append(("decay", transform.decay, self.decays))
        elif kind is AdstockType.WEIBULL_PDF:
            checks += [("weibull_shape", transform.weibull_shape, self.weibull_pdf_shapes),
                       ("weibull_scale", transform.weibull_scale, self.weibull_pdf_scales)]
        else:
            checks += [("weibull_shape", transform.weibull_shape, self.weibull_shapes),
                       ("weibull_scale", transform.weibull_scale, self.weibull_scales)]
        return tuple(name for name, value, axis in checks
                     if len(axis) > 1 and value in (min(axis), max(axis)))


@dataclass(frozen=True)
class SelectionSettings:
    """How the cross validation is run: `folds` forward-chaining folds after an initial training
    window of `initial_fraction` of the weeks (`scheme` BLOCKED: `folds` blocks over all the weeks);
    at most `max_passes` coordinate passes."""

    folds: int = 4
    initial_fraction: float = 0.5
    max_passes: int = 3
    grid: ParameterGrid = field(default_factory=ParameterGrid)
    criterion: SelectionCriterion = SelectionCriterion.CV_MIN
    scheme: CvScheme = CvScheme.FORWARD

    @classmethod
    def from_config(cls, estimation: EstimationConfig) -> SelectionSettings:
        """The cross validation the config's `estimation` section asks for, on the default grid."""
        return cls(folds=estimation.cv_folds, initial_fraction=estimation.cv_initial_fraction,
                   max_passes=estimation.selection_passes, criterion=estimation.selection_criterion,
                   scheme=estimation.cv_scheme)

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError("time-series cross validation needs at least 2 folds")
        if not 0.2 <= self.initial_fraction <= 0.8:
            raise ValueError("the initial training window must be between 20% and 80% of the weeks")
        if self.max_passes < 1:
            raise ValueError("at least one coordinate pass is needed")


# ---------------------------------------------------------------------------------------------
# Candidates


def channel_candidates(channel: ChannelConfig, grid: ParameterGrid) -> tuple[ChannelTransform, ...]:
    """Every grid point for the parameters the config omits; configured parameters stay fixed."""
    base = configured_transform(channel)
    if not needs_selection(channel):
        return (base,)
    a, s = channel.adstock, channel.saturation
    ks = grid.half_saturations if s.half_saturation is None else (s.half_saturation,)
    slopes = grid.slopes if s.slope is None else (s.slope,)
    adstocks = []
    if a.type in (AdstockType.GEOMETRIC, AdstockType.AUTO):
        adstocks += [(AdstockType.GEOMETRIC, d, base.weibull_shape, base.weibull_scale)
                     for d in (grid.decays if a.decay is None else (a.decay,))]
    if a.type in (AdstockType.WEIBULL_PDF, AdstockType.AUTO):
        shapes = grid.weibull_pdf_shapes if a.shape is None else (a.shape,)
        scales = grid.weibull_pdf_scales if a.scale is None else (a.scale,)
        adstocks += [(AdstockType.WEIBULL_PDF, base.decay, sh, sc) for sh, sc in itertools.product(shapes, scales)]
    if a.type is AdstockType.WEIBULL:
        shapes = grid.weibull_shapes if a.shape is None else (a.shape,)
        scales = grid.weibull_scales if a.scale is None else (a.scale,)
        adstocks += [(AdstockType.WEIBULL, base.decay, sh, sc) for sh, sc in itertools.product(shapes, scales)]
    return tuple(replace(base, adstock=kind, decay=d, weibull_shape=sh, weibull_scale=sc, half_saturation=k,
                         slope=sl, source=ParameterSource.SELECTED)
                 for (kind, d, sh, sc), k, sl in itertools.product(adstocks, ks, slopes))


def candidate_series(spend: np.ndarray, candidates: Sequence[ChannelTransform]) -> np.ndarray:
    """(weeks, candidates): each candidate's transformed media, exactly as `build_features` makes it."""
    out = np.empty((len(spend), len(candidates)))
    for j, t in enumerate(candidates):
        out[:, j] = t.apply(spend, t.reference(spend))
    return out


WEIBULL_PDF_PENALTY = 1.0
"""Distance a delayed-peak kernel adds to the reference: geometric carryover stays the choice
unless the data prefer the delay beyond one standard error."""


def reference_distance(t: ChannelTransform) -> float:
    """How far a candidate lies from the reference transform (the documented defaults), in log
    units for the scale parameters: the tie-breaker among candidates the data cannot tell apart."""
    if t.adstock is AdstockType.GEOMETRIC:
        adstock = abs(t.decay - DEFAULT_DECAY)
    else:
        adstock = abs(np.log(t.weibull_shape / DEFAULT_WEIBULL_SHAPE)) + abs(np.log(t.weibull_scale / DEFAULT_WEIBULL_SCALE))
        adstock += WEIBULL_PDF_PENALTY if t.adstock is AdstockType.WEIBULL_PDF else 0.0
    return adstock + abs(np.log(t.half_saturation / DEFAULT_HALF_SATURATION)) + abs(np.log(t.slope / DEFAULT_SLOPE))


def _start_index(candidates: Sequence[ChannelTransform]) -> int:
    """The grid point nearest the reference: where the coordinate search begins."""
    return int(np.argmin([reference_distance(t) for t in candidates]))


@dataclass(frozen=True)
class SelectionInputs:
    """Everything the selection regression needs, on the full series: per channel the candidate
    transforms and their series, the intercept and control columns, and the (centred) KPI."""

    channels: tuple[str, ...]
    candidates: tuple[tuple[ChannelTransform, ...], ...]
    series: tuple[np.ndarray, ...]
    base: np.ndarray
    y: np.ndarray

    @property
    def searchable(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.candidates) if len(c) > 1)

    def start(self) -> np.ndarray:
        return np.array([_start_index(c) for c in self.candidates])

    def distances(self, k: int) -> np.ndarray:
        return np.array([reference_distance(t) for t in self.candidates[k]])

    def column(self, channel: str, rows: np.ndarray, selected: np.ndarray) -> np.ndarray:
        """(B, weeks) the channel's series at each resample's selected grid point, on its rows."""
        k = self.channels.index(channel)
        return self.series[k][rows, selected[:, k][:, None]]


def selection_inputs(raw: pd.DataFrame, config: PipelineConfig,
                     candidates: dict[str, tuple[ChannelTransform, ...]]) -> SelectionInputs:
    controls = control_features(raw, config).to_numpy(dtype=float)
    y = raw[config.kpi].to_numpy(dtype=float)
    names = tuple(config.channel_names)
    return SelectionInputs(
        channels=names, candidates=tuple(candidates[c] for c in names),
        series=tuple(candidate_series(raw[config.channel(c).spend_column].to_numpy(dtype=float), candidates[c])
                     for c in names),
        base=np.column_stack([np.ones(len(raw)), controls]), y=y - y.mean())


# ---------------------------------------------------------------------------------------------
# Cross validation kernel


def fold_bounds(n: int, folds: int, initial_fraction: float) -> np.ndarray:
    """Segment edges [0, m0, m1, ..., n]: fold j trains on [0, m_{j-1}) and tests on [m_{j-1}, m_j)."""
    first = int(round(n * initial_fraction))
    return np.concatenate([[0], np.linspace(first, n, folds + 1).round().astype(int)])


@dataclass(frozen=True)
class Folds:
    """How the cross validation splits n weeks: segment edges [0, e1, ..., n] and their use.
    FORWARD: fold j trains on the segments before segment j and tests on it; the first segment (the
    initial training window) is never tested. BLOCKED: every segment is tested once, trained on all
    the others, past and future: every week is predicted, so a curve is judged over the whole
    range of spend, not only the later weeks'."""

    edges: np.ndarray
    scheme: CvScheme = CvScheme.FORWARD

    @classmethod
    def of(cls, n: int, settings: SelectionSettings) -> Folds:
        if settings.scheme is CvScheme.BLOCKED:
            return cls(np.linspace(0, n, settings.folds + 1).round().astype(int), CvScheme.BLOCKED)
        return cls(fold_bounds(n, settings.folds, settings.initial_fraction))

    @property
    def test_sizes(self) -> np.ndarray:
        """(folds,) weeks in each test fold."""
        sizes = np.diff(self.edges)
        return sizes if self.scheme is CvScheme.BLOCKED else sizes[1:]

    @property
    def test_weeks(self) -> int:
        return int(self.test_sizes.sum())


def cv_errors(fixed: np.ndarray, candidates: np.ndarray, y: np.ndarray, folds: Folds) -> np.ndarray:
    """(B, G) out-of-sample RMSE of y ~ fixed + candidate g, for every resample b and grid point g."""
    sse = cv_fold_sse(fixed, candidates, y, folds).sum(axis=2)
    return np.sqrt(np.maximum(sse, 0.0) / folds.test_weeks)


def cv_fold_sse(fixed: np.ndarray, candidates: np.ndarray, y: np.ndarray, folds: Folds) -> np.ndarray:
    """(B, G, folds) out-of-sample sum of squared errors of y ~ fixed + candidate g per test fold.

    fixed (B, n, p) holds the regressors shared by all candidates, candidates (B, n, G) the
    alternative series of one channel, y (B, n). Per segment we accumulate F'F, F'y, F'C, C'y,
    diag C'C and y'y; the training sums of a fold are the sums of the segments before it (forward)
    or of all segments but its own (blocked). The candidate's coefficient comes from Frisch–Waugh
    (partial out F), and the test error expands into the same sums, so no per-candidate regression
    is ever formed.
    """
    b, _, p = fixed.shape
    g = candidates.shape[2]
    ft = fixed.transpose(0, 2, 1)
    seg = []
    for lo, hi in zip(folds.edges[:-1], folds.edges[1:]):
        f, c, yy = fixed[:, lo:hi], candidates[:, lo:hi], y[:, lo:hi]
        seg.append((ft[:, :, lo:hi] @ f, np.einsum("bnp,bn->bp", f, yy), ft[:, :, lo:hi] @ c,
                    np.einsum("bng,bn->bg", c, yy), np.einsum("bng,bng->bg", c, c), np.einsum("bn,bn->b", yy, yy)))
    sse = np.zeros((b, g, len(folds.test_sizes)))
    ridge = 1e-10 * np.eye(p)
    for j, (train, test) in enumerate(_train_test_sums(seg, folds.scheme)):
        ff_tr, fy_tr, fc_tr, cy_tr, cc_tr, _ = train
        scale = np.maximum(np.einsum("bpp->bp", ff_tr), 1e-12)[:, :, None]
        sol = np.linalg.solve(ff_tr + ridge * scale, np.concatenate([fy_tr[:, :, None], fc_tr], axis=2))
        a_y, a_c = sol[:, :, 0], sol[:, :, 1:]
        r_cy = cy_tr - np.einsum("bpg,bp->bg", fc_tr, a_y)
        r_cc = cc_tr - np.einsum("bpg,bpg->bg", fc_tr, a_c)
        ok = r_cc > 1e-10 * np.maximum(cc_tr, 1e-300)
        beta = np.where(ok, r_cy / np.where(ok, r_cc, 1.0), 0.0)
        ff, fy, fc, cy, cc, yy = test
        ffa_c = ff @ a_c
        uu = yy - 2 * np.einsum("bp,bp->b", a_y, fy) + np.einsum("bp,bpq,bq->b", a_y, ff, a_y)
        uv = cy - np.einsum("bpg,bp->bg", a_c, fy) - np.einsum("bpg,bp->bg", fc, a_y) \
            + np.einsum("bpg,bp->bg", ffa_c, a_y)
        vv = cc - 2 * np.einsum("bpg,bpg->bg", a_c, fc) + np.einsum("bpg,bpg->bg", a_c, ffa_c)
        sse[:, :, j] = np.where(ok, np.maximum(uu[:, None] - 2 * beta * uv + beta**2 * vv, 0.0), np.inf)
    return sse


def _train_test_sums(seg: list[tuple[np.ndarray, ...]],
                     scheme: CvScheme) -> Iterator[tuple[list[np.ndarray], tuple[np.ndarray, ...]]]:
    """Per test fold in turn, (its training sums, its own sums), from the per-segment sums; one
    fold's training sums held at a time."""
    if scheme is CvScheme.BLOCKED:
        total = [sum(parts) for parts in zip(*seg)]
        for part in seg:
            yield [t - s for t, s in zip(total, part)], part
        return
    train = list(seg[0])
    for part in seg[1:]:
        yield train, part
        train = [t + s for t, s in zip(train, part)]


def _channel_design(inputs: SelectionInputs, rows: np.ndarray, selected: np.ndarray, k: int,
                    y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    others = [inputs.series[i][rows, selected[:, i][:, None]] for i in range(len(inputs.channels)) if i != k]
    fixed = np.concatenate([inputs.base[rows], np.stack(others, axis=2)], axis=2) if others else inputs.base[rows]
    return fixed, inputs.series[k][rows], inputs.y[rows] if y is None else y


def _channel_fold_sse(inputs: SelectionInputs, rows: np.ndarray, selected: np.ndarray, k: int,
                      folds: Folds, y: np.ndarray | None = None) -> np.ndarray:
    return cv_fold_sse(*_channel_design(inputs, rows, selected, k, y), folds)


def _channel_choice(inputs: SelectionInputs, rows: np.ndarray, selected: np.ndarray, k: int, folds: Folds,
                    criterion: SelectionCriterion, y: np.ndarray | None = None) -> np.ndarray:
    """(B,) channel k's chosen grid index per row set, the other channels held at `selected`."""
    if criterion is SelectionCriterion.IN_SAMPLE:
        return in_sample_sse(*_channel_design(inputs, rows, selected, k, y)).argmin(axis=1)
    return pick(_channel_fold_sse(inputs, rows, selected, k, folds, y), folds, inputs.distances(k), criterion)


def in_sample_sse(fixed: np.ndarray, candidates: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, G) residual sum of squares of y ~ fixed + candidate g on all rows (Frisch–Waugh, as in
    `cv_fold_sse`: the candidate's column is partialled on the shared regressors)."""
    r_yy, r_cy, r_cc, ok = _partialled_sums(fixed, candidates, y)
    return np.where(ok, np.maximum(r_yy[:, None] - r_cy**2 / np.where(ok, r_cc, 1.0), 0.0), np.inf)


def in_sample_coefficients(fixed: np.ndarray, candidates: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, G) candidate g's coefficient in y ~ fixed + candidate g on all rows (NaN where the candidate
    has no variation of its own once the shared regressors are partialled out)."""
    _, r_cy, r_cc, ok = _partialled_sums(fixed, candidates, y)
    return np.where(ok, r_cy / np.where(ok, r_cc, 1.0), np.nan)


def _partialled_sums(fixed: np.ndarray, candidates: np.ndarray,
                     y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """y'y, c'y and c'c with y and every candidate c partialled on the shared regressors, and where
    the candidate keeps enough of its own variation to be estimated."""
    p = fixed.shape[2]
    ft = fixed.transpose(0, 2, 1)
    ff, fy, fc = ft @ fixed, np.einsum("bnp,bn->bp", fixed, y), ft @ candidates
    cy, cc, yy = np.einsum("bng,bn->bg", candidates, y), np.einsum("bng,bng->bg", candidates, candidates), \
        np.einsum("bn,bn->b", y, y)
    scale = np.maximum(np.einsum("bpp->bp", ff), 1e-12)[:, :, None]
    sol = np.linalg.solve(ff + 1e-10 * np.eye(p) * scale, np.concatenate([fy[:, :, None], fc], axis=2))
    a_y, a_c = sol[:, :, 0], sol[:, :, 1:]
    r_yy = yy - np.einsum("bp,bp->b", a_y, fy)
    r_cy = cy - np.einsum("bpg,bp->bg", fc, a_y)
    r_cc = cc - np.einsum("bpg,bpg->bg", fc, a_c)
    return r_yy, r_cy, r_cc, r_cc > 1e-10 * np.maximum(cc, 1e-300)


def rmse(fold_sse: np.ndarray, folds: Folds) -> np.ndarray:
    """(B, G) cross-validation RMSE from per-fold sums of squared errors."""
    return np.sqrt(fold_sse.sum(axis=2) / folds.test_weeks)


def pick(fold_sse: np.ndarray, folds: Folds, distances: np.ndarray, criterion: SelectionCriterion) -> np.ndarray:
    """(B,) the chosen grid index per resample (see `SelectionCriterion`; the band: `within_one_se`)."""
    if criterion is SelectionCriterion.CV_MIN:
        return rmse(fold_sse, folds).argmin(axis=1)
    return np.where(within_one_se(fold_sse, folds), distances[None, :], np.inf).argmin(axis=1)


def within_one_se(fold_sse: np.ndarray, folds: Folds) -> np.ndarray:
    """(B, G) the candidates the folds cannot tell from the best one: each candidate's per-fold mean
    squared error minus the best candidate's (paired, so the noise the folds share cancels), whose
    mean is at most its standard error."""
    best = rmse(fold_sse, folds).argmin(axis=1)
    fold_mse = fold_sse / folds.test_sizes
    diff = fold_mse - np.take_along_axis(fold_mse, best[:, None, None], axis=1)
    se = diff.std(axis=2, ddof=1) / np.sqrt(diff.shape[2])
    return np.isfinite(diff).all(axis=2) & (diff.mean(axis=2) <= se)


def coordinate_search(inputs: SelectionInputs, rows: np.ndarray, start: np.ndarray, folds: Folds,
                      max_passes: int, criterion: SelectionCriterion = SelectionCriterion.CV_MIN,
                      y: np.ndarray | None = None) -> np.ndarray:
    """(B, channels) selected grid indices for each row set in `rows` (B, weeks): each pass
    re-chooses every searchable channel given the others, until a pass changes nothing. `y`
    (B, weeks): a KPI per row set in place of the observed one on those rows."""
    selected = np.tile(np.asarray(start), (rows.shape[0], 1))
    for _ in range(max_passes):
        changed = False
        for k in inputs.searchable:
            best = _channel_choice(inputs, rows, selected, k, folds, criterion, y)
            changed |= bool(np.any(best != selected[:, k]))
            selected[:, k] = best
        if not changed:
            break
    return selected


def near_equivalent(inputs: SelectionInputs, selected: np.ndarray, settings: SelectionSettings) -> np.ndarray:
    """(A, channels) the selections the data cannot tell from `selected` (channels,): for each
    searchable channel, every other grid point within the one-SE band of its best, the other
    channels held at their selection. The applied selection itself is not among them."""
    n = inputs.y.size
    rows = np.arange(n)[None, :]
    folds = Folds.of(n, settings)
    out = []
    for k in inputs.searchable:
        band = np.flatnonzero(within_one_se(_channel_fold_sse(inputs, rows, selected[None, :], k, folds), folds)[0])
        for g in band[band != selected[k]]:
            alternative = np.array(selected, copy=True)
            alternative[k] = g
            out.append(alternative)
    return np.array(out, dtype=int).reshape(-1, len(inputs.channels))


def near_equivalent_fit(inputs: SelectionInputs, selected: np.ndarray,
                        settings: SelectionSettings) -> tuple[np.ndarray, np.ndarray, float]:
    """`near_equivalent`'s selections (A, channels) with their cross-validation mean squared errors
    (A,), and the applied selection's: each is a whole model (one channel changed, the others at
    their selection), so the errors compare across channels."""
    n = inputs.y.size
    rows = np.arange(n)[None, :]
    folds = Folds.of(n, settings)
    out, errors = [], []
    applied = float("nan")
    for k in inputs.searchable:
        fold_sse = _channel_fold_sse(inputs, rows, selected[None, :], k, folds)
        mse = fold_sse.sum(axis=2)[0] / folds.test_weeks
        applied = float(mse[selected[k]])
        band = np.flatnonzero(within_one_se(fold_sse, folds)[0])
        for g in band[band != selected[k]]:
            alternative = np.array(selected, copy=True)
            alternative[k] = g
            out.append(alternative)
            errors.append(float(mse[g]))
    return np.array(out, dtype=int).reshape(-1, len(inputs.channels)), np.array(errors, dtype=float), applied


def predictive_weights(mse: np.ndarray, test_weeks: int) -> np.ndarray:
    """Weights of models from their out-of-sample mean squared errors: each model's Gaussian
    predictive likelihood of the test weeks, exp(−(m/2)·log MSE), normalised (pseudo-Bayesian model
    averaging). A model whose error is 1% above the best's on 78 test weeks weighs 0.68 of it."""
    log_lik = -0.5 * test_weeks * np.log(np.asarray(mse, dtype=float))
    finite = np.isfinite(log_lik)
    if not finite.any():
        return np.full(len(mse), 1.0 / len(mse))
    w = np.where(finite, np.exp(log_lik - log_lik[finite].max()), 0.0)
    return w / w.sum()


def reselect(inputs: SelectionInputs, rows: np.ndarray, start: np.ndarray, settings: SelectionSettings,
             chunk: int = 64) -> np.ndarray:
    """`coordinate_search` over many resamples, in chunks that bound memory (B × weeks × grid)."""
    folds = Folds.of(rows.shape[1], settings)
    if not inputs.searchable:
        return np.tile(np.asarray(start), (rows.shape[0], 1))
    return np.concatenate([coordinate_search(inputs, rows[i:i + chunk], start, folds, settings.max_passes,
                                             settings.criterion)
                           for i in range(0, rows.shape[0], chunk)])


# ---------------------------------------------------------------------------------------------
# The pipeline's selection step


@dataclass(frozen=True)
class SelectionResult:
    transforms: dict[str, ChannelTransform]
    """The resolved transform of every channel (configured ones as given)."""
    cv_error: dict[str, float]
    """Out-of-sample RMSE at the selected point, for the channels that were selected."""
    table: pd.DataFrame
    """The grid of every selected channel with its CV error; `selected` marks the choice."""
    selected_index: dict[str, int]
    """Channel → the index of the applied transform among its candidates."""
    candidates: dict[str, tuple[ChannelTransform, ...]]
    """Channel → every candidate searched (one for a configured channel): what the bootstrap re-selects from."""
    grid_edges: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per selected channel, the parameters whose chosen value is an edge of its grid axis."""


@numeric_step()
def select_transforms(raw: pd.DataFrame, config: PipelineConfig, settings: SelectionSettings) -> SelectionResult:
    """Choose the omitted transform parameters of every channel by time-series CV error."""
    candidates = {c.name: channel_candidates(c, settings.grid) for c in config.channels}
    inputs = selection_inputs(raw, config, candidates)
    rows = np.arange(len(raw))[None, :]
    folds = Folds.of(len(raw), settings)
    chosen = coordinate_search(inputs, rows, inputs.start(), folds, settings.max_passes, settings.criterion)
    transforms, errors, frames, index = {}, {}, [], {}
    for k, name in enumerate(inputs.channels):
        pick = int(chosen[0, k])
        transforms[name] = inputs.candidates[k][pick]
        index[name] = pick
        if k not in inputs.searchable:
            continue
        cv = rmse(_channel_fold_sse(inputs, rows, chosen, k, folds), folds)[0]
        fit = np.sqrt(in_sample_sse(*_channel_design(inputs, rows, chosen, k, None))[0] / len(raw))
        errors[name] = float(cv[pick])
        frames.append(candidates_table(inputs.candidates[k], cv, pick, settings.grid, fit))
    table = pd.concat(frames, ignore_index=True) if frames else empty_selection_table()
    edges_hit = {name: settings.grid.edges(transforms[name]) for name in errors}
    return SelectionResult(transforms, errors, table, index, candidates, edges_hit)


def candidates_table(candidates: Sequence[ChannelTransform], cv: np.ndarray, pick: int,
                     grid: ParameterGrid, fit: np.ndarray | None = None) -> pd.DataFrame:
    """The searched grid of one channel: every candidate, its in-sample RMSE (`fit_rmse`) and CV
    error, the choice, and which of its parameters sit on an edge of their grid axis (`grid_edge`,
    comma-separated; empty if none)."""
    return pd.DataFrame({
        "channel": [t.channel for t in candidates], "adstock": [t.adstock.value for t in candidates],
        "decay": [t.decay for t in candidates], "weibull_shape": [t.weibull_shape for t in candidates],
        "weibull_scale": [t.weibull_scale for t in candidates],
        "half_saturation": [t.half_saturation for t in candidates], "slope": [t.slope for t in candidates],
        "fit_rmse": np.full(len(candidates), np.nan) if fit is None else np.asarray(fit, dtype=float),
        "cv_error": np.asarray(cv, dtype=float), "selected": np.arange(len(candidates)) == pick,
        "grid_edge": [", ".join(grid.edges(t)) for t in candidates]})


def empty_selection_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string" if c in ("channel", "adstock", "grid_edge") else
                                      "bool" if c == "selected" else "float64") for c in SELECTION_COLUMNS})
