"""A second simulator family, written apart from `cmmm_pipeline.simulation.simulate`, to judge the
pipeline on worlds it was not designed for.

What differs from the project's own simulator, on purpose:

- carryover is a Weibull probability density over lags (TV's effect peaks two to three weeks after the
  spend), not a geometric decay;
- saturation is a Hill curve or a shifted logistic (an S-curve with an inflection), both on spend in
  currency units rather than relative to the mean week;
- spend comes from budgets: TV and digital can share one budget (collinear plans), TV runs in flights,
  other channels pulse (dark weeks) or are always on, and a channel can launch late;
- search spend responds linearly to TV's carried-over spend (not to TV's saturated media);
- the KPI has a linear trend, a two-harmonic season and AR(1) noise.

The truth is computed by intervention on the same equations with every noise term held fixed: ROI
against zero spend in every week (mediators recomputed: the total effect), and the marginal ROI of
raising every week's spend by 1% (total effect through the mediators).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
import pandas as pd

WEEKS_PER_YEAR = 52.18
MROI_STEP = 0.01
"""The marginal ROI's spend increase: every week's spend of the channel times 1.01."""
LOW_SPEND_SHARE = 0.05
"""A week is a low-spend week when the channel spends at most this share of its mean week."""
MIN_LOW_SPEND_WEEKS = 4
"""Zero spend lies within a channel's support when the data show at least this many low-spend weeks."""


class Curve(Enum):
    """The shape of a channel's response to carried-over spend."""

    HILL = "hill"
    LOGISTIC = "logistic"


class Plan(Enum):
    """How a channel's weekly spend is decided."""

    FLIGHTS = "flights"
    """On air in blocks of weeks, dark in others (TV)."""
    PULSED = "pulsed"
    """Dark in a random share of weeks."""
    ALWAYS_ON = "always_on"
    """Never dark: the data never show the zero-spend level."""


@dataclass(frozen=True)
class Carryover:
    """Weibull-PDF lag weights: weight(l) ∝ pdf(l + 0.5; shape, scale), l = 0..max_lag-1, summing to 1.
    A shape above 1 puts the peak after lag 0 (the delayed response of TV)."""

    shape: float
    scale: float
    max_lag: int = 10

    def weights(self) -> np.ndarray:
        x = np.arange(self.max_lag) + 0.5
        k, lam = self.shape, self.scale
        pdf = (k / lam) * (x / lam) ** (k - 1.0) * np.exp(-((x / lam) ** k))
        return pdf / pdf.sum()


@dataclass(frozen=True)
class Response:
    """Saturation on carried-over spend in currency units. HILL: x^s / (x^s + k^s) with k = `midpoint`.
    LOGISTIC: an S-curve with its inflection at `midpoint` and steepness `steepness` per unit of
    midpoint, shifted so that zero spend gives zero and rescaled to approach 1."""

    curve: Curve
    midpoint: float
    steepness: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        if self.curve is Curve.HILL:
            ratio = (x / self.midpoint) ** self.steepness
            return ratio / (1.0 + ratio)
        r = self.steepness / self.midpoint
        at_zero = 1.0 / (1.0 + np.exp(r * self.midpoint))
        return (1.0 / (1.0 + np.exp(-r * (x - self.midpoint))) - at_zero) / (1.0 - at_zero)


@dataclass(frozen=True)
class ChannelSpec:
    """One channel: how its spend is planned and how the KPI responds to it.

    Parameters
    ----------
    mean_spend : float
        Typical spend in an active week (currency).
    plan : Plan
        Flights, pulsed or always on.
    dark_share : float
        Share of dark weeks (pulsed) or of dark four-week blocks (flights).
    season_loading : float
        How strongly the season moves the spend (log scale): a confounder when > 0.
    effect : float
        The KPI a fully saturated week adds; 0 makes a null channel.
    carryover, response : Carryover, Response
        The true transforms.
    launch_week : int
        Weeks before the channel's first spend (a late launch).
    """

    mean_spend: float
    plan: Plan
    effect: float
    carryover: Carryover
    response: Response
    dark_share: float = 0.2
    season_loading: float = 0.0
    launch_week: int = 0


SHARED_BUDGET = ("tv", "digital")
MEDIATED = ("tv", "search")
"""TV's carried-over spend drives search spend."""


