"""Parquet snapshots shaped as the hub publishes SEED-Bench, built inside the tests.

The schemas are the hub's: `question_type_id` int16 (or text), `data_id` a list
of strings (or one string), `image` a list of {bytes, path} structs in data_id
order (SEED-Bench-1/2) or one struct (SEED-Bench-2-Plus copies), the other
fields strings. Shards are named as the hub names them (`test-0000K-of-0000N`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
INT16 = pa.int16()
TEXT_FIELDS = ("answer", "choice_a", "choice_b", "choice_c", "choice_d", "data_type",
               "data_source", "level", "question", "question_id", "subpart", "version")


def shard_name(k: int, n: int) -> str:
    return f"test-{k:05d}-of-{n:05d}.parquet"


def v2_table(rows: list[dict], images: list[list[bytes]], *, dim_type=INT16,
             data_id_list: bool = True, choice_keys=("choice_a", "choice_b", "choice_c",
                                                     "choice_d")) -> pa.Table:
    """SEED-Bench-1/2 rows (JSON question dicts) with their embedded images."""
    cols: dict[str, pa.Array] = {}
    for f in TEXT_FIELDS:
        name = choice_keys["abcd".index(f[-1])] if f.startswith("choice_") else f
        if f in ("data_source", "level", "subpart", "version") and not any(f in r for r in rows):
            continue
        cols[name] = pa.array([r.get(f) for r in rows], pa.string())
    ids = [r["data_id"] if isinstance(r["data_id"], list) else [r["data_id"]] for r in rows]
    cols["data_id"] = (pa.array(ids, pa.list_(pa.string())) if data_id_list
                       else pa.array([x[0] for x in ids], pa.string()))
    dims = [r["question_type_id"] for r in rows]
    cols["question_type_id"] = pa.array([str(d) for d in dims] if dim_type == pa.string() else dims,
                                        dim_type)
    cols["image"] = pa.array([[{"bytes": b, "path": f"{k}.png"} for k, b in enumerate(imgs)]
                              for imgs in images], pa.list_(IMAGE))
    if any("segment" in r for r in rows):
        cols["segment"] = pa.array([r.get("segment") for r in rows], pa.list_(pa.float64()))
    return pa.table(cols)


def plus_table(rows: list[dict], images: list[bytes]) -> pa.Table:
    """SEED-Bench-2-Plus rows: the JSON's fields (all text) plus one image struct."""
    cols = {f: pa.array([r[f] for r in rows], pa.string()) for f in rows[0]}
    cols["image"] = pa.array([{"bytes": b, "path": r["data_id"]} for r, b in zip(rows, images,
                                                                                 strict=True)],
                             IMAGE)
    return pa.table(cols)


def write_shards(table: pa.Table, folder: Path, shards: int, row_group_size: int = 4) -> list[Path]:
    """`table` split in order over `shards` files of several row groups each."""
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-table.num_rows // shards)
    out = []
    for k in range(shards):
        path = folder / shard_name(k, shards)
        pq.write_table(table.slice(k * per, per), path, row_group_size=row_group_size)
        out.append(path)
    return out
