"""Prompts and reference answers: from a local file, a Hugging Face dataset, or a built-in task.

Every source ends as `datasets.Dataset`s with the canonical columns `prompt_id`, `prompt`,
`reference_answer` (and `rationale` for the labeled seed set). The held-out eval split never
enters training: `load_task_data` asserts the splits are disjoint.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, concatenate_datasets, load_dataset

from policies.atomic import write_text
from loop.config import ConfigError, DataConfig
from loop.tasks import generate_task
from rewards import extract_answer


@dataclass
class TaskData:
    train: Dataset
    eval: Dataset
    seed: Dataset | None


def _read_file(path: str, field: str) -> Dataset:
    """A local .jsonl/.json/.parquet file; anything unreadable or empty is one ConfigError."""
    kind = "parquet" if path.endswith(".parquet") else "json"
    # Read into memory through a cache of its own, removed at once: `datasets` would otherwise
    # keep an Arrow copy of every task file of every run in ~/.cache, never removed.
    scratch = tempfile.mkdtemp(prefix="selfloop-data-")
    try:
        ds = load_dataset(kind, data_files=str(Path(path).expanduser()), split="train", keep_in_memory=True,
                          cache_dir=scratch)
    except Exception as err:  # datasets wraps the parser's error in its own: report the root cause
        cause = err.__cause__ or err
        reason = " ".join(str(cause).split())[:160] or type(cause).__name__
        if isinstance(err, StopIteration) or not reason.strip():
            reason = "no rows"
        elif kind == "json":
            reason = _bad_json_line(Path(path).expanduser()) or reason
        raise ConfigError(f"{field}: {path} could not be read as {'Parquet' if kind == 'parquet' else 'JSON lines'} "
                          f"({reason}); give one JSON object per line (or a .parquet file)") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _checked_rows(ds, field, path)


def _bad_json_line(path: Path) -> str | None:
    """Where a JSON-lines file first breaks, as "line N: why" (the loader says only a byte
    position); None when the file is one JSON document or every line parses."""
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
        return None  # a whole-file JSON document: the loader's own reason stands
    except (OSError, UnicodeDecodeError):
        return None
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            return f"line {number}: {err.msg}"
        if not isinstance(row, dict):
            return f"line {number}: a JSON {type(row).__name__}, not an object"
    return None


def _load_hub(cfg: DataConfig, split: str, field: str) -> Dataset:
    """A split of a hub dataset; an unknown id, split or an unreachable hub is one ConfigError."""
    try:
        ds = load_dataset(cfg.dataset, cfg.subset, split=split)
    except Exception as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ConfigError(f"{field}: cannot load {cfg.dataset!r} split {split!r} ({reason}); check the id, the "
                          "split and the network (offline, it must be in the local datasets cache)") from None
    return _checked_rows(ds, field, f"{cfg.dataset}[{split}]")


def _checked_rows(ds: Dataset, field: str, origin: str) -> Dataset:
    if len(ds) == 0:
        raise ConfigError(f"{field}: {origin} has no rows; give a file with one problem per line")
    if set(ds.column_names) <= {"text"} and not isinstance(ds[0].get("text"), str):
        raise ConfigError(f"{field}: {origin} holds a JSON list of values, not of objects; "
                          "give one JSON object per line, e.g. {\"prompt\": ..., \"answer\": ...}")
    return ds


def _canonical(ds: Dataset, cfg: DataConfig, origin: str, need_rationale: bool = False) -> Dataset:
    cols = cfg.columns
    wanted = {"prompt": cols.prompt, "answer": cols.answer}
    if need_rationale:
        wanted["rationale"] = cols.rationale or cols.answer
    wanted |= {f"extra.{arg}": column for arg, column in cols.extra.items()}
    for field, column in wanted.items():
        if column is not None and column not in ds.column_names:
            raise ConfigError(f"data.columns.{field}: column {column!r} is not in {origin} "
                              f"(its columns: {', '.join(ds.column_names)})")

    for field, column in wanted.items():  # a null would become the text "None": a silent wrong
        if column is not None:
            _check_values(ds[column][:], field, column, origin)

    def convert(row: dict, idx: int) -> dict:
        out = {"prompt_id": f"{origin}:{idx}", "prompt": str(row[cols.prompt]),
               "reference_answer": _reference(row[cols.answer]) if cols.answer else ""}
        if need_rationale:
            out["rationale"] = str(row[wanted["rationale"]])
        out |= {arg: row[column] for arg, column in cols.extra.items()}
        return out

    return ds.map(convert, with_indices=True, remove_columns=ds.column_names)


def _check_values(values: list, field: str, column: str, origin: str) -> None:
    """Every row has a value, and the prompt, answer and rationale are text (or a number, for an
    answer): a null or a list would reach the policy as the text "None" or "['...']"."""
    text = field in ("prompt", "rationale")  # what the policy reads or is trained to write
    nulls = [i for i, v in enumerate(values) if v is None or (text and not str(v).strip())]
    if nulls:
        raise ConfigError(f"data.columns.{field}: {len(nulls)} row(s) of {origin} have no {column!r} "
                          f"(row {nulls[0] + 1} is null or empty); fill or remove them")
    if field.startswith("extra."):  # a reward's own argument: any type it reads
        return
    kinds = (str,) if text else (str, int, float)
    wrong = next((i for i, v in enumerate(values) if not isinstance(v, kinds) or isinstance(v, bool)), None)
    if wrong is not None:
        value = values[wrong]
        raise ConfigError(f"data.columns.{field}: row {wrong + 1} of {origin} holds a {type(value).__name__} in "
                          f"{column!r} ({repr(value)[:40]}), not {'text' if text else 'text or a number'}; "
                          "map a column of plain text (chat-message lists are not read)")


def _reference(value) -> str:
    """A full solution ("... #### 42", "... \\boxed{42}") is reduced to its final answer; an
    answer that already is one ("3/4", "\\frac{1}{2}") is kept whole."""
    raw = str(value).strip()
    full_solution = "####" in raw or "\\boxed" in raw
    return (extract_answer(raw) or raw) if full_solution else raw


def _write_task_files(cfg: DataConfig, seed: int, data_dir: Path) -> DataConfig:
    """Materialize the built-in task as JSONL in the run dir, then load it like any user file.

    The files are made once per (task config, seed): a resumed run reads the same problems,
    and a changed task (`--force`) makes new ones.
    """
    fingerprint = {"task": cfg.task.model_dump(), "seed": seed}
    stamp = data_dir / "task.json"
    names = ("train", "eval", "seed")
    paths = {name: data_dir / f"{name}.jsonl" for name in names}
    if _read_stamp(stamp) != fingerprint:  # missing or damaged: the files are made again
        splits = generate_task(cfg.task, seed)
        for name in names:
            rows = ({k: v for k, v in vars(p).items() if v is not None} for p in splits[name])
            write_text(paths[name], "".join(json.dumps(row) + "\n" for row in rows))
        write_text(stamp, json.dumps(fingerprint))
    columns = {"rationale": "rationale"}
    if cfg.task.kind == "code":
        columns |= {"answer": None, "extra": {"tests": "tests"}}
    if cfg.task.max_operands is not None:  # each problem's level rides along (curriculum, per-level eval)
        columns |= {"extra": {"difficulty": "difficulty"}}
    return cfg.model_copy(update={"task": None, "path": str(paths["train"]), "eval_path": str(paths["eval"]),
                                  "seed_path": str(paths["seed"]) if cfg.task.seed_size else None,
                                  "columns": cfg.columns.model_copy(update=columns)})


def _read_stamp(stamp: Path) -> dict | None:
    try:
        return json.loads(stamp.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def load_task_data(cfg: DataConfig, seed: int, data_dir: Path) -> TaskData:
    """Load train / held-out eval / seed splits. `data_dir` receives built-in task files."""
    if cfg.task is not None:
        cfg = _write_task_files(cfg, seed, data_dir)
    if cfg.dataset is not None:
        train = _load_hub(cfg, cfg.split, "data.dataset")
        origin = f"{cfg.dataset}[{cfg.split}]"
    else:
        train, origin = _read_file(cfg.path, "data.path"), Path(cfg.path).name
    train = _canonical(train, cfg, origin)
    if cfg.eval_path is not None:
        evaluation = _canonical(_read_file(cfg.eval_path, "data.eval_path"), cfg, Path(cfg.eval_path).name)
    elif cfg.eval_split is not None:
        raw = _load_hub(cfg, cfg.eval_split, "data.eval_split")
        evaluation = _canonical(raw, cfg, f"{cfg.dataset}[{cfg.eval_split}]")
    else:
        if cfg.eval_size >= len(train):
            raise ConfigError(f"data.eval_size={cfg.eval_size} leaves no training prompts ({len(train)} rows)")
        parts = train.train_test_split(test_size=cfg.eval_size, seed=seed)
        train, evaluation = parts["train"], parts["test"]
    seed_set = None
    if cfg.seed_path is not None:
        seed_set = _canonical(_read_file(cfg.seed_path, "data.seed_path"), cfg, Path(cfg.seed_path).name, need_rationale=True)
    assert_disjoint(train, evaluation)
    if seed_set is not None:
        assert_disjoint(seed_set, evaluation)
    return TaskData(train=train, eval=evaluation, seed=seed_set)


def assert_disjoint(train: Dataset, evaluation: Dataset) -> None:
    """The held-out split must never be trained on: no eval prompt may appear in training data."""
    leaked = set(train["prompt"][:]) & set(evaluation["prompt"][:])
    if leaked:
        raise ConfigError(f"{len(leaked)} eval prompts also appear in training data, e.g. "
                          f"{next(iter(leaked))!r}; held-out data must be disjoint")


def round_prompts(train: Dataset, round_idx: int, per_round: int, seed: int) -> Dataset:
    """The round's slice of training prompts: a fresh seeded shuffle each pass over the data."""
    per_round = min(per_round, len(train))
    start = (round_idx - 1) * per_round
    epoch, offset = divmod(start, len(train))
    order = train.shuffle(seed=seed + epoch)
    rows = list(range(offset, min(offset + per_round, len(train))))
    if len(rows) < per_round:  # wrap into the next pass
        rows_next = train.shuffle(seed=seed + epoch + 1).select(range(per_round - len(rows)))
        return concatenate_datasets([order.select(rows), rows_next])
    return order.select(rows)
