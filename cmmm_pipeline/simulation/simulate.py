"""Known-truth weekly data from a structural causal model (SCM) with the sample's graph.

    seasonality → tv, digital, sales      (confounding)
    tv → search → sales                    (mediation)
    tv, digital, email, price, trend → sales

Spend is in currency units, the KPI in the same units, so ROI = incremental KPI / spend.
Media act on the KPI through geometric adstock and Hill saturation on spend scaled by its mean
(the same convention as `cmmm_pipeline.media.features`). The truth is computed by intervention on the
same equations with every noise term held fixed: set a channel's spend to zero in all weeks,
recompute everything downstream (total) or hold the mediator at its observed value (direct).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cmmm_pipeline.media.transforms import geometric_adstock, hill_saturation, linear_trend

WEEKS_PER_YEAR = 52.1775


@dataclass(frozen=True)
class ChannelTruth:
    """Structural parameters of one channel: its transform and its effect per unit of transformed media."""

    spend_column: str
    decay: float
    half_saturation: float
    slope: float
    beta: float


def _default_channels() -> dict[str, ChannelTruth]:
    return {
        "tv": ChannelTruth("tv_spend", decay=0.6, half_saturation=1.0, slope=1.4, beta=2400.0),
        "search": ChannelTruth("search_spend", decay=0.2, half_saturation=2.0, slope=1.0, beta=2600.0),
        "digital": ChannelTruth("digital_spend", decay=0.3, half_saturation=1.0, slope=1.2, beta=1400.0),
        "email": ChannelTruth("email_spend", decay=0.1, half_saturation=1.5, slope=1.0, beta=500.0),
    }


@dataclass(frozen=True)
class Scenario:
    """A simulated world. The defaults are the bundled sample: confounding plus mediation."""

    n_weeks: int = 156
    start: str = "2023-01-02"
    channels: dict[str, ChannelTruth] = field(default_factory=_default_channels)
    confounding: float = 0.5
    """How strongly seasonality moves TV and digital spend (relative amplitude)."""
    collinearity: float = 0.0
    """Share of a common driver in TV and digital spend (0 = independent plans)."""
    mediation: float = 2.0
    """How strongly TV's transformed media drives search spend (relative to search's base)."""
    season_to_search: float = 0.0
    """An edge the sample's DAG does not have: seasonality moving search spend (relative amplitude,
    like `confounding`). 0 leaves the data exactly as without the knob."""
    dark_weeks: float = 0.0
    """Share of weeks in which digital and email are paused (pulsed campaigns, skipped sends).
    Without such low-spend weeks the data cannot tell a saturation curve's shape near zero apart."""
    search_on_carryover: bool = False
    """Search answers TV's carried-over spend (adstocked, unsaturated, over its mean) instead of
    TV's transformed media: a mediator bought in proportion to the treatment's spend."""
    synergy: tuple[str, str, float] | None = None
    """(a, b, gamma): the KPI gains gamma × x_a × x_b (their transformed media), a synergy of the pair.
    None leaves the data exactly as without the knob."""
    modification: float = 0.0
    """TV's effect per unit of media × (1 + modification × (price − 10) / 0.4), clipped at 0: effect
    modification by price (a pre-treatment column). 0 leaves the data exactly as without the knob."""
    hidden_confounding: float = 0.0
    """An unobserved demand driver (AR(1), scaled like the season) that moves TV spend with this relative
    amplitude, like `confounding`, and the KPI by `season_effect` × this / `confounding`: at
    `confounding` it is as strong as the seasonality. 0 leaves the data exactly as without the knob."""
    noise_sd: float = 120.0
    noise_ar: float = 0.3
    base_kpi: float = 6000.0
    trend_effect: float = 600.0
    season_effect: float = 900.0
    price_effect: float = -150.0

    def with_beta(self, channel: str, beta: float) -> Scenario:
        channels = dict(self.channels)
        channels[channel] = replace(channels[channel], beta=beta)
        return replace(self, channels=channels)


