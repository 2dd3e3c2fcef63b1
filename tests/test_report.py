"""`loop report`: an HTML report from a run's files; a damaged input is refused in one line
before a single PNG is written, and a metric that is NaN in every round draws nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loop.cli import main


def write_run(root: Path, diversity_nan: bool = True) -> Path:
    """A finished run as `loop report` reads it: metrics.jsonl, and nothing else."""
    run = root / "run"
    run.mkdir(parents=True)
    rows = [{"round": r, "eval/pass@1": 0.1 * r, "reward/math/mean": 0.2 * r,
             "diversity/rollouts/distinct_2": float("nan") if diversity_nan else 0.5,
             "diversity/rollouts/self_bleu": 0.3, "diversity/kept/self_bleu": 0.4} for r in range(3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run


def test_report_draws_panels_when_the_first_panel_is_all_nan(tmp_path: Path, capfd):
    run = write_run(tmp_path)
    assert main(["report", str(run)]) == 0
    assert (run / "report" / "diversity.png").read_bytes().startswith(b"\x89PNG")
    html = (run / "report" / "report.html").read_text()
    assert "Diversity" in html and capfd.readouterr().err == ""


def test_report_out_that_is_a_file_is_refused(tmp_path: Path, capfd):
    run = write_run(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert main(["report", str(run), "--out", str(tmp_path / "afile")]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.splitlines() == [f"error: --out {str(tmp_path / 'afile')!r} is a file; give a directory path"]


@pytest.mark.parametrize("damage, message", [
    (("alarms.jsonl", '{"round": 1, "rule": "x"\n'), "alarms.jsonl:1 is not an alarm record"),
    (("alarms.jsonl", '{"round": 1, "rule": "x", "action": "warn"}\n'), "alarms.jsonl:1 is not an alarm record"),
    (("round_001/monitor/calibration.json", "{oops"), "calibration.json is damaged"),
    (("round_001/scored.parquet", "PAR1 junk"), "scored.parquet is damaged (not readable Parquet"),
])
def test_a_damaged_run_file_is_refused_before_anything_is_written(tmp_path: Path, capfd, damage, message):
    run = write_run(tmp_path)
    path = run / damage[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(damage[1])
    before = sorted(tmp_path.rglob("*"))
    assert main(["report", str(run)]) == 2
    out, err = capfd.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and message in err
    assert sorted(tmp_path.rglob("*")) == before
