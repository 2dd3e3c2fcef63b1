"""Reading Parquet tables back: small ones whole, a round's scored rollouts a batch at a time.

`Dataset.from_parquet` is avoided on purpose. It converts every file it reads into an Arrow
copy under the user's Hugging Face cache (one per shard, per round, never removed: gigabytes
after a few runs, outside the run directory) and memory-maps that copy, so every page a
filter touches stays in the process's memory until the end of the phase.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Features

# Rows decoded at a time: the filter holds one batch plus what it decides to keep.
BATCH_ROWS = 8192


def read_parquet(paths: str | Path | Sequence[str | Path]) -> Dataset:
    """One or more Parquet files as one in-memory `Dataset` (features from the files' metadata).

    For tables that are read whole anyway: a shard, the examples of a round, a seed set.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    tables = [pq.read_table(p) for p in paths]
    return Dataset(pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0])


class ScoredRollouts:
    """Scored rollouts read `BATCH_ROWS` rows at a time, from `scored.parquet` or from a table.

    Update algorithms select from compact per-row values (`rows`, `column`) and then `take`
    the rows they keep, so no phase decodes every completion of a large round at once.
    """

    def __init__(self, batches: Callable[[list[str] | None], Iterator[pa.RecordBatch]], schema: pa.Schema,
                 num_rows: int):
        self._batches, self.schema, self.num_rows = batches, schema, num_rows

    @classmethod
    def open(cls, path: str | Path) -> ScoredRollouts:
        file = pq.ParquetFile(path)
        return cls(lambda columns: file.iter_batches(BATCH_ROWS, columns=columns), file.schema_arrow,
                   file.metadata.num_rows)

    @classmethod
    def of(cls, dataset: Dataset) -> ScoredRollouts:
        """Rollouts already in memory (a rationalization round, a rescore, a test)."""
        table = dataset.with_format("arrow")[:]
        return cls(lambda columns: iter(table.select(columns or table.column_names).to_batches(BATCH_ROWS)),
                   table.schema, table.num_rows)

    def __len__(self) -> int:
        return self.num_rows

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    def rows(self, columns: list[str]) -> Iterator[tuple]:
        """(row index, *values) for every row, in order."""
        start = 0
        for batch in self._batches(columns):
            values = [batch.column(c).to_pylist() for c in columns]
            yield from zip(range(start, start + batch.num_rows), *values)
            start += batch.num_rows

    def records(self, columns: list[str]) -> Iterator[dict]:
        """Every row as a dict of `columns`, in order."""
        for _, *values in self.rows(columns):
            yield dict(zip(columns, values))

    def column(self, name: str) -> list:
        """One column as a list: for per-row numbers and ids, not for texts of a large round."""
        return [value for _, value in self.rows([name])]

    def value_counts(self, name: str) -> Counter:
        """How many rows hold each value of one column."""
        return Counter(value for _, value in self.rows([name]))

    def take(self, indices: Sequence[int], columns: list[str] | None = None) -> Dataset:
        """The rows at `indices`, in that order (repeats allowed), as an in-memory `Dataset`."""
        return Dataset(self.take_table(indices, columns))

    def take_table(self, indices: Sequence[int], columns: list[str] | None = None) -> pa.Table:
        """`take` as an Arrow table. Indices are held as one int64 array (8 bytes a row kept),
        and batches past the last wanted row are not read."""
        order = np.asarray(indices, dtype=np.int64).reshape(-1)
        in_file_order = bool((order[1:] > order[:-1]).all())  # the filters' case: no reordering copy
        wanted = order if in_file_order else np.unique(order)
        if wanted.size and not (0 <= wanted[0] and wanted[-1] < self.num_rows):
            bad = wanted[0] if wanted[0] < 0 else wanted[-1]
            raise IndexError(f"row {bad} is outside the {self.num_rows} rows")
        pieces, start = [], 0
        for batch in self._batches(columns) if wanted.size else ():
            end = start + batch.num_rows
            lo, hi = np.searchsorted(wanted, [start, end])
            if hi > lo:
                batch = batch if columns is None else batch.select(columns)
                pieces.append(batch.take(pa.array(wanted[lo:hi] - start)))
            if hi == wanted.size:
                break
            start = end
        schema = self.schema if columns is None else _column_subset(self.schema, columns)
        table = pa.Table.from_batches(pieces, schema=schema)
        return table if in_file_order else table.take(pa.array(np.searchsorted(wanted, order)))


def _column_subset(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    """The schema of some columns. The `datasets` features in its metadata name every column,
    and a `Dataset` refuses features that disagree with its table, so they are cut down too."""
    if not schema.metadata or b"huggingface" not in schema.metadata:
        return pa.schema([schema.field(c) for c in columns])
    features = Features.from_arrow_schema(schema)
    return Features({c: features[c] for c in columns}).arrow_schema