@dataclass(frozen=True)
class SimulationResult:
    data: pd.DataFrame
    """week, one spend column per channel, price, sales (and `seasonality_true`, not for modelling)."""
    truth: pd.DataFrame
    """channel, effect, incremental_kpi, spend, roi: the causal truth by intervention."""
    contributions: pd.DataFrame
    """Per week and channel, the total effect's weekly contribution (for lift-test windows)."""


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation `sd`."""
    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def transformed(spend: np.ndarray, ch: ChannelTruth, scale: float) -> np.ndarray:
    """Adstock, divide by the factual mean (a structural constant), saturate."""
    return hill_saturation(geometric_adstock(spend, ch.decay) / scale, ch.half_saturation, ch.slope)


@dataclass(frozen=True)
class _Noise:
    tv: np.ndarray
    digital: np.ndarray
    search: np.ndarray
    email: np.ndarray
    price: np.ndarray
    kpi: np.ndarray
    common: np.ndarray
    tv_on: np.ndarray
    pause: np.ndarray
    demand: np.ndarray


def _draw_noise(rng: np.random.Generator, n: int) -> _Noise:
    flights = rng.random(n // 4 + 1) < 0.75  # TV runs in 4-week flights, about 3 in 4 of them on air
    return _Noise(
        tv=ar1(rng, n, 0.5, 0.35), digital=ar1(rng, n, 0.5, 0.3), search=ar1(rng, n, 0.3, 0.3),
        email=rng.normal(0.0, 0.5, n), price=ar1(rng, n, 0.7, 0.4), kpi=ar1(rng, n, 0.3, 1.0),
        common=ar1(rng, n, 0.6, 0.35), tv_on=np.repeat(flights, 4)[:n].astype(float),
        pause=rng.random((2, n)),  # drawn after the others, so every draw above is the same whatever dark_weeks is
        demand=ar1(rng, n, 0.9, float(np.sqrt(0.625))),  # last: the hidden confounder; sd like the season's
    )


class _World:
    """The structural equations, evaluated for factual and intervened spend."""

    def __init__(self, scenario: Scenario, noise: _Noise) -> None:
        self.s = scenario
        n = scenario.n_weeks
        t = np.arange(n)
        self.season = np.sin(2 * np.pi * t / WEEKS_PER_YEAR) + 0.5 * np.cos(2 * np.pi * t / WEEKS_PER_YEAR)
        self.trend = linear_trend(n)
        self.noise = noise
        c = scenario.collinearity
        # Spend is booked in cents: rounding inside the equations keeps data and truth exactly consistent.
        self.tv = np.round(1000.0 * noise.tv_on * np.exp(scenario.confounding * self.season + (1 - c) * noise.tv
                                                          + c * noise.common * 2
                                                          + scenario.hidden_confounding * noise.demand), 2)
        self.digital = np.round(500.0 * np.exp(scenario.confounding * self.season + (1 - c) * noise.digital
                                               + c * noise.common * 2), 2)
        self.email = np.round(100.0 * np.exp(noise.email), 2)
        self.digital = np.where(noise.pause[0] < scenario.dark_weeks, 0.0, self.digital)
        self.email = np.where(noise.pause[1] < scenario.dark_weeks, 0.0, self.email)
        self.price = 10.0 + noise.price
        ch = scenario.channels
        self.scale = {"tv": geometric_adstock(self.tv, ch["tv"].decay).mean(),
                      "digital": geometric_adstock(self.digital, ch["digital"].decay).mean(),
                      "email": geometric_adstock(self.email, ch["email"].decay).mean()}
        self.scale["search"] = geometric_adstock(self.search_spend(self.tv), ch["search"].decay).mean()

    def search_spend(self, tv_spend: np.ndarray) -> np.ndarray:
        tv = self.s.channels["tv"]
        if self.s.search_on_carryover:
            x_tv = geometric_adstock(tv_spend, tv.decay) / self.scale_tv
        else:
            x_tv = transformed(tv_spend, tv, self.scale_tv)
        log_noise = self.noise.search
        if self.s.season_to_search:
            log_noise = log_noise + self.s.season_to_search * self.season
        return np.round(300.0 * (1.0 + self.s.mediation * x_tv) * np.exp(log_noise), 2)

    @property
    def tv_multiplier(self) -> np.ndarray | float:
        if not self.s.modification:
            return 1.0
        return np.clip(1.0 + self.s.modification * (self.price - 10.0) / 0.4, 0.0, None)

    def total_off(self, factual: dict[str, np.ndarray], channel: str, keep: np.ndarray | None = None
                  ) -> dict[str, np.ndarray]:
        """The spends with `channel` off (in the weeks where `keep` is False; every week by default),
        search recomputed from TV's changed spend."""
        changed = factual[channel] * (keep if keep is not None else 0.0)
        out = dict(factual, **{channel: changed})
        if channel == "tv":
            out["search"] = self.search_spend(changed)
        return out

    @property
    def scale_tv(self) -> float:
        return float(geometric_adstock(self.tv, self.s.channels["tv"].decay).mean())

    def spends(self) -> dict[str, np.ndarray]:
        return {"tv": self.tv, "search": self.search_spend(self.tv), "digital": self.digital, "email": self.email}

    def kpi(self, spends: dict[str, np.ndarray]) -> np.ndarray:
        s = self.s
        x = {name: transformed(spends[name], ch, self.scale[name]) for name, ch in s.channels.items()}
        media = sum(ch.beta * x[name] * (self.tv_multiplier if name == "tv" else 1.0)
                    for name, ch in s.channels.items())
        if s.synergy is not None:
            a, b, gamma = s.synergy
            media = media + gamma * x[a] * x[b]
        hidden = (s.season_effect * s.hidden_confounding / s.confounding * self.noise.demand
                  if s.hidden_confounding and s.confounding else 0.0)
        return (s.base_kpi + s.trend_effect * self.trend + s.season_effect * self.season
                + s.price_effect * (self.price - 10.0) + media + s.noise_sd * self.noise.kpi + hidden)


