"""report.html as a reader sees it: two real weekly runs (last week's data, then this week's) into
one output folder, the report opened in headless Chromium on a 1280 px laptop and on a phone; and a
run of a config with neither a mediator nor a price control, whose report must speak only of its own
nodes.

Needs /usr/bin/chromium (Debian package `chromium`); skipped with that reason when it is absent.
`CMMM_UPDATE_SCREENSHOTS=1` also saves the 1280 px laptop screenshot as docs/report.png.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from cmmm_pipeline.definitions import SAMPLE_CONFIG

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio", "--disable-dev-shm-usage")
CHROMIUM_TIMEOUT = 120.0
UPDATE_SCREENSHOTS = os.environ.get("CMMM_UPDATE_SCREENSHOTS") == "1"
SECTIONS = {"attention": "What needs attention", "summary": "Summary",
            "dag": "Causal DAG and its tested implications", "forest": "ROI by channel: causal vs naive",
            "contributions": "Contributions over time", "response": "Response curves",
            "refuters": "Refutation tests", "independence": "Independence tests implied by the DAG",
            "suggestions": "Questioning the DAG: proposed edits", "overlap": "Overlap (positivity)", "identification": "Identification",
            "experiments": "Lift experiments vs the model", "history": "Change since the previous run",
            "inputs": "Run inputs", "periods": "Effects by period", "plan": "Budget plan"}
SAMPLE_SECTIONS = {"campaigns": "Campaigns", "conditions": "Effects by condition", "synergies": "Synergies"}
"""Sections of what the sample's config declares (a campaign, an effect modifier, a synergy pair)."""
PHONE_WIDTH = 390
NUMBER = r"-?\d+\.\d\d"
INTERVAL = rf"{NUMBER}(?:–| to ){NUMBER}"
HEADLINE = (rf"{{channel}} returned {NUMBER} sales per unit spent \(95% interval {INTERVAL}\)|"
            rf"{{channel}} ?'s next unit of spend returns {NUMBER} sales \(marginal ROI, 95% interval {INTERVAL}\); "
            rf"its ROI against zero spend, {NUMBER} sales per unit spent")
"""A channel's headline: its ROI, or its marginal ROI first where ROI against zero spend is extrapolated."""
LAPTOP_WIDTH = 1280

needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(),
                                    reason="headless Chromium not installed (/usr/bin/chromium): "
                                           "apt-get install -y chromium")


def stop_chromium(process: subprocess.Popen, profile: str) -> None:
    """Kill the browser's whole process group (no renderer outlives a test) and remove its profile."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)
    shutil.rmtree(profile, ignore_errors=True)


def run_chromium(args: Sequence[str], timeout: float = CHROMIUM_TIMEOUT) -> str:
    """Run headless Chromium with a fresh profile; returns stdout. The whole process group is
    stopped afterwards, so no renderer outlives the call."""
    profile = tempfile.mkdtemp(prefix="cmmm-chromium-")
    process = subprocess.Popen([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        stop_chromium(process, profile)
    assert process.returncode == 0, f"chromium exited with {process.returncode}"
    return out


def screenshot(url: str, path: Path, width: int, height: int, budget_ms: int = 5000) -> Path:
    run_chromium([f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}",
                  f"--screenshot={path}", url])
    assert path.is_file() and path.stat().st_size > 0
    return path


def dump_dom(url: str, width: int = 1280, height: int = 900, budget_ms: int = 5000) -> str:
    return run_chromium([f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url])


def image_stats(path: Path) -> tuple[int, float]:
    """(distinct colours, share of pixels that are not near-white) of a PNG."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        pixels = rgb.width * rgb.height
        inked = sum(count for count, (r, g, b) in colours if min(r, g, b) < 235)
    return len(colours), inked / pixels


