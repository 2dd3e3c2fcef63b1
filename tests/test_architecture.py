"""The package layering: `loop` -> `policies` -> `rewards`, checked by import-linter.

The contract lives in pyproject.toml (`[tool.importlinter]`); lazy imports inside functions
count too, so a reward that reaches up for an engine fails here.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run([exe], cwd=cwd, capture_output=True, text=True)


def test_layers_run_one_way():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract can fail: a copy of the packages where a reward imports the controller."""
    for package in ("loop", "policies", "rewards"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "rewards" / "upward.py").write_text("def f():\n    from loop import controller\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0 and "rewards.upward -> loop.controller" in result.stdout


def test_cli_and_config_load_without_torch():
    """Bad input is answered before any model code loads: the CLI, the config and every
    section's validation import neither torch nor TRL (they cost seconds at start-up)."""
    code = ("import sys, loop.cli, loop.config; loop.config.load_config(\"configs/demo.yaml\"); "
            "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
