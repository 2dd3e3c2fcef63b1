"""Bad input, through the real `loop` CLI in a subprocess: every case exits 2 with ONE line on
stderr naming the field or file, and writes nothing (runs_dir gains nothing, no run dir appears).

The cases run concurrently (each is a fresh interpreter: ~4 s of imports) and are checked one
test each. Hub cases run with HF_HUB_OFFLINE=1: there is no network here, and offline an
uncached id must fail clearly at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "name": "bad",
    "rounds": 1,
    "model": {"tiny": {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}},
    "data": {"task": {"train_size": 20, "eval_size": 5, "seed_size": 2, "num_operands": 2, "max_operand": 9},
             "prompts_per_round": 4},
    "tracking": {"wandb": False},
}
ROWS = "".join(json.dumps({"prompt": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(30))
USER_DATA = {"task": None, "path": "DATA", "eval_size": 5}  # "DATA" becomes the case's data file


@dataclass
class Case:
    id: str
    expect: str  # a substring of the one error line: the field or file, and the fix
    config: dict | str | bytes | None = None  # changes to BASE (dict), or the config file's raw content
    sets: list[str] = field(default_factory=list)
    data: str | bytes | None = None  # content of the data file "DATA" (a .jsonl unless data_name says)
    data_name: str = "data.jsonl"
    command: str = "run"


def changes(**dotted) -> dict:
    """`changes(data__path="x")` -> a nested dict merged into BASE."""
    out: dict = {}
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


CASES = [
    # --- the config file itself
    Case("broken-yaml", "invalid YAML at line", config="name: [unclosed\n"),
    Case("tab", "not tabs", config="name: x\nrounds:\n\t3\n"),
    Case("binary", "not UTF-8 text", config=bytes(range(128, 256)) * 4),
    Case("unicode-garbage", "expected a mapping", config="\u2603\u00ff\u4e2d\u6587 garbage \U0001f600"),
    Case("nul-character", "invalid YAML", config="name: a\u0000b\n"),
    Case("scalar-config", "expected a mapping", config="just a string\n"),
    Case("directory-config", "is a directory", config="DIR"),
    Case("missing-config", "does not exist", config="MISSING"),
    Case("symlink-loop-config", "cannot be read", config="LOOP"),
    # --- overrides
    Case("set-unclosed", "--set 'rollout.stop=[unclosed'", sets=["rollout.stop=[unclosed"]),
    Case("set-no-equals", "expected KEY=VALUE", sets=["rollout.n"]),
    Case("set-non-section", "'rounds' is not a section", sets=["rounds.x=1"]),
    Case("set-empty-part", "empty part", sets=["rollout..n=3"]),
    Case("set-unknown-key", "rollout.nn: unknown key", sets=["rollout.nn=3"]),
    # --- strict types and values
    Case("rounds-true", "rounds: Input should be a valid integer", changes(rounds=True)),
    Case("rounds-string", "rounds: Input should be a valid integer", changes(rounds="3")),
    Case("rounds-negative", "rounds: Input should be greater than or equal to 1", changes(rounds=-1)),
    Case("rounds-float", "rounds: Input should be a valid integer", changes(rounds=2.5)),
    Case("lr-string", "update.learning_rate", changes(update__learning_rate="fast")),
    Case("unknown-algorithm", "update.algorithm", changes(update__algorithm="ppo")),
    Case("section-is-a-list", "rollout", changes(rollout=[1, 2])),
    # --- run names and where runs go
    Case("name-slash", "name: 'a/b' is not a usable run name", changes(name="a/b")),
    Case("name-dotdot", "is not a usable run name", changes(name="..")),
    Case("name-escape", "is not a usable run name", changes(name="../escape")),
    Case("name-empty", "is not a usable run name", changes(name="")),
    Case("name-absolute", "is not a usable run name", changes(name="/tmp/abs_run")),
    Case("name-hidden", "is not a usable run name", changes(name=".hidden")),
    Case("runs-dir-proc", "runs_dir: cannot create directories in '/proc'", changes(runs_dir="/proc/selfloop_runs")),
    Case("runs-dir-file", "is a file", changes(runs_dir="FILE")),
    Case("runs-dir-under-file", "is a file", changes(runs_dir="FILE/sub")),
    # --- data files
    Case("data-empty", "data.path", changes(data=USER_DATA), data=""),
    Case("data-not-json", "could not be read as JSON lines", changes(data=USER_DATA), data="hello\nworld\n"),
    Case("data-binary", "data.path", changes(data=USER_DATA), data=bytes(range(256))),
    Case("data-json-list", "data.path", changes(data=USER_DATA), data="[1, 2, 3]\n", data_name="list.json"),
    Case("data-directory", "is not a file; give a .jsonl", changes(data={**USER_DATA, "path": "DIR"})),
    Case("data-wrong-columns", "data.columns.prompt: column 'prompt' is not in data.jsonl", changes(data=USER_DATA),
         data="".join(json.dumps({"question": f"{i}", "answer": "1"}) + "\n" for i in range(30))),
    Case("data-one-row", "data.eval_size=5 leaves no training prompts", changes(data=USER_DATA),
         data=json.dumps({"prompt": "1+1", "answer": "2"}) + "\n"),
    Case("data-null-prompts", "data.columns.prompt: 1 row(s) of data.jsonl have no 'prompt'", changes(data=USER_DATA),
         data=ROWS + json.dumps({"prompt": None, "answer": "1"}) + "\n"),
    Case("data-null-answers", "data.columns.answer", changes(data=USER_DATA),
         data=ROWS + json.dumps({"prompt": "9+9", "answer": None}) + "\n"),
    Case("data-parquet-garbage", "could not be read as Parquet", changes(data={**USER_DATA, "path": "DATA"}),
         data=b"PAR1 not really", data_name="data.parquet"),
    Case("eval-is-train", "eval prompts also appear in training data",
         changes(data={**USER_DATA, "eval_path": "DATA"}), data=ROWS),
    Case("hub-dataset", "data.dataset: cannot load 'no-such-org/no-such-dataset'",
         changes(data={"task": None, "dataset": "no-such-org/no-such-dataset"})),
    # --- model
    Case("model-empty-dir", "model.name", changes(model={"name": "DIR", "tiny": None})),
    Case("model-hub-unreachable", "model.name: 'no-such-org/no-such-model' is not in the local hub cache",
         changes(model={"name": "no-such-org/no-such-model", "tiny": None})),
    Case("model-bad-hub-id", "model.name", changes(model={"name": "bad id with spaces!", "tiny": None})),
    # --- rewards and verifiers
    Case("verifier-judge-no-args", "eval.verifier: 'judge' needs arguments", sets=["eval.verifier=judge"]),
    Case("verifier-code-no-tests", "eval.verifier: the code reward reads tests from column 'tests'",
         sets=["eval.verifier=code"]),
    Case("reward-code-no-tests", "the code reward reads tests", sets=["rewards=[{name: code}]", "eval.verifier=code"]),
    Case("unknown-reward", "unknown reward 'nonesuch'", sets=["rewards=[{name: nonesuch}]"]),
    # --- numbers that are not numbers: NaN compares false with everything
    Case("weight-nan", "rewards.0.weight: nan is not a finite number", changes(rewards=[{"name": "math", "weight": float("nan")}])),
    Case("temperature-inf", "rollout.temperature: inf is not a finite number", sets=["rollout.temperature=.inf"]),
    Case("lr-inf", "update.learning_rate: inf is not a finite number", sets=["update.learning_rate=.inf"]),
    Case("threshold-nan", "update.threshold: nan is not a finite number", sets=["update.threshold=.nan"]),
    Case("reward-arg-nan", "rewards.0.args.max_share: nan is not a finite number",
         sets=["rewards=[{name: repetition, args: {max_share: .nan}}, {name: math}]"]),
    Case("duplicate-key", "duplicate key 'rounds' (first given at line 2)", config="name: a\nrounds: 7\nrounds: 1\n"),
    # --- templates and stop strings that would make every prompt or completion the same
    Case("prompt-template-no-slot", "data.prompt_template: needs the placeholder {prompt} (it has {problem})",
         changes(data={"prompt_template": "Solve: {problem}"})),
    Case("prompt-template-unknown-slot", "data.prompt_template: unknown placeholder {question}",
         changes(data={"prompt_template": "{prompt} {question}"})),
    Case("hint-template-no-answer", "update.star.hint_template: needs the placeholder {answer}",
         changes(update={"star": {"hint_template": "{prompt} (hint)"}})),
    Case("growth-template-no-examples", "growth.template: needs the placeholder {examples}",
         changes(growth={"template": "Write a new problem:"})),
    Case("growth-stop-empty", "growth.stop: an empty stop string", changes(growth={"stop": ""})),
    Case("rollout-stop-empty", "rollout.stop: an empty stop string", sets=['rollout.stop=[""]']),
    Case("eval-max-new-tokens-0", "eval.max_new_tokens: Input should be greater than or equal to 1",
         sets=["eval.max_new_tokens=0"]),
    Case("eval-max-new-tokens-negative", "eval.max_new_tokens", sets=["eval.max_new_tokens=-1"]),
    Case("all-weights-zero", "rewards: every weight is 0", changes(rewards=[{"name": "math", "weight": 0.0}])),
    Case("lr-scheduler-unknown", "update.lr_scheduler: Input should be", sets=["update.lr_scheduler=cosine_wrong"]),
    # --- model shape, and models beyond model.name
    Case("tiny-heads", "model.tiny: gpt2 needs hidden_size to split evenly over num_heads, got hidden_size 30",
         changes(model={"tiny": {"arch": "gpt2", "hidden_size": 30, "num_heads": 4}})),
    Case("tiny-positions", "rollout.max_new_tokens: 30 new tokens do not fit model.tiny.max_position_embeddings = 16",
         changes(model={"tiny": {"arch": "gpt2", "max_position_embeddings": 16}}, rollout={"max_new_tokens": 30})),
    Case("tiny-gpt2-prompt-too-long", "model.tiny.max_position_embeddings: 16 positions, but the longest prompt",
         changes(model={"tiny": {"arch": "gpt2", "max_position_embeddings": 16}}, rollout={"max_new_tokens": 12},
                 data={"prompt_template": "Please work out: {prompt}"})),
    Case("teacher-hub-unreachable", "teacher.model: 'no-such-org/no-such-teacher' is not in the local hub cache",
         changes(teacher={"model": "no-such-org/no-such-teacher", "mode": "all"})),
    Case("gkd-teacher-hub-unreachable", "update.gkd.teacher: 'no-such-org/no-such-teacher' is not in the local hub",
         changes(update={"algorithm": "gkd", "gkd": {"teacher": "no-such-org/no-such-teacher"}})),
    Case("cai-critic-hub-unreachable", "update.cai.critic: 'no-such-org/no-such-critic' is not in the local hub",
         changes(update={"algorithm": "cai", "cai": {"critic": "no-such-org/no-such-critic"}})),
    Case("cai-principles-broken-yaml", "principles_file", data="- critique: [unclosed\n", data_name="pr.yaml",
         config=changes(update={"cai": {"principles_file": "DATA"}})),
    Case("wandb-online-no-key", "tracking.mode: online needs W&B credentials",
         changes(tracking={"wandb": True, "mode": "online"})),
    # --- data rows
    Case("seed-null-rationale", "data.columns.rationale: 1 row(s) of data.jsonl have no 'rationale'",
         changes(data={**USER_DATA, "seed_path": "DATA", "columns": {"rationale": "rationale"}}),
         data="".join(json.dumps({"prompt": f"{i}+1", "answer": str(i + 1), "rationale": f"{i}+1={i + 1}"}) + "\n"
                      for i in range(30)) + json.dumps({"prompt": "9+9", "answer": "18", "rationale": None}) + "\n"),
    Case("data-bad-line", "(line 31: Expecting", changes(data=USER_DATA), data=ROWS + '{"prompt": "x", "answer": \n'),
    Case("run-name-is-a-file", "keep.txt' is a file, not a run directory; pick another run name", changes(name="keep.txt")),
    # --- resume, and a run dir another process is using
    Case("resume-empty-config", "config.yaml is damaged (empty)", command="resume-empty"),
    Case("resume-not-a-run", "is not a run directory", command="resume"),
    Case("run-while-running", "is in use by another process", command="run-locked"),
    Case("resume-while-running", "is in use by another process", command="resume-locked"),
]

# Holds the run dir's lock, as a running `loop` does, until killed (no heavy imports: starts fast).
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def _existing_run(raw: dict, runs: Path) -> subprocess.Popen:
    """A run dir as `loop run` leaves it (its resolved config, state, lock), held by another process."""
    from loop.config import to_dict, validate

    run = runs / raw["name"]
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(validate(raw)), sort_keys=False))
    (run / "state.json").write_text("{}")
    (run / ".lock").write_text("")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run / ".lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _materialize(case: Case, root: Path) -> tuple[list[str], subprocess.Popen | None]:
    """Write the case's files under `root`; return the `loop` arguments and a lock holder, if any."""
    runs = root / "runs"
    runs.mkdir()
    (runs / "keep.txt").write_text("a file that was here before")
    (root / "DIR").mkdir()
    (root / "FILE").write_text("not a directory")
    data = root / case.data_name
    if case.data is not None:
        data.write_bytes(case.data if isinstance(case.data, bytes) else case.data.encode())
    config = root / "config.yaml"
    if isinstance(case.config, bytes):
        config.write_bytes(case.config)
    elif isinstance(case.config, str) and case.config == "LOOP":
        os.symlink(root / "loop_b.yaml", root / "loop_a.yaml")
        os.symlink(root / "loop_a.yaml", root / "loop_b.yaml")
        config = root / "loop_a.yaml"
    elif isinstance(case.config, str) and case.config in ("DIR", "MISSING"):
        config = root / ("DIR" if case.config == "DIR" else "missing.yaml")
    elif isinstance(case.config, str):
        config.write_text(case.config)
    else:
        raw = json.loads(json.dumps(BASE))
        _merge(raw, json.loads(json.dumps(case.config or {}).replace('"DATA"', json.dumps(str(data)))
                                .replace('"DIR"', json.dumps(str(root / "DIR")))
                                .replace('"FILE', json.dumps(str(root / "FILE"))[:-1])))
        raw.setdefault("runs_dir", str(runs))
        config.write_text(yaml.safe_dump(raw))
    sets = [arg for s in case.sets for arg in ("--set", s)]
    if case.command == "resume":
        return ["resume", str(root / "DIR")], None
    if case.command == "resume-empty":  # a run dir whose config.yaml was emptied
        (runs / "bad").mkdir()
        (runs / "bad" / "config.yaml").write_text("")
        (runs / "bad" / "state.json").write_text("{}")
        return ["resume", str(runs / "bad"), "--set", "rounds=2"], None
    if case.command.endswith("-locked"):
        holder = _existing_run(yaml.safe_load(config.read_text()), runs)
        if case.command == "resume-locked":
            return ["resume", str(runs / "bad")], holder
    return ["run", str(config), *sets], None


