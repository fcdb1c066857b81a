"""How fast a refresh is, against the floor its libraries set, and how its compute grows.

Prints, each measured in fresh child processes (wall seconds, CPU seconds = user + system, peak RSS):

(a) the bare import of the three heaviest libraries, `import dagster, great_expectations, dowhy`;
(b) the code location load, `import cmmm_pipeline.definitions`, beside Dagster's own floor (`import
    dagster`) and the floor of the libraries the location cannot load without (dagster, dagster_duckdb,
    pandas, networkx, duckdb);
(c) a full `cmmm run` of the bundled sample (every gate, the selection-aware bootstrap with the
    config's B, refuters, report, publication) and the ratio (c)/(a);
(d) a growth table of one refresh's compute, in process after the imports and a warm-up run on the
    sample: CPU and wall seconds and peak memory (the process's high-water mark, reset before each
    point: `/proc/self/clear_refs`) for worlds of 156 → 260 → 520 weeks (4 channels) and 4 → 10 →
    20 → 30 channels (156 weeks). A world is the project's simulator (`simulate.Scenario`) with
    extra independent channels of known geometric-adstock/Hill effect added to the KPI, and the
    sample's config extended by them (transforms given, as in the sample; no lift test);
(e) BLAS threads: one SVD of a 156 × 72 matrix and the sample's in-process compute with the
    libraries' default threads (`CMMM_BLAS_THREADS=0`) and with the pipeline's one thread;
(f) the resampling refuters side by side with DoWhy's on the sample (TV's total and direct effect,
    the config's simulations, the same seed): new effect, p-value and CPU milliseconds of each;
(g) where a warm refresh's CPU goes: three in-process refreshes of the sample after a warm-up (and of
    (d)'s 156-week worlds of `--parts-channels` channels), each with the CPU of the report (and of its
    figures' writing: PNG, and SVG since it replaced PNG for three of them), the Great Expectations
    suites, the robustness step and the DAG audit.

`--before DIR` runs (b), (c) and (d)'s sample point with another checkout's code (e.g. /work/main)
beside this one's. The load average is printed with every section: on a shared machine it says how
far the figures are from an idle one.

    python benchmarks/refresh_speed.py                      # a-f, about 4 min on an idle 2-core machine
    python benchmarks/refresh_speed.py --before /work/main  # and the figures of an older checkout
    python benchmarks/refresh_speed.py --grid               # (d) as the full weeks × channels grid
    python benchmarks/refresh_speed.py --only d --weeks 156 520 --channels 4 30
    python benchmarks/refresh_speed.py --only g --parts-channels 4 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KPI = "sales"
BARE_IMPORT = "import dagster, great_expectations, dowhy"
LOCATION = "import cmmm_pipeline.definitions"
DAGSTER_FLOOR = "import dagster"
LOCATION_FLOOR = "import dagster, dagster_duckdb, pandas, networkx, duckdb"


@dataclass(frozen=True)
class Cost:
    wall: float
    cpu: float
    peak_mb: float


def child(args: list[str], tree: Path = ROOT, env: dict[str, str] | None = None) -> tuple[Cost, str]:
    """Run a child Python process; its wall time, its own CPU time and peak RSS (from wait4), stdout."""
    full_env = {**os.environ, "PYTHONPATH": str(tree), **(env or {})}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=tree, env=full_env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{err[-2000:]}")
    return Cost(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), text


def repeated(args: list[str], repeats: int, tree: Path = ROOT) -> tuple[Cost, Cost]:
    """Median and fastest of `repeats` child runs."""
    costs = [child(args, tree)[0] for _ in range(repeats)]
    median = Cost(statistics.median(c.wall for c in costs), statistics.median(c.cpu for c in costs),
                  max(c.peak_mb for c in costs))
    fastest = min(costs, key=lambda c: c.wall)
    return median, fastest


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def line(label: str, median: Cost, fastest: Cost | None = None) -> str:
    text = f"  {label:58s} wall {median.wall:6.2f} s  CPU {median.cpu:6.2f} s  peak RSS {median.peak_mb:5.0f} MB"
    return text + (f"   (fastest: wall {fastest.wall:.2f} s, CPU {fastest.cpu:.2f} s)" if fastest else "")


# --- (d) the worlds ------------------------------------------------------------------------------------


def extra_channel(rng: np.random.Generator, weeks: int) -> tuple[np.ndarray, dict[str, float]]:
    """One independent channel: AR(1) log-spend around 200 a week, and the geometric-adstock / Hill
    transform (decay, half-saturation, slope) its effect on the KPI follows."""
    from cmmm_pipeline.simulation.simulate import ar1

    spend = np.round(200.0 * np.exp(ar1(rng, weeks, 0.5, 0.4)), 2)
    return spend, {"decay": float(rng.uniform(0.1, 0.6)), "half_saturation": float(rng.uniform(0.8, 2.0)),
                   "slope": float(rng.uniform(1.0, 1.5))}


def extra_channel_effect(spend: np.ndarray, transform: dict[str, float], size: float) -> np.ndarray:
    """The channel's weekly incremental KPI: `size` times the Hill curve of its adstocked spend over
    that adstock's mean (the pipeline's scale, so the configured transform is the true one)."""
    from cmmm_pipeline.media.transforms import geometric_adstock, hill_saturation

    carried = geometric_adstock(spend, transform["decay"])
    return size * hill_saturation(carried / carried.mean(), transform["half_saturation"], transform["slope"])


def extra_channel_config(name: str, transform: dict[str, float]) -> dict[str, object]:
    return {"spend_column": f"{name}_spend", "adstock": {"type": "geometric", "decay": transform["decay"]},
            "saturation": {"type": "hill", "half_saturation": transform["half_saturation"],
                           "slope": transform["slope"]}}


def write_world(folder: Path, weeks: int, channels: int, seed: int = 7) -> Path:
    """The simulator's world over `weeks` weeks with `channels` − 4 extra independent channels
    (`extra_channel`, each adding its effect to the KPI), and the sample's config extended by them.
    Returns the config's path."""
    import yaml

    from cmmm_pipeline.simulation.simulate import Scenario, simulate

    folder.mkdir(parents=True, exist_ok=True)
    data = simulate(Scenario(n_weeks=weeks), seed).data.drop(columns=["seasonality_true"], errors="ignore")
    rng = np.random.default_rng([seed, weeks, channels])
    sample = yaml.safe_load(_sample_config().read_text(encoding="utf-8"))
    sample["data"]["path"] = "weekly.csv"
    sample.pop("experiments", None)
    for j in range(max(channels - 4, 0)):
        name = f"ch{j:02d}"
        spend, transform = extra_channel(rng, weeks)
        data[f"{name}_spend"] = spend
        data[KPI] = np.round(data[KPI] + extra_channel_effect(spend, transform, rng.uniform(200.0, 800.0)), 2)
        sample["channels"][name] = extra_channel_config(name, transform)
        sample["graph"]["edges"].append([name, KPI])
    data["week"] = data["week"].dt.strftime("%Y-%m-%d")
    data.to_csv(folder / "weekly.csv", index=False)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(sample, sort_keys=False), encoding="utf-8")
    return path


