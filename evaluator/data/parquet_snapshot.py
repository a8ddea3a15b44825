"""A Hugging Face parquet snapshot as annotations: its shards, their questions, their provenance.

`--annotations` may name one shard, or a folder of them (a snapshot's `data/`,
or the snapshot itself holding `data/`). A shard is recognised by the name it
was given (`*.parquet`) or by the file's magic bytes (`PAR1`), never by the
name a symlink resolves to: the hub client's cache links `x.parquet` to an
extensionless blob. Shards are read in name order, row group by row group,
without their image bytes: each row keeps references to its embedded images
(evaluator.data.embedded_images), read when its question is sent, so loading
38 GB of SEED-Bench-2 reads only the question columns.

Provenance: each shard's name, size, rows and the sha256 of its parquet footer
(the schema and every column chunk's offset, size and statistics; any rewrite
changes it). Whole shards are not hashed: 38 GB at the ~1.3 GB/s one core
hashes would cost half a minute before every run (docs/performance.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.data.embedded_images import IMAGE_COLUMN, EmbeddedImage
from evaluator.data.media import natural_key

if TYPE_CHECKING:  # pyarrow (and the numpy it loads) is imported only when a snapshot is read
    import pyarrow.parquet as pq

MAGIC = b"PAR1"
BATCH_ROWS = 1024
FOOTER_HASH = ("sha256 of each shard's parquet footer (schema, row groups, column chunk "
               "offsets, sizes and statistics) and its size; shards are not hashed whole")


class SnapshotError(Exception):
    """The snapshot cannot be read as a whole (no shards, a shard that is not parquet)."""


@dataclass(frozen=True)
class Row:
    """One question row: its fields (the image column left out) and its embedded images."""

    fields: dict
    images: tuple[EmbeddedImage, ...]
    where: str  # shard and row, for messages


def is_parquet(path: Path) -> bool:
    """By the given name or the first four bytes, so a hub-cache symlink to a blob counts."""
    if path.name.lower().endswith(".parquet"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def shards(path: Path) -> list[Path] | None:
    """The snapshot's shards in name order; None when `path` is not parquet (a JSON file)."""
    if not path.is_dir():
        return [path] if is_parquet(path) else None
    for folder in (path, path / "data"):
        found = [p for p in folder.iterdir() if p.is_file() and is_parquet(p)] if folder.is_dir() else []
        if found:
            return sorted(found, key=lambda p: natural_key(p.name))
    raise SnapshotError(f"{path}: cannot read annotations: a folder without parquet shards "
                        "(*.parquet, here or in data/)")


def footer_sha256(path: Path) -> str:
    """sha256 of the footer and its 8-byte trailer; SnapshotError if it is not parquet."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 12:
            raise SnapshotError(f"{path}: {size} bytes, too short for a parquet file")
        f.seek(size - 8)
        trailer = f.read(8)
        length = int.from_bytes(trailer[:4], "little")
        if trailer[4:] != MAGIC or length > size - 12:
            raise SnapshotError(f"{path}: not a parquet file (no PAR1 footer)")
        f.seek(size - 8 - length)
        return hashlib.sha256(f.read(length) + trailer).hexdigest()


def provenance(path: Path, files: list[Path]) -> dict:
    """What the run records about the snapshot it read."""
    import pyarrow.parquet as pq

    out = []
    for shard in files:
        with pq.ParquetFile(shard) as pf:
            rows = pf.metadata.num_rows
        entry = {"name": shard.name, "bytes": shard.stat().st_size, "rows": rows,
                 "footer_sha256": footer_sha256(shard)}
        real = shard.resolve()
        if real.name != shard.name:  # a hub-cache link: the blob is named by its content hash
            entry["blob"] = real.name
        out.append(entry)
    return {"format": "parquet", "path": str(path), "shards": out,
            "rows": sum(s["rows"] for s in out), "hash": FOOTER_HASH}


def digest(source: dict) -> str:
    """The snapshot's sha256: of its shard list (name, size, rows, footer sha256, in order),
    so it changes with any shard added, dropped, renamed or rewritten."""
    lines = "".join(f"{s['name']}\t{s['bytes']}\t{s['rows']}\t{s['footer_sha256']}\n"
                    for s in source["shards"])
    return hashlib.sha256(lines.encode()).hexdigest()


def _count_leaf(schema: pq.ParquetSchema) -> str | None:
    """A small leaf of the image column whose list lengths and nulls give the image count
    (the `path` strings), so the bytes are not read; None when only the bytes exist."""
    paths = [schema.column(i).path for i in range(len(schema))]
    return next((p for p in paths if p.startswith(IMAGE_COLUMN + ".") and p.endswith(".path")),
                None)


def _count(value) -> int:
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


def read_rows(files: list[Path]) -> Iterator[Row]:
    """Every row of every shard, in order, streamed one batch at a time."""
    import pyarrow as pa

    for shard in files:
        try:
            yield from _shard_rows(shard)
        except (OSError, pa.ArrowException) as exc:
            raise SnapshotError(f"{shard}: cannot read it as parquet ({exc})") from None


def _shard_rows(shard: Path) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(shard) as pf:
        names = pf.schema_arrow.names
        if IMAGE_COLUMN not in names:
            raise SnapshotError(f"{shard}: no {IMAGE_COLUMN!r} column (columns: "
                                f"{', '.join(names)}); a snapshot embeds its images there")
        image_type = pf.schema_arrow.field(IMAGE_COLUMN).type
        plain_binary = pa.types.is_binary(image_type) or pa.types.is_large_binary(image_type)
        leaf = None if plain_binary else _count_leaf(pf.schema)
        columns = [n for n in names if n != IMAGE_COLUMN] + ([leaf or IMAGE_COLUMN]
                                                             if not plain_binary else [])
        rows = BATCH_ROWS if leaf or plain_binary else 16  # no path leaf: the bytes are read
        for group in range(pf.num_row_groups):
            row = 0
            for batch in pf.iter_batches(batch_size=rows, row_groups=[group],
                                         columns=columns, use_threads=False):
                for fields in batch.to_pylist():
                    n = 1 if plain_binary else _count(fields.pop(IMAGE_COLUMN, None))
                    images = tuple(EmbeddedImage(shard, group, row, k) for k in range(n))
                    yield Row(fields, images, f"{shard.name} row group {group} row {row}")
                    row += 1
