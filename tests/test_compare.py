"""`loop compare`: runs side by side from their metrics.jsonl, and one plot line per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loop.cli import main


def write_run(root: Path, name: str, accuracies: list[float]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    rows = [{"round": r, "eval/pass@1": a, "eval/maj@4": a / 2, "rollout/accept_rate": 0.25 * r,
             "train/examples": 10.0 * r, "time/generate_s": 1.5, "time/round_s": 3.0}
            for r, a in enumerate(accuracies)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run


def test_compare_prints_each_run_per_round_and_writes_a_plot(tmp_path: Path, capsys):
    a = write_run(tmp_path, "rft", [0.1, 0.5, 0.9])
    b = write_run(tmp_path, "star", [0.1, 0.6])  # still running: fewer rounds
    out = tmp_path / "cmp.png"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if " rft " in line or " star " in line]
    assert len(lines) == 5  # 3 rounds of rft, 2 of star
    assert "0.900" in lines[-1] and "maj@4" in text
    assert out.read_bytes().startswith(b"\x89PNG")


def test_compare_names_a_directory_without_metrics(tmp_path: Path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "has no metrics.jsonl" in capsys.readouterr().err


def test_compare_names_a_damaged_metrics_line_and_prints_nothing(tmp_path: Path, capfd):
    good = write_run(tmp_path, "good", [0.1, 0.5])
    bad = write_run(tmp_path, "bad", [0.1])
    with (bad / "metrics.jsonl").open("a") as f:
        f.write("{not json\n")
    assert main(["compare", str(good), str(bad), "--out", str(tmp_path / "c.png")]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.splitlines() == [f"error: {bad / 'metrics.jsonl'}:2 is not a metrics record; delete the "
                                              "file: `loop resume` rebuilds it from round_*/metrics/"]
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("out, message", [("adir", "--out 'OUT' is a directory; give a file path"),
                                          ("afile/c.png", "is a file, so it cannot be made")])
def test_compare_refuses_an_unwritable_plot_path_before_printing(tmp_path: Path, capfd, out, message):
    run = write_run(tmp_path, "good", [0.1, 0.5])
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    assert main(["compare", str(run), "--out", str(tmp_path / out)]) == 2
    printed, err = capfd.readouterr()
    assert printed == "" and message.replace("OUT", str(tmp_path / out)) in err