def _sample_config() -> Path:
    """The bundled sample of the checkout being measured (the one on PYTHONPATH)."""
    import cmmm_pipeline

    return Path(cmmm_pipeline.__file__).parent / "sample" / "config.yaml"


def _high_water_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _high_water_mb() -> float:
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith("VmRSS:"):
            return int(text.split()[1]) / 1024
    return float("nan")


def refresh(config: Path, out: Path) -> bool:
    """One refresh of `config` into `out`, in this process, logging silenced; True when it published."""
    import logging

    from dagster import DagsterInstance

    from cmmm_pipeline.definitions import JOB_NAME, build_definitions

    logging.disable(logging.WARNING)
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    defs = build_definitions(config_path=str(config), output_dir=str(out), warehouse_path=str(out / "cmmm.duckdb"))
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        return defs.resolve_job_def(JOB_NAME).execute_in_process(instance=instance, raise_on_error=False,
                                                                  run_config=quiet).success


def growth_worker(points: list[tuple[int, int]], warmups: int) -> None:
    """In this process: import, warm up on the sample, then one in-process refresh per point; one
    JSON line per point on stdout."""
    sample = _sample_config()
    with tempfile.TemporaryDirectory(prefix="cmmm-growth-") as tmp:
        for i in range(warmups):
            refresh(sample, Path(tmp) / f"warm{i}")
        for weeks, channels in points:
            folder = Path(tmp) / f"w{weeks}c{channels}"
            config = sample if (weeks, channels) == (0, 0) else write_world(folder / "in", weeks, channels)
            before = _rss_mb()
            reset = _high_water_reset()
            cpu, wall = time.process_time(), time.perf_counter()
            ok = refresh(config, folder / "out")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(json.dumps({"weeks": weeks, "channels": channels, "ok": ok, "cpu": cpu, "wall": wall,
                              "peak_mb": _high_water_mb() if reset else float("nan"), "rss_before_mb": before,
                              "load": os.getloadavg()[0]}), flush=True)


