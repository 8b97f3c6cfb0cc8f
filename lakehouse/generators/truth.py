"""Ground truth goes to Parquet files under the ``truth.*`` tables' locations, apart from every
feature table. Written with pyarrow so producers need no Spark."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.catalog import Catalog

_ARROW = {
    "truth.fraud": pa.schema([("event_id", pa.string(), False), ("customer_id", pa.string(), False),
                              ("scenario", pa.string(), False), ("fraud_probability", pa.float64(), False),
                              ("is_fraud", pa.bool_(), False), ("run_id", pa.string(), False)]),
    "truth.trading": pa.schema([("event_id", pa.string(), False), ("symbol", pa.string(), False),
                                ("p_down", pa.float64(), False), ("p_flat", pa.float64(), False),
                                ("p_up", pa.float64(), False), ("label", pa.string(), False),
                                ("next_return", pa.float64(), False), ("run_id", pa.string(), False)]),
    "truth.loan_pd": pa.schema([("event_id", pa.string(), False), ("customer_id", pa.string(), False),
                                ("true_pd", pa.float64(), False), ("defaulted", pa.bool_(), False),
                                ("run_id", pa.string(), False)]),
}


class TruthWriter:
    """Buffers truth records per table and writes them as Parquet parts named by run and shard."""

    def __init__(self, locations: dict[str, str], run_id: str, shard: int, flush_every: int = 100_000):
        self.locations, self.run_id, self.shard, self.flush_every = locations, run_id, shard, flush_every
        self.buffers: dict[str, list[dict]] = {t: [] for t in _ARROW}
        self.parts = 0
        self.counts = {t: 0 for t in _ARROW}

    @classmethod
    def for_catalog(cls, catalog: Catalog, run_id: str, shard: int) -> "TruthWriter":
        return cls({t: catalog.spec(t).location for t in _ARROW}, run_id, shard)

    def add(self, table: str, record: dict) -> None:
        buf = self.buffers[table]
        buf.append(record)
        self.counts[table] += 1
        if len(buf) >= self.flush_every:
            self._flush(table)

    def _flush(self, table: str) -> None:
        rows = self.buffers[table]
        if not rows:
            return
        for r in rows:
            r["run_id"] = self.run_id
        folder = Path(self.locations[table])
        folder.mkdir(parents=True, exist_ok=True)
        self.parts += 1
        name = f"part-{self.run_id}-{self.shard:03d}-{self.parts:05d}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=_ARROW[table]), tmp)
        tmp.rename(folder / name)  # readers never see a half-written part
        self.buffers[table] = []

    def close(self) -> dict[str, int]:
        for table in _ARROW:
            self._flush(table)
        return dict(self.counts)