@dataclass(frozen=True)
class World:
    """One held-out world: its channels, history length, shared budget, mediator and KPI."""

    name: str
    description: str
    channels: dict[str, ChannelSpec]
    n_weeks: int = 104
    shared_budget: float = 0.0
    """Share of TV's and digital's log-spend variation that comes from one common budget (0 = own plans)."""
    search_per_tv: float = 1.5
    """Search spend = base · (1 + this · TV carried-over spend / its mean) · noise."""
    base_kpi: float = 20000.0
    trend_per_year: float = 1500.0
    season_effect: float = 2500.0
    noise_sd: float = 250.0
    noise_ar: float = 0.4
    start: str = "2022-01-03"
    hidden_loading: float = 0.0
    """An unobserved demand driver (AR(1), scaled like the season) that moves TV's log spend with this
    loading (like `season_loading`) and the KPI by `season_effect` × this / TV's season loading: at
    TV's season loading it is as strong as the season. 0 leaves the world as without it."""

    @property
    def nulls(self) -> tuple[str, ...]:
        return tuple(name for name, ch in self.channels.items() if ch.effect == 0.0)


@dataclass(frozen=True)
class Draw:
    """One dataset and its causal truth."""

    world: World
    seed: int
    data: pd.DataFrame
    """week, one `<channel>_spend` column per channel, sales."""
    truth: pd.DataFrame
    """channel, spend, roi, mroi, zero_in_support, always_on, null."""


def season_curve(n_weeks: int) -> np.ndarray:
    """An annual cycle with a sharper peak than a sine: two harmonics."""
    w = 2.0 * np.pi * np.arange(n_weeks) / WEEKS_PER_YEAR
    return np.cos(w - 0.6) + 0.35 * np.cos(2.0 * w + 0.9)


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    innovations = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + innovations[t]
    return out


def carry(spend: np.ndarray, carryover: Carryover) -> np.ndarray:
    """Carried-over spend: the lag-weighted sum of this and earlier weeks' spend (zero before week 0)."""
    return np.convolve(spend, carryover.weights())[: len(spend)]


@dataclass(frozen=True)
class _Noise:
    """Every random draw of a world, fixed before any spend or KPI is computed."""

    own: dict[str, np.ndarray]
    budget: np.ndarray
    dark: dict[str, np.ndarray]
    kpi: np.ndarray
    demand: np.ndarray