@pytest.fixture(scope="module")
def weekly_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs into one output folder and warehouse, as two consecutive weeks would make them:
    the sample without its last week, then the full sample."""
    from cmmm_pipeline.cli import main

    root = tmp_path_factory.mktemp("weekly_runs")
    last_week = root / "last_week"
    last_week.mkdir()
    data = pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv")
    data.iloc[:-1].to_csv(last_week / "weekly.csv", index=False)
    (last_week / "config.yaml").write_text(SAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    output = root / "output"
    assert main(["run", "--config", str(last_week / "config.yaml"), "--output", str(output)]) == 0
    assert main(["run", "--output", str(output)]) == 0
    return output


def _text(fragment: str) -> str:
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@needs_chromium
def test_the_browser_shows_every_section_and_the_week_over_week_change(weekly_runs: Path) -> None:
    dom = dump_dom((weekly_runs / "report.html").as_uri())
    for section_id, heading in {**SECTIONS, **SAMPLE_SECTIONS}.items():
        match = re.search(rf'<section id="{section_id}"><h2>(.*?)</h2>', dom)
        assert match, f"section {section_id} not rendered"
        assert _text(match.group(1)) == heading
    summary = _text(re.search(r'<section id="summary">(.*?)</section>', dom, flags=re.DOTALL).group(1))
    for channel in ("tv", "search", "digital", "email"):
        assert re.search(HEADLINE.format(channel=channel), summary), channel
    assert "since the previous run" in summary and "first run" not in summary
    history = _text(re.search(r'<section id="history">(.*?)</section>', dom, flags=re.DOTALL).group(1))
    assert "Compared with run" in history and "Total-effect ROI over the last 2 runs" in history
    changes = pd.read_csv(weekly_runs / "estimate_changes.csv")
    assert changes["previous_roi"].notna().all() and (changes["change"] != 0).any()


@needs_chromium
def test_the_laptop_screenshot_is_a_rendered_page(weekly_runs: Path, tmp_path: Path) -> None:
    shot = screenshot((weekly_runs / "report.html").as_uri(), tmp_path / "report.png", LAPTOP_WIDTH, 2600)
    colours, inked = image_stats(shot)
    assert colours > 500, "the screenshot has too few colours to hold the plots"
    assert 0.05 < inked < 0.9, f"{inked:.0%} of the page is inked"
    if UPDATE_SCREENSHOTS:
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "report.png")


LAYOUT_PROBE = (
    "const f=document.getElementById('frame');f.addEventListener('load',()=>{"
    "const d=f.contentDocument,w=f.contentWindow,b=document.body,imgs=[...d.images];"
    "b.dataset.viewport=w.innerWidth;b.dataset.scrollWidth=d.scrollingElement.scrollWidth;"
    "b.dataset.images=imgs.length;"
    "b.dataset.imagesLoaded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;"
    "b.dataset.imagesFit=imgs.filter(i=>i.getBoundingClientRect().right<=w.innerWidth).length;"
    "b.dataset.sections=d.querySelectorAll('section h2').length;"
    "b.dataset.scrollingTables=[...d.querySelectorAll('.scroll')].filter(e=>e.scrollWidth>e.clientWidth+1).length;"
    "const dag=d.querySelector('#dag img');b.dataset.dagImage=dag&&dag.naturalWidth>0?dag.naturalWidth:0;"
    "const r=[...d.querySelectorAll('#forest ul.reasons li')].map(li=>li.textContent.trim());"
    "b.dataset.reasons=r.length;const p=d.createElement('pre');p.id='reasons';p.textContent=r.join('\\n');"
    "b.appendChild(p);});")
LAYOUT_KEYS = "viewport|scroll-width|images|images-loaded|images-fit|sections|scrolling-tables|dag-image|reasons"


def framed(report: Path, target: Path, width: int) -> Path:
    """A page that shows the report in a frame `width` px wide (headless windows are at least 500 px
    wide) and writes what the browser laid out into data attributes of its own body."""
    import html

    srcdoc = html.escape(report.read_text(encoding="utf-8"), quote=True)
    target.write_text(f'<!doctype html><html><body style="margin:0"><iframe id="frame" '
                      f'style="width:{width}px;height:900px;border:0" srcdoc="{srcdoc}"></iframe>'
                      f"<script>{LAYOUT_PROBE}</script></body></html>", encoding="utf-8")
    return target


def laid_out(report: Path, tmp_path: Path, width: int) -> tuple[dict[str, int], list[str]]:
    """What Chromium laid out for the report at `width` px: the measured numbers, and the
    naive-vs-causal reason of each channel as the browser shows it."""
    page = framed(report, tmp_path / f"frame{width}.html", width)
    dom = dump_dom(page.as_uri(), width=max(width + 20, 600), height=900)
    measured = {k: int(v) for k, v in re.findall(rf'data-({LAYOUT_KEYS})="(\d+)"', dom)}
    reasons = re.search(r'<pre id="reasons">(.*?)</pre>', dom, flags=re.DOTALL)
    return measured, [_text(r) for r in (reasons.group(1).split("\n") if reasons else []) if r.strip()]


@needs_chromium
def test_at_1280_px_nothing_scrolls_sideways_and_the_dag_and_reasons_are_shown(weekly_runs: Path,
                                                                              tmp_path: Path) -> None:
    measured, reasons = laid_out(weekly_runs / "report.html", tmp_path, LAPTOP_WIDTH)
    assert measured["viewport"] == LAPTOP_WIDTH
    assert measured["scroll-width"] <= LAPTOP_WIDTH, "the page scrolls sideways at 1280 px"
    assert measured["scrolling-tables"] == 0, "a table needs a sideways scroll at 1280 px"
    assert measured["sections"] == len(SECTIONS) + len(SAMPLE_SECTIONS)
    assert measured["dag-image"] > 300 and measured["images-loaded"] == measured["images"] == 5
    by_channel = {r.split(":", 1)[0]: r for r in reasons}
    assert set(by_channel) == {"tv", "search", "digital", "email"}
    assert re.fullmatch(r"tv: causal ROI \d\.\d\d against naive \d\.\d\d \(\+\d\.\d\d\): the naive regression holds "
                        r"search fixed, a mediator of tv, so it misses the \d\.\d\d per unit that flows through search "
                        r"\(the halo\)\.", by_channel["tv"]), by_channel["tv"]
    for channel in ("search", "digital", "email"):  # same adjustment as the naive regression on the sample
        assert by_channel[channel].endswith("so it does not change this answer."), by_channel[channel]
    dom = dump_dom((weekly_runs / "report.html").as_uri())
    contributions = _text(re.search(r'<section id="contributions">(.*?)</section>', dom, flags=re.DOTALL).group(1))
    assert "tv is stacked with its direct effect only" in contributions
    assert "the rest is baseline, seasonality, trend, price and noise" in contributions


NO_MEDIATOR_CONFIG = """\
# The sample's data without search and price: no mediator, no price control.
data: {path: weekly.csv, date_column: week, kpi: sales}
channels:
  tv:      {spend_column: tv_spend, adstock: {type: geometric, decay: 0.6},
            saturation: {type: hill, half_saturation: 1.0, slope: 1.4}}
  digital: {spend_column: digital_spend, adstock: {type: geometric, decay: 0.3},
            saturation: {type: hill, half_saturation: 1.0, slope: 1.2}}
  email:   {spend_column: email_spend, adstock: {type: geometric, decay: 0.1},
            saturation: {type: hill, half_saturation: 1.5, slope: 1.0}}