def simulate(scenario: Scenario | None = None, seed: int = 7) -> SimulationResult:
    """Draw one dataset and its causal truth. Same scenario and seed → identical output."""
    scenario = scenario or Scenario()
    rng = np.random.default_rng(seed)
    world = _World(scenario, _draw_noise(rng, scenario.n_weeks))
    factual = world.spends()
    y = world.kpi(factual)
    weeks = pd.date_range(scenario.start, periods=scenario.n_weeks, freq="W-MON")
    data = pd.DataFrame({"week": weeks})
    for name, ch in scenario.channels.items():
        data[ch.spend_column] = np.round(factual[name], 2)
    data["price"] = np.round(world.price, 3)
    data["sales"] = np.round(y, 2)

    rows, contrib = [], {}
    for name, ch in scenario.channels.items():
        zero = np.zeros(scenario.n_weeks)
        total_cf = dict(factual, **{name: zero})
        if name == "tv":
            total_cf["search"] = world.search_spend(zero)
        y_obs = world.kpi(factual)
        weekly_total = y_obs - world.kpi(total_cf)
        contrib[name] = weekly_total
        spend = float(factual[name].sum())
        rows.append((name, "total", float(weekly_total.sum()), spend))
        if name == "tv":
            direct = float((y_obs - world.kpi(dict(factual, tv=zero))).sum())
            rows.append((name, "direct", direct, spend))
            rows.append((name, "indirect", float(weekly_total.sum()) - direct, spend))
    truth = pd.DataFrame(rows, columns=["channel", "effect", "incremental_kpi", "spend"])
    truth["roi"] = truth["incremental_kpi"] / truth["spend"]
    contributions = pd.DataFrame(contrib).assign(week=weeks)[["week", *contrib]]
    return SimulationResult(data=data, truth=truth, contributions=contributions)