def _draw_noise(world: World, rng: np.random.Generator) -> _Noise:
    n = world.n_weeks
    own, dark = {}, {}
    for name in world.channels:  # a fixed order: the channel dict's
        own[name] = _ar1(rng, n, 0.5, 0.3)
        blocks = rng.random(n // 4 + 1)
        weekly = rng.random(n)
        dark[name] = np.where(world.channels[name].plan is Plan.FLIGHTS, np.repeat(blocks, 4)[:n], weekly)
    budget = _ar1(rng, n, 0.7, 0.35)
    kpi = _ar1(rng, n, world.noise_ar, 1.0)
    demand = _ar1(rng, n, 0.9, float(np.std(season_curve(n))))  # last: every earlier draw is unchanged
    return _Noise(own, budget, dark, kpi, demand)


class _Equations:
    """The structural equations, evaluated for factual and intervened spend."""

    def __init__(self, world: World, noise: _Noise) -> None:
        self.world, self.noise = world, noise
        self.season = season_curve(world.n_weeks)
        self.trend = np.arange(world.n_weeks) / WEEKS_PER_YEAR
        planned = {name: self._planned(name) for name in world.channels if name != "search"}
        self.tv_carry_mean = float(carry(planned["tv"], world.channels["tv"].carryover).mean()) if "tv" in planned else 1.0
        self.planned = planned

    def _planned(self, name: str) -> np.ndarray:
        """Spend decided by plans and budgets (not by other channels)."""
        w, ch, z = self.world, self.world.channels[name], self.noise
        log_var = ch.season_loading * self.season + z.own[name]
        if name in SHARED_BUDGET and w.shared_budget > 0:
            log_var = ch.season_loading * self.season + (1 - w.shared_budget) * z.own[name] + w.shared_budget * z.budget
        if name == "tv" and w.hidden_loading:
            log_var = log_var + w.hidden_loading * z.demand
        spend = ch.mean_spend * np.exp(log_var)
        if ch.plan is not Plan.ALWAYS_ON:
            spend = np.where(z.dark[name] < ch.dark_share, 0.0, spend)
        spend[: ch.launch_week] = 0.0
        return np.round(spend, 2)

    def search(self, tv: np.ndarray) -> np.ndarray:
        """Search spend: people who saw TV search; linear in TV's carried-over spend."""
        ch = self.world.channels["search"]
        lift = 1.0 + self.world.search_per_tv * carry(tv, self.world.channels["tv"].carryover) / self.tv_carry_mean
        return np.round(ch.mean_spend * lift * np.exp(self.noise.own["search"]), 2)

    def spends(self, scale: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Every channel's spend with the planned spend of some channels multiplied (0 = off, 1.01 = +1%);
        search is recomputed from TV, then multiplied itself."""
        scale = scale or {}
        out = {name: s * scale.get(name, 1.0) for name, s in self.planned.items()}
        if "search" in self.world.channels:
            out["search"] = self.search(out["tv"]) * scale.get("search", 1.0)
        return {name: out[name] for name in self.world.channels}

    def kpi(self, spends: dict[str, np.ndarray]) -> np.ndarray:
        w = self.world
        media = sum(ch.effect * ch.response(carry(spends[name], ch.carryover)) for name, ch in w.channels.items())
        hidden = 0.0
        if w.hidden_loading and w.channels.get("tv") is not None and w.channels["tv"].season_loading:
            hidden = w.season_effect * w.hidden_loading / w.channels["tv"].season_loading * self.noise.demand
        return (w.base_kpi + w.trend_per_year * self.trend + w.season_effect * self.season + media
                + w.noise_sd * self.noise.kpi + hidden)


def zero_in_support(spend: np.ndarray) -> bool:
    """Whether the data show the zero-spend level: enough weeks at (near) zero spend."""
    mean = float(np.mean(spend))
    return mean > 0 and int(np.sum(spend <= LOW_SPEND_SHARE * mean)) >= MIN_LOW_SPEND_WEEKS


def simulate_world(world: World, seed: int) -> Draw:
    """One dataset of `world` and its truth by intervention. Same world and seed → identical output."""
    eq = _Equations(world, _draw_noise(world, np.random.default_rng(seed)))
    factual = eq.spends()
    y = eq.kpi(factual)
    data = pd.DataFrame({"week": pd.date_range(world.start, periods=world.n_weeks, freq="W-MON")})
    for name in world.channels:
        data[f"{name}_spend"] = factual[name]
    data["sales"] = np.round(y, 2)
    rows = []
    for name, ch in world.channels.items():
        spend = float(factual[name].sum())
        off = float((y - eq.kpi(eq.spends({name: 0.0}))).sum())
        up = float((eq.kpi(eq.spends({name: 1.0 + MROI_STEP})) - y).sum())
        rows.append({"channel": name, "spend": spend, "roi": off / spend, "mroi": up / (MROI_STEP * spend),
                     "zero_in_support": zero_in_support(factual[name]),
                     "always_on": ch.plan is Plan.ALWAYS_ON or name == "search", "null": ch.effect == 0.0})
    return Draw(world, seed, data, pd.DataFrame(rows))


def planned_kpi(world: World, seed: int, plan: dict[str, np.ndarray]) -> np.ndarray:
    """(weeks,) the KPI of `simulate_world(world, seed)` with the last len(plan) weeks' spend of the
    named channels set to `plan` (search too: do(search = plan)), every noise term held: the truth a
    plan is judged against."""
    eq = _Equations(world, _draw_noise(world, np.random.default_rng(seed)))
    spends = {name: spend.copy() for name, spend in eq.spends().items()}
    for name, weekly in plan.items():
        weekly = np.asarray(weekly, dtype=float)
        spends[name][world.n_weeks - weekly.size:] = weekly
    return eq.kpi(spends)


# --- the named worlds -------------------------------------------------------------------------------

def _hill(mid: float, slope: float) -> Response:
    return Response(Curve.HILL, mid, slope)


def _logistic(mid: float, steep: float) -> Response:
    return Response(Curve.LOGISTIC, mid, steep)


TV_DELAYED = Carryover(shape=2.5, scale=3.5, max_lag=10)
"""Peaks at lag 2 (weights 0.05, 0.15, 0.21, 0.21, 0.17, ...)."""
FAST = Carryover(shape=1.0, scale=1.2, max_lag=6)
"""Largest at lag 0 and gone within a few weeks (an exponential density)."""
MEDIUM = Carryover(shape=1.4, scale=2.0, max_lag=8)


def _seed_channels(plans: dict[str, Plan] | None = None) -> dict[str, ChannelSpec]:
    """The seed's four channels: TV (flights, delayed peak, seasonal), search (driven by TV), digital
    (seasonal) and email."""
    plans = plans or {}
    return {
        "tv": ChannelSpec(4000.0, plans.get("tv", Plan.FLIGHTS), 9000.0, TV_DELAYED, _hill(3500.0, 1.6),
                          dark_share=0.3, season_loading=0.5),
        "search": ChannelSpec(900.0, Plan.ALWAYS_ON, 5000.0, FAST, _hill(1800.0, 1.1)),
        "digital": ChannelSpec(2000.0, plans.get("digital", Plan.PULSED), 4500.0, MEDIUM, _hill(2500.0, 1.3),
                               dark_share=0.2, season_loading=0.5),
        "email": ChannelSpec(400.0, plans.get("email", Plan.PULSED), 2000.0, FAST, _hill(450.0, 1.0),
                             dark_share=0.25),
    }


def _ten_channels(always_on: bool = False) -> dict[str, ChannelSpec]:
    pulsed = Plan.ALWAYS_ON if always_on else Plan.PULSED
    chans = _seed_channels({"digital": pulsed, "email": pulsed})
    chans.update({
        "social": ChannelSpec(1500.0, pulsed, 3000.0, FAST, _logistic(1400.0, 3.0), dark_share=0.2),
        "display": ChannelSpec(1000.0, Plan.PULSED, 1500.0, MEDIUM, _hill(1500.0, 1.0), dark_share=0.3),
        "radio": ChannelSpec(1200.0, Plan.FLIGHTS, 2500.0, MEDIUM, _logistic(1500.0, 4.0), dark_share=0.35),
        "affiliate": ChannelSpec(600.0, Plan.ALWAYS_ON, 1800.0, FAST, _hill(700.0, 1.2)),
        "podcast": ChannelSpec(500.0, Plan.PULSED, 0.0, MEDIUM, _hill(500.0, 1.0), dark_share=0.3),
        "ooh": ChannelSpec(800.0, Plan.FLIGHTS, 0.0, TV_DELAYED, _hill(800.0, 1.0), dark_share=0.4),
    })
    return chans


def _with(channels: dict[str, ChannelSpec], **changes: ChannelSpec) -> dict[str, ChannelSpec]:
    return {**channels, **changes}


def _named_worlds() -> dict[str, World]:
    seed = _seed_channels()
    logistic = _with(seed, tv=replace(seed["tv"], response=_logistic(4500.0, 4.0)),
                     digital=replace(seed["digital"], response=_logistic(2200.0, 3.0)))
    worlds = [
        World("seed_graph", "the seed's graph: season confounds TV and digital; TV → search → sales; "
              "delayed-peak TV; two years", seed),
        World("short_history", "the seed's graph over 70 weeks", seed, n_weeks=70),
        World("logistic", "S-shaped (logistic) response for TV and digital", logistic),
        World("shared_budget", "TV and digital drawn from one budget (collinear plans)", seed, shared_budget=0.8),
        World("always_on", "digital and email never go dark", _seed_channels(
            {"digital": Plan.ALWAYS_ON, "email": Plan.ALWAYS_ON})),
        World("late_launch", "email launches a year in", _with(seed, email=replace(seed["email"], launch_week=52))),
        World("ten_channels", "ten channels, two of them null (podcast, ooh)", _ten_channels(), n_weeks=104),
        World("ten_channels_70w", "ten channels with two nulls over 70 weeks", _ten_channels(), n_weeks=70),
        World("ten_always_on", "ten channels, most always on, shared TV/digital budget, 70 weeks",
              _ten_channels(always_on=True), n_weeks=70, shared_budget=0.7),
        World("strong_trend", "a KPI trend three times as steep, weak season", seed, trend_per_year=4500.0,
              season_effect=1000.0),
        World("heavy_confounding", "the season moves TV and digital spend twice as strongly", _with(
            seed, tv=replace(seed["tv"], season_loading=1.0), digital=replace(seed["digital"], season_loading=1.0))),
    ]
    return {w.name: w for w in worlds}


WORLDS: dict[str, World] = _named_worlds()
