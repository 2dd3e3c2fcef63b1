"""`loop report runs/A [runs/B ...]`: one self-contained HTML page (PNGs embedded) plus the PNGs.

Per round: accuracy (loop vs control), pass@k and maj@k, rewards by component, the filter
funnel, diversity, calibration (ECE series and the last round's reliability diagram), the
alarms that fired, and a few sample rollouts with their verdicts. Several runs overlay in
every plot. Reads only what a run writes (metrics.jsonl, alarms.jsonl, round_*/monitor/,
the last scored.parquet), so it works on a finished run or one still going.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from policies.atomic import write_text
from loop.compare import RunMetrics, check_output, load_runs
from loop.monitor.alarms import read_alarms
from loop.monitor.metrics import CONFIDENCE_MEANINGS, MEANINGS
from loop.report_plots import plot_funnel, plot_lines, plot_panels, plot_reliability
from loop.rundir import RunDirError

DIVERSITY_PANELS = [(f"diversity/<set>/{k}", k) for k in (
    "distinct_2", "self_bleu", "embed_within", "embed_across", "answer_entropy", "identical_share", "nll_per_token")]
SAMPLE_ROWS = 6


def build_report(run_dirs: list[str], out_dir: Path) -> Path:
    """Write `out_dir/report.html` and its PNGs; return the HTML's path."""
    runs = load_runs(run_dirs)  # everything is read (and a damaged file refused) before a file is written
    check_output(out_dir, "--out", "directory")
    alarms = _alarms_section(run_dirs, runs)
    samples = _samples_section(run_dirs, runs)
    calibration = [_last_calibration(run_dir) for run_dir in run_dirs]
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [
        ("Held-out accuracy", "Greedy pass@1 per round; the control spends the same optimizer steps on the seed set alone.",
         [plot_lines(runs, [("eval/pass@1", "loop"), ("control/pass@1", "control")], out_dir / "accuracy.png",
                     "held-out greedy pass@1", "pass@1", (0, 1))]),
        ("pass@k and maj@k", "From k samples per eval problem; headroom = pass@k - pass@1.",
         [plot_lines(runs, _keys(runs, r"eval/(pass@\d+|maj@\d+|headroom)$", skip={"eval/pass@1"}),
                     out_dir / "pass_at_k.png", "pass@k, maj@k, headroom", "share of problems", (0, 1))]),
        ("Rewards by component", "Mean score of each reward over the round's samples.",
         [plot_lines(runs, _keys(runs, r"reward/[^/]+/mean$"), out_dir / "rewards.png", "rewards", "mean score")]),
        ("Filter funnel", "Samples left after each stage in the last round.", [plot_funnel(runs, out_dir / "funnel.png")]),
        ("Diversity", "Rollouts (all samples), kept (trained on) and eval (held-out samples).",
         [plot_panels(runs, DIVERSITY_PANELS, ("rollouts", "kept", "eval"), out_dir / "diversity.png", "diversity")]),
        ("Calibration", "; ".join(f"{k}: {v}" for k, v in CONFIDENCE_MEANINGS.items()) + ".",
         [plot_lines(runs, [(f"calibration/{c}/{m}", f"{c} {m}") for c in CONFIDENCE_MEANINGS for m in ("ece", "brier")],
                     out_dir / "calibration.png", "ECE and Brier score", "lower is better")]
         + [plot_reliability(last["bins"], out_dir / f"reliability_{run.name}.png", f"{run.name}, round {last['round']}")
            for run, last in zip(runs, calibration) if last is not None]),
    ]
    body = "".join(_section(title, text, [p for p in plots if p]) for title, text, plots in sections)
    body += alarms + samples + _glossary()
    title = "selfloop report: " + ", ".join(run.name for run in runs)
    page = _PAGE.format(title=html.escape(title), body=body)
    out = out_dir / "report.html"
    write_text(out, page)
    return out


def _keys(runs: list[RunMetrics], pattern: str, skip: set[str] = frozenset()) -> list[tuple[str, str]]:
    found = sorted({k for run in runs for row in run.rows for k in row if re.match(pattern, k) and k not in skip})
    return [(k, k.removeprefix("eval/").removeprefix("reward/").removesuffix("/mean")) for k in found]