def marginal_truth(scenario: Scenario | None = None, seed: int = 7, step: float = 0.01) -> pd.DataFrame:
    """channel, effect, mroi: the true marginal ROI of the world `simulate(scenario, seed)` draws,
    by intervention with every noise term held fixed: each week's spend of the channel × (1 + step),
    search recomputed from TV's new spend (total) or held at its observed value (direct); the extra
    KPI over the extra spend."""
    scenario = scenario or Scenario()
    world = _World(scenario, _draw_noise(np.random.default_rng(seed), scenario.n_weeks))
    factual = world.spends()
    y = world.kpi(factual)
    rows = []
    for name in scenario.channels:
        up = factual[name] * (1.0 + step)
        extra_spend = step * float(factual[name].sum())
        changed = dict(factual, **{name: up})
        if name == "tv":
            changed["search"] = world.search_spend(up)
        total = float((world.kpi(changed) - y).sum()) / extra_spend
        rows.append((name, "total", total))
        if name == "tv":
            direct = float((world.kpi(dict(factual, tv=up)) - y).sum()) / extra_spend
            rows += [(name, "direct", direct), (name, "indirect", total - direct)]
    return pd.DataFrame(rows, columns=["channel", "effect", "mroi"])


def planned_kpi(scenario: Scenario, seed: int, plan: dict[str, np.ndarray]) -> np.ndarray:
    """(weeks,) the KPI of the world `simulate(scenario, seed)` draws when the last len(plan) weeks'
    spend of every channel is set to `plan` (channel → weekly spend; a channel left out keeps its
    drawn spend) and every noise term is held: the truth a plan's forecast is judged against. The
    plan sets search's spend too (do(search = plan)), so TV acts on it only directly."""
    world = _World(scenario, _draw_noise(np.random.default_rng(seed), scenario.n_weeks))
    spends = {name: spend.copy() for name, spend in world.spends().items()}
    for name, weekly in plan.items():
        weekly = np.asarray(weekly, dtype=float)
        spends[name][scenario.n_weeks - weekly.size:] = weekly
    return world.kpi(spends)


SAMPLE_SEED = 7
SAMPLE_EXPERIMENT = ("tv", "2024-03-04", "2024-04-01")


def sample_experiment(result: SimulationResult, seed: int = SAMPLE_SEED) -> dict[str, object]:
    """A lift test on the sample: TV's true contribution over a window, measured with noise."""
    channel, start, end = SAMPLE_EXPERIMENT
    window = result.contributions[(result.contributions["week"] >= start) & (result.contributions["week"] <= end)]
    truth = float(window[channel].sum())
    rng = np.random.default_rng(seed + 1)
    measured = truth * (1.0 + rng.normal(0.0, 0.08))
    half_width = 0.35 * abs(truth)
    return {"channel": channel, "start": start, "end": end, "incremental_kpi": round(measured),
            "ci_low": round(measured - half_width), "ci_high": round(measured + half_width)}


MODEL_TEXT = """channels:
  tv:      {spend_column: tv_spend, adstock: {type: geometric, decay: 0.6},
            saturation: {type: hill, half_saturation: 1.0, slope: 1.4}}
  search:  {spend_column: search_spend, adstock: {type: geometric, decay: 0.2},
            saturation: {type: hill, half_saturation: 2.0, slope: 1.0}}
  # Leave adstock/saturation out to have decay, half-saturation and slope selected from the data
  # by time-series cross validation (recorded in transform_selection.csv).
  digital: {spend_column: digital_spend, adstock: {type: geometric, decay: 0.3},
            saturation: {type: hill, half_saturation: 1.0, slope: 1.2}}
  email:   {spend_column: email_spend, adstock: {type: geometric, decay: 0.1},
            saturation: {type: hill, half_saturation: 1.5, slope: 1.0}}
controls: [seasonality, trend, price]
graph:
  edges:
    - [seasonality, tv]
    - [seasonality, digital]
    - [seasonality, sales]
    - [tv, search]
    - [tv, sales]
    - [search, sales]
    - [digital, sales]
    - [email, sales]
    - [price, sales]
    - [trend, sales]
"""
"""The sample world's channels (with the transforms it was drawn with), controls and DAG edges: the
part of its config every export of this world shares, one market or many."""