controls: [seasonality, trend]
graph:
  edges:
    - [seasonality, tv]
    - [seasonality, digital]
    - [seasonality, sales]
    - [tv, sales]
    - [digital, sales]
    - [email, sales]
    - [trend, sales]
"""


@pytest.fixture(scope="module")
def no_mediator_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of a config with neither a mediator nor a price control, on the sample's weeks."""
    from cmmm_pipeline.cli import main

    root = tmp_path_factory.mktemp("no_mediator")
    data = pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv").drop(columns=["search_spend", "price"])
    data.to_csv(root / "weekly.csv", index=False)
    (root / "config.yaml").write_text(NO_MEDIATOR_CONFIG, encoding="utf-8")
    output = root / "output"
    assert main(["run", "--config", str(root / "config.yaml"), "--output", str(output)]) == 0
    return output


@needs_chromium
def test_a_config_without_mediators_or_price_reads_correctly(no_mediator_run: Path, tmp_path: Path) -> None:
    report = no_mediator_run / "report.html"
    measured, reasons = laid_out(report, tmp_path, LAPTOP_WIDTH)
    assert measured["scroll-width"] <= LAPTOP_WIDTH and measured["scrolling-tables"] == 0
    assert measured["sections"] == len(SECTIONS) and measured["dag-image"] > 300
    assert {r.split(":", 1)[0] for r in reasons} == {"tv", "digital", "email"}
    for reason in reasons:  # no mediator: the DAG adjusts as the naive regression does
        assert "mediator" not in reason and reason.endswith("so it does not change this answer."), reason
    dom = dump_dom(report.as_uri())
    page = _text(re.sub(r"<pre>.*?</pre>", "", dom, flags=re.DOTALL))
    assert "price" not in page and "search" not in page and "halo" not in page
    contributions = _text(re.search(r'<section id="contributions">(.*?)</section>', dom, flags=re.DOTALL).group(1))
    assert "the rest is baseline, seasonality, trend and noise" in contributions and "(direct)" not in contributions
    summary = _text(re.search(r'<section id="summary">(.*?)</section>', dom, flags=re.DOTALL).group(1))
    for channel in ("tv", "digital", "email"):
        assert re.search(HEADLINE.format(channel=channel), summary), channel
    assert "directly and" not in summary
    inputs = _text(re.search(r'<section id="inputs">(.*?)</section>', dom, flags=re.DOTALL).group(1))
    assert "No transform was selected from the data" in inputs and "Weibull" not in inputs
    shot = screenshot(report.as_uri(), tmp_path / "no_mediator.png", LAPTOP_WIDTH, 2000)
    assert image_stats(shot)[0] > 500


