"""report.html as a reader sees it: two real weekly runs (last week's data, then this week's) into
one output folder, the report opened in headless Chromium on a laptop and on a phone.

Needs /usr/bin/chromium (Debian package `chromium`); skipped with that reason when it is absent.
`CMMM_UPDATE_SCREENSHOTS=1` also saves the laptop screenshot as docs/report.png.
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
            "overlap": "Overlap (positivity)", "identification": "Identification",
            "experiments": "Lift experiments vs the model", "history": "Change since the previous run",
            "inputs": "Run inputs"}
PHONE_WIDTH = 390

needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(),
                                    reason="headless Chromium not installed (/usr/bin/chromium): "
                                           "apt-get install -y chromium")


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
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
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
    for section_id, heading in SECTIONS.items():
        match = re.search(rf'<section id="{section_id}"><h2>(.*?)</h2>', dom)
        assert match, f"section {section_id} not rendered"
        assert _text(match.group(1)) == heading
    summary = _text(re.search(r'<section id="summary">(.*?)</section>', dom, flags=re.S).group(1))
    for channel in ("tv", "search", "digital", "email"):
        assert re.search(rf"{channel} returned \d+\.\d\d sales per unit spent \(95% interval \d+\.\d\d–\d+\.\d\d\)",
                         summary), channel
    assert "since the previous run" in summary and "first run" not in summary
    history = _text(re.search(r'<section id="history">(.*?)</section>', dom, flags=re.S).group(1))
    assert "Compared with run" in history and "Total-effect ROI over the last 2 runs" in history
    changes = pd.read_csv(weekly_runs / "estimate_changes.csv")
    assert changes["previous_roi"].notna().all() and (changes["change"] != 0).any()


@needs_chromium
def test_the_laptop_screenshot_is_a_rendered_page(weekly_runs: Path, tmp_path: Path) -> None:
    shot = screenshot((weekly_runs / "report.html").as_uri(), tmp_path / "report.png", 1200, 2600)
    colours, inked = image_stats(shot)
    assert colours > 500, "the screenshot has too few colours to hold the plots"
    assert 0.05 < inked < 0.9, f"{inked:.0%} of the page is inked"
    if UPDATE_SCREENSHOTS:
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "report.png")


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
    assert measured["sections"] == len(SECTIONS)
    assert measured["images"] == 4
    assert measured["images-loaded"] == 4 and measured["images-fit"] == 4
    assert measured["scroll-width"] <= PHONE_WIDTH, "the page scrolls sideways on a phone"
    shot = screenshot(page.as_uri(), tmp_path / "phone.png", 600, 900)
    colours, inked = image_stats(shot)
    assert colours > 50 and inked > 0.03