def growth(points: list[tuple[int, int]], tree: Path = ROOT, env: dict[str, str] | None = None,
           warmups: int = 1) -> list[dict]:
    spec = json.dumps(points)
    _, text = child([str(Path(__file__).resolve()), "--growth-worker", spec, "--warmups", str(warmups)], tree, env)
    return [json.loads(t) for t in text.splitlines() if t.startswith("{")]


def growth_rows(rows: list[dict], label: str = "") -> None:
    print(f"  {'weeks':>5s} {'channels':>8s} {'status':>7s} {'CPU s':>7s} {'wall s':>7s} {'peak MB':>8s} "
          f"{'+ over imports MB':>18s} {'load':>5s}")
    for r in rows:
        weeks, channels = ("sample", "4") if r["weeks"] == 0 else (str(r["weeks"]), str(r["channels"]))
        print(f"  {weeks:>5s} {channels:>8s} {'ok' if r['ok'] else 'FAILED':>7s} {r['cpu']:7.2f} {r['wall']:7.2f} "
              f"{r['peak_mb']:8.0f} {r['peak_mb'] - r['rss_before_mb']:18.0f} {r['load']:5.1f}{label}")


# --- (e) BLAS threads -------------------------------------------------------------------------------------


def svd_times(repeats: int = 30) -> dict[str, float]:
    """Median milliseconds of one SVD of a 156 × 72 matrix with the default BLAS threads and with one."""
    from threadpoolctl import threadpool_limits

    x = np.random.default_rng(0).normal(size=(156, 72))
    out = {}
    for label, limit in (("default threads", None), ("one thread", 1)):
        with threadpool_limits(limits=limit, user_api="blas"):
            np.linalg.svd(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                np.linalg.svd(x)
                times.append(1000 * (time.perf_counter() - start))
        out[label] = statistics.median(times)
    return out


def refuters_side_by_side(repeats: int = 3) -> None:
    """(f): our vectorised placebo, random common cause and data subset, and the hidden confounder
    refitted in numpy, beside DoWhy's refuters (its `sensitivity_simulation` has no p-value: NaN)."""
    sys.path.insert(0, str(ROOT))  # this checkout's code, in this process (the children get PYTHONPATH)
    from dowhy.causal_refuters.data_subset_refuter import refute_data_subset
    from dowhy.causal_refuters.placebo_treatment_refuter import PlaceboType, refute_placebo_treatment
    from dowhy.causal_refuters.random_common_cause import refute_random_common_cause

    from cmmm_pipeline.core.config import EffectType
    from cmmm_pipeline.core.graph import build_graph
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.dag.graph import expand_graph
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.effects import refutation as ref
    from cmmm_pipeline.effects.estimation import channel_specs, fit_dowhy
    from cmmm_pipeline.media.features import build_features, configured_transform, node_columns

    config = load_config(_sample_config())
    raw = load_raw(config)
    features = build_features(raw, config, {c.name: configured_transform(c) for c in config.channels})
    g = expand_graph(build_graph(config), node_columns(raw, config))
    specs = {(s.channel, s.effect): s for s in channel_specs(features, g, build_graph(config),
                                                               list(config.channel_names), config.kpi)}
    sims, seed, thresholds = config.estimation.refuter_simulations, 11, ref.RefutationThresholds()
    data = features[ref.observed_nodes(features, g)]

    def clock(fn):  # noqa: ANN001, ANN202
        out = fn()
        start = time.process_time()
        for _ in range(repeats):
            fn()
        return out, 1000 * (time.process_time() - start) / repeats

    print(f"  {'effect':7s} {'refuter':20s} {'new effect':>14s} {'p':>8s} {'CPU ms':>8s}   "
          f"{'DoWhy new effect':>16s} {'p':>8s} {'CPU ms':>8s}   ({sims} simulations)")
    for effect in (EffectType.TOTAL, EffectType.DIRECT):
        spec = specs[("tv", effect)]
        fit = fit_dowhy(data, g, spec, config.kpi)
        target = ref.RefutationTarget(data, config.kpi, fit.value, spec, ref.regression_summary(data, spec, config.kpi))
        pairs = {
            "placebo_treatment": (
                lambda: ref.placebo(target, sims, seed, thresholds),
                lambda: refute_placebo_treatment(data, fit.estimand, fit.estimate, [spec.channel],
                                                 num_simulations=sims, placebo_type=PlaceboType.PERMUTE,
                                                 random_state=np.random.RandomState(seed))),
            "random_common_cause": (
                lambda: ref.random_common_cause(target, sims, seed, thresholds),
                lambda: refute_random_common_cause(data, fit.estimand, fit.estimate, num_simulations=sims,
                                                   random_state=np.random.RandomState(seed))),
            "data_subset": (
                lambda: ref.data_subset(target, sims, seed, thresholds),
                lambda: refute_data_subset(data, fit.estimand, fit.estimate, num_simulations=sims,
                                           subset_fraction=thresholds.subset_fraction,
                                           random_state=np.random.RandomState(seed))),
            "hidden_confounder": (
                lambda: ref.unobserved_common_cause(target, seed, thresholds),
                lambda: dowhy_hidden_confounder(fit, target, thresholds.confounder_partial_r2, seed)),
        }
        for name, (ours, theirs) in pairs.items():
            (r, ms), (d, dms) = clock(ours), clock(theirs)
            p = (d.refutation_result or {}).get("p_value", float("nan"))
            print(f"  {effect.value:7s} {name:20s} {r.new_effect:14.6f} {r.p_value:8.4f} {ms:8.1f}   "
                  f"{float(d.new_effect):16.6f} {float(p):8.4f} {dms:8.1f}", flush=True)


def dowhy_hidden_confounder(fit: Any, target: Any, r2: float, seed: int) -> Any:
    """DoWhy's own `sensitivity_simulation` (linear effects on both) of the confounder our
    `unobserved_common_cause` simulates: the same strength, and numpy's global generator (which DoWhy
    draws from) seeded as our `hidden_confounder` draws, then restored."""
    from dowhy.causal_refuters.add_unobserved_common_cause import sensitivity_simulation

    from cmmm_pipeline.effects.refutation import hidden_confounder_strength

    kappa_t, kappa_y = hidden_confounder_strength(target, r2)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return sensitivity_simulation(target.data, fit.estimand, fit.estimate, [target.spec.channel], [target.outcome],
                                      kappa_t=kappa_t, kappa_y=kappa_y, confounders_effect_on_treatment="linear",
                                      confounders_effect_on_outcome="linear")
    finally:
        np.random.set_state(state)


def refresh_parts(repeats: int = 3, channel_counts: Sequence[int] = (4,)) -> None:
    """(g): warm refreshes in this process (libraries frozen, as `cmmm run` does) of the sample (4), or
    of `write_world`'s 156-week worlds of `channel_counts` channels, with the CPU of the parts that grow with
    channels: the report (its figures' PNG and SVG writing apart), the Great Expectations suites, the robustness
    step (bootstrap, effects by period, refuters) and the DAG audit."""
    sys.path.insert(0, str(ROOT))
    import data_checks.dag_checks
    import data_checks.gx_runner
    import data_checks.suites
    from cmmm_pipeline.core.heap import freeze_step_libraries
    from cmmm_pipeline.dag import audit
    from cmmm_pipeline.effects import robustness
    from cmmm_pipeline.publish import plots, report

    spent = {"report": 0.0, "of it figure writing": 0.0, "gx suites": 0.0, "robustness": 0.0, "dag audit": 0.0}

    def timed(fn, key):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.process_time() - start
        return wrapper

    plots._png = timed(plots._png, "of it figure writing")
    plots._svg = timed(plots._svg, "of it figure writing")
    report.render_report = timed(report.render_report, "report")
    robustness.assess = timed(robustness.assess, "robustness")
    audit.audit_dag = timed(audit.audit_dag, "dag audit")
    suite = timed(data_checks.gx_runner.run_suite, "gx suites")
    data_checks.suites.run_suite = data_checks.dag_checks.run_suite = suite
    freeze_step_libraries()
    with tempfile.TemporaryDirectory(prefix="cmmm-parts-") as tmp:
        for channels in channel_counts:
            folder = Path(tmp) / f"c{channels}"
            config = _sample_config() if channels == 4 else write_world(folder / "in", 156, channels)
            print(f"  {channels} channels ({'the sample' if channels == 4 else '156 weeks'})")
            for i in range(repeats + 1):
                spent.update({k: 0.0 for k in spent})
                start = time.process_time()
                ok = refresh(config, folder / str(i))
                cpu = time.process_time() - start
                if i:  # the first is the warm-up
                    parts = "  ".join(f"{k} {v:5.2f} s" for k, v in spent.items())
                    print(f"  refresh {i}: {'published' if ok else 'FAILED'}  CPU {cpu:5.2f} s   {parts}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list("abcdefg"), default=list("abcdefg"))
    parser.add_argument("--repeats", type=int, default=3, help="child runs of (a) and (b), median printed")
    parser.add_argument("--run-repeats", type=int, default=1, help="child runs of (c)")
    parser.add_argument("--before", type=Path, help="another checkout to measure (b), (c) and the sample in (d) on")
    parser.add_argument("--parts-channels", type=int, nargs="+", default=[4],
                        help="(g) on the sample (4) and on 156-week worlds of these many channels")
    parser.add_argument("--weeks", type=int, nargs="+", default=[156, 260, 520])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 10, 20, 30])
    parser.add_argument("--grid", action="store_true", help="(d) on every weeks × channels pair")
    parser.add_argument("--growth-worker", help=argparse.SUPPRESS)
    parser.add_argument("--warmups", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.growth_worker:
        growth_worker([tuple(p) for p in json.loads(args.growth_worker)], args.warmups)
        return 0
    trees = [("this checkout", ROOT)] + ([("before: " + str(args.before), args.before.resolve())]
                                         if args.before else [])
    bare = None
    if "a" in args.only or "c" in args.only:
        print(f"(a) bare import, fresh process, {args.repeats} runs ({load()})")
        bare, fastest = repeated(["-c", BARE_IMPORT], args.repeats)
        print(line(BARE_IMPORT, bare, fastest), flush=True)
    if "b" in args.only:
        print(f"(b) code location load, fresh process, {args.repeats} runs ({load()})")
        print(line(DAGSTER_FLOOR + "  (Dagster's floor)", *repeated(["-c", DAGSTER_FLOOR], args.repeats)))
        print(line(LOCATION_FLOOR.replace("import ", "import ") + "  (floor)",
                   *repeated(["-c", LOCATION_FLOOR], args.repeats)), flush=True)
        for name, tree in trees:
            print(line(f"{LOCATION}  [{name}]", *repeated(["-c", LOCATION], args.repeats, tree)), flush=True)
    if "c" in args.only:
        print(f"(c) full `cmmm run` of the sample, fresh process ({load()})")
        for name, tree in trees:
            for _ in range(args.run_repeats):
                with tempfile.TemporaryDirectory(prefix="cmmm-refresh-") as out:
                    run, _ = child(["-m", "cmmm_pipeline.cli", "run", "--output", out], tree)
                print(line(f"cmmm run  [{name}]", run))
                print(f"  {'ratio (c)/(a)':58s} wall {run.wall / bare.wall:6.2f}    CPU {run.cpu / bare.cpu:6.2f}"
                      f"   (target: wall <= 1.5)", flush=True)
    if "d" in args.only:
        base = [(0, 0)]
        if args.grid:
            points = [(w, c) for w in args.weeks for c in args.channels]
        else:
            points = [(w, args.channels[0]) for w in args.weeks] + [(args.weeks[0], c) for c in args.channels[1:]]
        print(f"(d) one refresh's compute in process, after imports and a warm-up run ({load()})")
        for name, tree in trees:
            rows = growth(base + (points if tree == ROOT else []), tree)
            print(f"  [{name}]")
            growth_rows(rows)
    if "e" in args.only:
        print(f"(e) BLAS threads ({load()})")
        for label, ms in svd_times().items():
            print(f"  SVD of a 156 x 72 matrix, {label:16s} {ms:7.2f} ms (median of 30)")
        for label, value in (("libraries' default threads (CMMM_BLAS_THREADS=0)", "0"),
                             ("one BLAS thread (the pipeline's default)", "1")):
            rows = growth([(0, 0)], ROOT, {"CMMM_BLAS_THREADS": value})
            r = rows[0]
            print(f"  sample refresh in process, {label:52s} CPU {r['cpu']:6.2f} s  wall {r['wall']:6.2f} s "
                  f"(load {r['load']:.1f})", flush=True)
    if "f" in args.only:
        print(f"(f) refuters, vectorised and DoWhy's, same draws ({load()})")
        refuters_side_by_side()
    if "g" in args.only:
        print(f"(g) where a warm refresh's CPU goes, in process, libraries frozen ({load()})")
        refresh_parts(channel_counts=args.parts_channels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