def phone_frame(report: Path, target: Path) -> Path:
    """A page that shows the report in a phone-sized frame (headless windows are at least 500 px
    wide) and writes what the browser laid out into data attributes of its own body."""
    import html

    probe = ("const f=document.getElementById('phone');f.addEventListener('load',()=>{"
             "const d=f.contentDocument,w=f.contentWindow,b=document.body,imgs=[...d.images];"
             "b.dataset.viewport=w.innerWidth;b.dataset.scrollWidth=d.documentElement.scrollWidth;"
             "b.dataset.images=imgs.length;"
             "b.dataset.imagesLoaded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;"
             "b.dataset.imagesFit=imgs.filter(i=>i.getBoundingClientRect().right<=w.innerWidth).length;"
             "b.dataset.sections=d.querySelectorAll('section h2').length;});")
    srcdoc = html.escape(report.read_text(encoding="utf-8"), quote=True)
    target.write_text(f'<!doctype html><html><body style="margin:0"><iframe id="phone" '
                      f'style="width:{PHONE_WIDTH}px;height:844px;border:0" srcdoc="{srcdoc}"></iframe>'
                      f"<script>{probe}</script></body></html>", encoding="utf-8")
    return target


@needs_chromium
def test_on_a_phone_the_page_fits_the_screen_and_every_image_loads(weekly_runs: Path, tmp_path: Path) -> None:
    page = phone_frame(weekly_runs / "report.html", tmp_path / "phone.html")
    dom = dump_dom(page.as_uri(), width=600, height=900)
    measured = {k: int(v) for k, v in re.findall(
        r'data-(viewport|scroll-width|images|images-loaded|images-fit|sections)="(\d+)"', dom)}
    assert measured["viewport"] == PHONE_WIDTH
    assert measured["sections"] == len(SECTIONS) + len(SAMPLE_SECTIONS)
    assert measured["images"] == 5
    assert measured["images-loaded"] == 5 and measured["images-fit"] == 5
    assert measured["scroll-width"] <= PHONE_WIDTH, "the page scrolls sideways on a phone"
    shot = screenshot(page.as_uri(), tmp_path / "phone.png", 600, 900)
    colours, inked = image_stats(shot)
    assert colours > 50 and inked > 0.03


@needs_chromium
def test_the_sentences_quoted_in_the_docs_are_what_the_sample_report_says(weekly_runs: Path) -> None:
    """docs/report.md quotes the sample's report; a quote that drifts from what the run prints fails."""
    import html

    docs = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    quotes = re.findall(r'\*"((?:tv|search)[^"]+)"\*', docs)
    assert len(quotes) >= 3
    dom = dump_dom((weekly_runs / "report.html").as_uri())
    page = " ".join(html.unescape(re.sub(r"<[^>]+>", "", dom)).split())
    for quote in quotes:
        for fragment in (f.strip(" ,") for f in quote.split("…")):
            assert not fragment or fragment in page, fragment
