"""Reading Parquet tables back (`policies/tables.py`): whole without a copy in the user's
Hugging Face cache, or a round's scored rollouts a batch at a time."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from datasets import Dataset, Features, Value

from policies import tables
from policies.tables import ScoredRollouts, read_parquet

FEATURES = Features({"prompt_id": Value("string"), "completion": Value("string"), "reward": Value("float32")})


def write_rows(path: Path, count: int) -> Dataset:
    rows = Dataset.from_dict({"prompt_id": [f"p{i // 3}" for i in range(count)],
                              "completion": [f"c{i}" for i in range(count)],
                              "reward": [None if i % 5 == 0 else i / 2 for i in range(count)]}, features=FEATURES)
    rows.to_parquet(path)
    return rows


def test_read_parquet_copies_nothing_into_the_datasets_cache(tmp_path: Path, monkeypatch):
    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    write_rows(tmp_path / "a.parquet", 4), write_rows(tmp_path / "b.parquet", 2)
    both = read_parquet([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert both.features == FEATURES and both["completion"][:] == ["c0", "c1", "c2", "c3", "c0", "c1"]
    assert not cache.exists()
    Dataset.from_parquet(str(tmp_path / "a.parquet"))  # what it replaces: an Arrow copy per file read
    assert any(cache.rglob("*.arrow"))


@pytest.mark.parametrize("source", ["file", "memory"])
def test_scored_rollouts_read_in_batches_give_every_row_once_in_order(tmp_path: Path, monkeypatch, source):
    monkeypatch.setattr(tables, "BATCH_ROWS", 4)
    rows = write_rows(tmp_path / "scored.parquet", 11)
    scored = ScoredRollouts.open(tmp_path / "scored.parquet") if source == "file" else ScoredRollouts.of(rows)
    assert len(scored) == 11 and scored.column_names == ["prompt_id", "completion", "reward"]
    assert list(scored.rows(["completion"])) == [(i, f"c{i}") for i in range(11)]
    assert scored.column("reward") == rows["reward"][:]
    assert scored.value_counts("prompt_id") == {"p0": 3, "p1": 3, "p2": 3, "p3": 2}
    assert next(scored.records(["reward", "prompt_id"])) == {"reward": None, "prompt_id": "p0"}


@pytest.mark.parametrize("source", ["file", "memory"])
def test_take_returns_the_rows_asked_for_in_the_order_asked(tmp_path: Path, monkeypatch, source):
    monkeypatch.setattr(tables, "BATCH_ROWS", 4)
    rows = write_rows(tmp_path / "scored.parquet", 11)
    scored = ScoredRollouts.open(tmp_path / "scored.parquet") if source == "file" else ScoredRollouts.of(rows)
    picked = scored.take([10, 0, 5, 0], ["completion", "reward"])  # three batches, a repeat, out of order
    assert picked["completion"][:] == ["c10", "c0", "c5", "c0"]
    assert picked.features == Features({"completion": Value("string"), "reward": Value("float32")})
    assert scored.take([1, 2, 9])["completion"][:] == ["c1", "c2", "c9"]
    assert scored.take([]).num_rows == 0
    with pytest.raises(IndexError, match="row 11"):
        scored.take([3, 11])
    with pytest.raises(IndexError, match="row -1"):
        scored.take([-1, 3])


def test_take_stops_reading_after_the_last_row_it_wants(tmp_path: Path):
    table = write_rows(tmp_path / "scored.parquet", 11).with_format("arrow")[:]
    read = []

    def batches(columns):  # a source that records each batch it hands out
        for batch in table.select(columns or table.column_names).to_batches(4):
            read.append(batch.num_rows)
            yield batch

    scored = ScoredRollouts(batches, table.schema, table.num_rows)
    assert scored.take([1, 5])["completion"][:] == ["c1", "c5"]
    assert read == [4, 4]  # the third batch (rows 8-10) was never decoded


def test_task_files_leave_no_copy_in_the_datasets_cache(tmp_path: Path, monkeypatch):
    from loop.data import _read_file

    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    task = tmp_path / "train.jsonl"
    task.write_text('{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2", "answer": "4"}\n')
    rows = _read_file(str(task), "data.train_file")
    assert rows["prompt"][:] == ["1+1", "2+2"]
    assert not cache.exists() or not any(cache.rglob("*.arrow"))
