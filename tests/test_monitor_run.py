"""Monitoring in a real (tiny) run: the metrics land in metrics.jsonl, a `stop` alarm ends the
run after its round, `loop resume --force` with changed alarms continues it, and `loop report`
writes an HTML page that a real headless Chromium loads with every plot and no console output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import write_config

from loop.cli import main
from loop.monitor.config import default_alarms
from loop.monitor.metrics import SETS, meaning

STOP_RULE = {"name": "stop_when_training_starts", "action": "stop",
             "when": [{"metric": "filter/stack/accept_rate", "above": -1.0}]}


@pytest.fixture(scope="module")
def stopped_then_resumed(tmp_path_factory) -> tuple[Path, int, list[dict]]:
    tmp = tmp_path_factory.mktemp("monitor_run")
    code = main(["run", str(write_config(tmp, monitor__alarms=[STOP_RULE], control__enabled=False))])
    run = tmp / "runs" / "tiny"
    rows_at_stop = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert main(["resume", str(run), "--set", "monitor.alarms=[]", "--force"]) == 0
    return run, code, rows_at_stop


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_every_monitoring_metric_lands_in_metrics_jsonl(stopped_then_resumed):
    run, _, _ = stopped_then_resumed
    rows = _rows(run)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert 0.0 <= rows[0]["data/train_eval_overlap"] <= 1.0
    for row in rows[1:]:
        for name in SETS:
            for metric in ("distinct_1", "distinct_2", "distinct_3", "self_bleu", "embed_within", "embed_across",
                           "answers_distinct", "answer_entropy", "identical_share"):
                assert f"diversity/{name}/{metric}" in row, (name, metric)
        for key in ("diversity/rollouts/nll_per_token", "diversity/eval/nll_per_token", "eval/headroom",
                    "filter/near_dup/dropped_earlier", "filter/near_dup/dropped_round",
                    "filter/contamination/dropped", "funnel/generated", "funnel/contamination",
                    "monitor/rollouts_seconds", "monitor/eval_seconds", "monitor/hygiene_seconds"):
            assert key in row, key
        for conf in ("sequence", "consistency"):
            assert 0.0 <= row[f"calibration/{conf}/ece"] <= 1.0 and 0.0 <= row[f"calibration/{conf}/brier"] <= 1.0
        assert (run / f"round_{row['round']:03d}" / "monitor" / "reliability.png").exists()
    monitored = [k for row in rows for k in row if k.startswith(("diversity/", "calibration/", "funnel/", "data/", "monitor/"))]
    assert all(meaning(k) for k in monitored), [k for k in monitored if not meaning(k)]


def test_a_stop_alarm_ends_the_run_after_its_round_and_resume_continues(stopped_then_resumed):
    run, code, rows_at_stop = stopped_then_resumed
    assert code == 3 and [r["round"] for r in rows_at_stop] == [0, 1]
    alarms = [json.loads(line) for line in (run / "alarms.jsonl").read_text().splitlines()]
    assert [(a["round"], a["rule"], a["action"]) for a in alarms] == [(1, "stop_when_training_starts", "stop")]
    assert json.loads((run / "state.json").read_text())["done"] is True


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _load_in_chromium(page: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the page's console messages."""
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                          "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    return out.stdout, [line for line in out.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (apt-get install chromium)")
def test_the_console_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><img src='data:image/png;base64,AAAA'><script>undefinedFn();</script></body></html>")
    _, console = _load_in_chromium(page)
    assert any("undefinedFn" in line for line in console)


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (apt-get install chromium)")
def test_report_opens_in_headless_chromium_with_every_plot_and_no_console_errors(stopped_then_resumed, tmp_path):
    run, _, _ = stopped_then_resumed
    assert main(["report", str(run), str(run), "--out", str(tmp_path / "two")]) == 0  # the overlay path
    assert main(["report", str(run)]) == 0
    page = run / "report" / "report.html"
    pngs = sorted(p.name for p in (run / "report").glob("*.png"))
    assert pngs == ["accuracy.png", "calibration.png", "diversity.png", "funnel.png", "pass_at_k.png",
                    "reliability_tiny.png", "rewards.png"]
    assert "src='data:image/png;base64," in page.read_text() and "<img src='http" not in page.read_text()
    dom, console = _load_in_chromium(page)
    assert console == []
    shown = re.search(r'data-plots-shown="(\d+)/(\d+)"', dom)
    assert shown and shown.group(1) == shown.group(2) == str(len(pngs)), dom[:300]
    for heading in ("Held-out accuracy", "pass@k and maj@k", "Rewards by component", "Filter funnel", "Diversity",
                    "Calibration", "Alarms", "Sample rollouts"):
        assert f"<h2>{heading}</h2>" in dom
    assert "stop_when_training_starts" in dom  # the alarm that stopped the run


@pytest.mark.slow
def test_the_collapse_config_trips_a_built_in_alarm(tmp_path):
    """configs/demo_collapse.yaml (the healthy demo's counterpart is tests/test_demo.py)."""
    config = Path(__file__).resolve().parents[1] / "configs" / "demo_collapse.yaml"
    assert main(["run", str(config), "--set", f"runs_dir={tmp_path}", "--set", "tracking.wandb=false"]) == 0
    alarms = [json.loads(line) for line in (tmp_path / "demo_collapse" / "alarms.jsonl").read_text().splitlines()]
    assert alarms and {a["rule"] for a in alarms} <= {r.name for r in default_alarms()}
