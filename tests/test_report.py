"""`mentor report`: a self-contained HTML page whose every chart loads in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mentor.commands_eval  # noqa: F401 - registers judge/report on the app
from mentor.cli import app
from mentor.compare import compare
from mentor.data import load_examples
from mentor.judge import compare_explanations
from mentor.report import build_report
from mentor.runner import open_store
from mentor.targets import resolve_systems, run_context
from mentor.tasks import EXPLAIN
from tests.finished import explained, finished_run
from tests.conftest import make_examples

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHARTS = ["progress.png", "confusion.png", "models.png", "preference.png", "curriculum_class.png",
          "curriculum_source.png", "time.png"]


class Longer:
    name = "scripted: prefers the longer explanation"

    def prefer(self, task, item, a, b):
        return ("A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"), f"lengths {len(a)} and {len(b)}"


@pytest.fixture
def full_run(tmp_path, home) -> int:
    """A finished run with a saved comparison and a saved judgement; round 1 marked best so both
    confusion matrices are drawn."""
    run_id, data = finished_run(tmp_path)
    store = open_store()
    ctx = run_context(None, str(run_id), need_run=True)
    store.save_evaluation(run_id, "eval", str(data),
                          compare(resolve_systems(ctx, ["base", "best", "tfidf"]), load_examples(data, ctx.task), str(data)))
    items = explained(make_examples(3, "j"))
    judged = compare_explanations(Longer(), EXPLAIN, items, ["a longer explanation"] * 12, ["short"] * 12, ("best", "base"))
    store.save_evaluation(run_id, "judge", "holdout", judged)
    store.finish_run(run_id, "finished", "test", 1)
    return run_id


def test_report_writes_html_and_charts_that_need_no_network(full_run, tmp_path):
    path = build_report(open_store(), full_run, tmp_path / "out")
    html = path.read_text(encoding="utf-8")
    for name in CHARTS:
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sources = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(sources) == len(CHARTS) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing fetched from the network
    for text in ("Progress per round", "Best round 1:", "Confusion matrices", "Model comparison", "tfidf",
                 "Explanation preference", "scripted: prefers the longer explanation", "Curriculum per round",
                 "Teacher feedback per round", "Proficiency", "Tokens, cost and time"):
        assert text in html
    # Values from the store are escaped, never markup.
    assert "<script" not in html


def test_report_of_a_bare_run_says_which_commands_fill_it(tmp_path, home):
    run_id, _ = finished_run(tmp_path, rounds=1)
    result = CliRunner().invoke(app, ["report", str(run_id)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    path = Path(result.stdout.split("wrote ", 1)[1].strip())
    assert path == home / "runs" / str(run_id) / "report" / "report.html"
    html = path.read_text(encoding="utf-8")
    assert f"mentor eval --run {run_id}" in html and f"mentor judge {run_id}" in html
    assert not (path.parent / "models.png").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_every_chart_loads_in_headless_chromium(full_run, tmp_path):
    path = build_report(open_store(), full_run, tmp_path / "out")
    # A copy of the page with a probe that records, after load, how many images decoded to real pixels.
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             " document.body.dataset.images = imgs.length;"
             " document.body.dataset.loaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; });</script>")
    check = path.parent / "check.html"
    check.write_text(path.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", check.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-images="(\d+)" data-loaded="(\d+)"', dom)
    assert found, dom[-2000:]
    assert int(found.group(1)) == len(CHARTS) and found.group(2) == found.group(1)
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1200,3000", f"--screenshot={shot}", path.as_uri()], capture_output=True,
                   timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