def _last_calibration(run_dir: str) -> dict | None:
    """The last round's calibration.json (its reliability bins), or None when none was written."""
    files = sorted(Path(run_dir).glob("round_*/monitor/calibration.json"))
    if not files:
        return None
    try:
        last = json.loads(files[-1].read_bytes())
    except (OSError, ValueError):
        last = None
    bins = last.get("bins") if isinstance(last, dict) else None
    whole = isinstance(bins, dict) and all(
        isinstance(table, list) and all(isinstance(b, dict) and {"count", "confidence", "accuracy"} <= set(b) for b in table)
        for table in bins.values())
    if not (whole and isinstance(last.get("round"), int)):
        raise RunDirError(f"{files[-1]} is damaged (not a calibration record with round and bins); "
                          "restore or delete it")
    return last


def _section(title: str, text: str, plots: list[Path]) -> str:
    if not plots:
        return f"<h2>{html.escape(title)}</h2><p class='note'>Nothing logged for this yet.</p>"
    images = "".join(f"<figure><img alt='{html.escape(p.stem)}' src='data:image/png;base64,"
                     f"{base64.b64encode(p.read_bytes()).decode()}'></figure>" for p in plots)
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{images}"


def _alarms_section(run_dirs: list[str], runs: list[RunMetrics]) -> str:
    rows = [(run.name, a) for run_dir, run in zip(run_dirs, runs) for a in read_alarms(Path(run_dir) / "alarms.jsonl")]
    if not rows:
        return "<h2>Alarms</h2><p>No alarm fired.</p>"
    cells = "".join(f"<tr><td>{html.escape(name)}</td><td>{a['round']}</td><td>{html.escape(a['rule'])}</td>"
                    f"<td>{html.escape(a['action'])}</td><td>{html.escape(a['message'])}</td></tr>" for name, a in rows)
    return ("<h2>Alarms</h2><table><tr><th>run</th><th>round</th><th>rule</th><th>action</th><th>why</th></tr>"
            f"{cells}</table>")


def _samples_section(run_dirs: list[str], runs: list[RunMetrics]) -> str:
    """A few of each run's last-round rollouts with what the rewards said about them."""
    from policies.tables import read_parquet

    parts = []
    for run_dir, run in zip(run_dirs, runs):
        scored = sorted(Path(run_dir).glob("round_*/scored.parquet"))
        if not scored:
            continue
        try:
            ds = read_parquet(str(scored[-1]))
        except Exception as err:  # pyarrow's and datasets' errors alike: the file is not readable Parquet
            reason = " ".join(str(err).split())[:120] or type(err).__name__
            raise RunDirError(f"{scored[-1]} is damaged (not readable Parquet: {reason}); restore or delete it") from None
        missing = sorted({"round", "prompt", "completion", "reward"} - set(ds.column_names))
        if missing:
            raise RunDirError(f"{scored[-1]} lacks the rollout columns {', '.join(missing)}; restore or delete it")
        picked = ds.select(range(0, len(ds), max(1, len(ds) // SAMPLE_ROWS))[:SAMPLE_ROWS])
        reasons = [c for c in ds.column_names if c.startswith("reason/")]
        for row in picked:
            verdicts = "<br>".join(f"{html.escape(c.removeprefix('reason/'))}: {html.escape(str(row[c]))}" for c in reasons)
            reward = "rejected by " + row["rejected_by"] if row.get("rejected_by") else f"total {row['reward']}"
            parts.append(f"<tr><td>{html.escape(run.name)}</td><td>{row['round']}</td>"
                         f"<td><pre>{html.escape(row['prompt'])}</pre></td><td><pre>{html.escape(row['completion'])}</pre></td>"
                         f"<td>{html.escape(reward)}</td><td>{verdicts}</td></tr>")
    if not parts:
        return ""
    return ("<h2>Sample rollouts</h2><table><tr><th>run</th><th>round</th><th>prompt</th><th>completion</th>"
            f"<th>reward</th><th>verdicts</th></tr>{''.join(parts)}</table>")


def _glossary() -> str:
    rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td></tr>" for k, v in MEANINGS.items())
    return f"<h2>What the monitoring metrics mean</h2><table>{rows}</table>"


# The script only reports: it counts the plots that decoded, for a reader (and the browser test).
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
img {{ max-width: 100%; }} figure {{ margin: 0.5em 0; }} .note {{ color: #777; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} td, th {{ border: 1px solid #ccc; padding: 4px; vertical-align: top; }}
pre {{ white-space: pre-wrap; margin: 0; max-width: 30em; }}
</style></head>
<body><h1>{title}</h1><p id="plot-status"></p>
{body}
<script>
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var shown = images.filter(function (img) {{ return img.complete && img.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-plots-shown", shown + "/" + images.length);
  document.getElementById("plot-status").textContent = shown + " of " + images.length + " plots shown";
}});
</script>
</body></html>
"""