WANDB_CREDENTIALS = ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE")


def no_wandb_credentials(root: Path) -> dict[str, str]:
    """Where wandb finds no credentials: no netrc, an empty settings dir (whatever the tester has)."""
    return {"NETRC": str(root / "no-netrc"), "WANDB_CONFIG_DIR": str(root / "no-wandb-settings")}


def _merge(base: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("loop_"))


def _run(case: Case, root: Path) -> tuple[int, str, str, list[str], list[str]]:
    """Run the real CLI in a subprocess: (rc, stdout, stderr, files before, files after)."""
    root.mkdir(parents=True)
    args, holder = _materialize(case, root)
    before = _snapshot(root)
    env = {**{k: v for k, v in os.environ.items() if k not in WANDB_CREDENTIALS}, **no_wandb_credentials(root),
           "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "80"}
    try:
        proc = subprocess.run([sys.executable, "-m", "loop", *args], cwd=root, env=env, text=True,
                              capture_output=True, timeout=300)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    return proc.returncode, proc.stdout, proc.stderr, before, _snapshot(root)


def _check(case: Case, rc: int, out: str, err: str, before: list[str], after: list[str]) -> None:
    lines = err.splitlines()
    assert rc == 2, err[-3000:]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("error: ") and case.expect in lines[0], lines[0]
    assert after == before, "bad input must write nothing"
    assert out == ""


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory) -> dict[str, tuple]:
    root = tmp_path_factory.mktemp("bad_input")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case.id: pool.submit(_run, case, root / case.id) for case in CASES}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.slow  # ~5 s of imports per case, 80 cases: minutes on the 2-core machine
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_loop_cli_subprocess_rejects_bad_input_in_one_line(subprocess_results, case: Case):
    _check(case, *subprocess_results[case.id])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_loop_cli_in_process_rejects_bad_input_in_one_line(tmp_path, monkeypatch, capfd, case: Case):
    """The same table through `loop.cli.main` in this process (fast); fd-level capture, so a
    library's progress bar or log line counts as a second line."""
    import datasets
    import huggingface_hub

    from loop.cli import main

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    for key in WANDB_CREDENTIALS:
        monkeypatch.delenv(key, raising=False)
    for key, value in no_wandb_credentials(tmp_path).items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "case"
    root.mkdir()
    args, holder = _materialize(case, root)
    before = _snapshot(root)
    monkeypatch.chdir(root)
    capfd.readouterr()
    try:
        rc = main(args)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    out, err = capfd.readouterr()
    _check(case, rc, out, err, before, _snapshot(root))