def sample_config_text(experiment: dict[str, object]) -> str:
    """The bundled sample's config, with every channel's transform as the simulator drew it, so a
    first run can be checked against the known truth. Leave a channel's adstock or saturation out
    to have it selected from the data (the selection tests do exactly that on this data)."""
    e = experiment
    return f"""# Bundled sample: three years of weekly data from cmmm_pipeline.simulation.simulate (seed {SAMPLE_SEED}).
data: {{path: weekly.csv, date_column: week, kpi: sales}}
{MODEL_TEXT}  # Declared pairs whose synergy is estimated (in this sample's world TV and digital do not interact).
  interactions: [[tv, digital]]
experiments:
  - {{channel: {e['channel']}, start: {e['start']}, end: {e['end']}, incremental_kpi: {e['incremental_kpi']}, ci_low: {e['ci_low']}, ci_high: {e['ci_high']}}}
# Effects of named windows (dates inclusive, week dates of the data) and by level of a pre-treatment column.
campaigns:
  - {{name: spring_tv, channel: tv, start: 2024-03-04, end: 2024-05-27}}
effect_modifiers: {{tv: [price]}}
"""


def write_sample(directory: str) -> None:
    """Regenerate the bundled sample (weekly.csv, truth.csv, config.yaml) into `directory`."""
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    result = simulate(Scenario(), seed=SAMPLE_SEED)
    data = result.data.copy()
    data["week"] = data["week"].dt.strftime("%Y-%m-%d")
    data.to_csv(out / "weekly.csv", index=False)
    result.truth.to_csv(out / "truth.csv", index=False)
    (out / "config.yaml").write_text(sample_config_text(sample_experiment(result)), encoding="utf-8")


if __name__ == "__main__":
    import sys

    write_sample(sys.argv[1] if len(sys.argv) > 1 else str(__import__("pathlib").Path(__file__).parent / "sample"))


# --- truths of the effects by period, campaign, condition and synergy ---------------------------------

def _world(scenario: Scenario | None, seed: int) -> tuple[Scenario, _World, pd.DatetimeIndex]:
    scenario = scenario or Scenario()
    world = _World(scenario, _draw_noise(np.random.default_rng(seed), scenario.n_weeks))
    return scenario, world, pd.date_range(scenario.start, periods=scenario.n_weeks, freq="W-MON")


def weekly_truth(scenario: Scenario | None = None, seed: int = 7) -> pd.DataFrame:
    """week, channel, effect, weekly: each week's KPI as run minus with the channel off every week
    (total: search responds to TV; direct: search held), noise held fixed. Summed over a period's
    weeks it is the period's truth; over every week, `simulate(...).truth`."""
    scenario, world, weeks = _world(scenario, seed)
    factual = world.spends()
    y = world.kpi(factual)
    frames = []
    for name in scenario.channels:
        total = y - world.kpi(world.total_off(factual, name))
        frames.append(pd.DataFrame({"week": weeks, "channel": name, "effect": "total", "weekly": total}))
        if name == "tv":
            direct = y - world.kpi(dict(factual, tv=np.zeros(scenario.n_weeks)))
            frames.append(pd.DataFrame({"week": weeks, "channel": name, "effect": "direct", "weekly": direct}))
            frames.append(pd.DataFrame({"week": weeks, "channel": name, "effect": "indirect", "weekly": total - direct}))
    return pd.concat(frames, ignore_index=True)


def campaign_truth(channel: str, start: str, end: str, scenario: Scenario | None = None, seed: int = 7) -> float:
    """Σ over every week of the KPI as run minus the KPI with the channel's spend removed in [start, end]
    (inclusive week dates) only: the carryover after the window counts; search responds to TV."""
    scenario, world, weeks = _world(scenario, seed)
    factual = world.spends()
    keep = ~((weeks >= pd.Timestamp(start)) & (weeks <= pd.Timestamp(end)))
    return float((world.kpi(factual) - world.kpi(world.total_off(factual, channel, keep.astype(float)))).sum())


def synergy_truth(a: str, b: str, scenario: Scenario | None = None, seed: int = 7) -> float:
    """Σ_t [Y(as run) − Y(a off) − Y(b off) + Y(both off)], "off" letting search respond to TV."""
    scenario, world, _ = _world(scenario, seed)
    factual = world.spends()
    both = world.total_off(world.total_off(factual, a), b)
    if "tv" in (a, b):  # search answers TV's spend, whichever channel was switched off last
        both["search"] = world.search_spend(both["tv"])
    return float((world.kpi(factual) - world.kpi(world.total_off(factual, a)) - world.kpi(world.total_off(factual, b))
                  + world.kpi(both)).sum())
