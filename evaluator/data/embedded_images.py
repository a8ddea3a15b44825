"""Images embedded in a parquet snapshot, read only when their question is sent.

A question keeps a reference per image (shard, row group, row, position in the
row's image list), never the bytes. Parquet decodes a column a page at a time,
and pyarrow's writer (which wrote the hub's shards) puts many large values in a
page, so reading one image means reading about its row group's image column
(streaming a row group in small batches peaked nearly as high as reading it
whole, measured). The reads go
through a small cache of whole row-group columns (least recently used first
out; at most `MAX_GROUPS` of them and `DEFAULT_BUDGET` bytes, at least one
kept), and questions are sent in file order, so each row group is read about
once and memory stays at a few row groups however large the snapshot
(docs/performance.md measures it).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.data.media import MediaError, bytes_problem

if TYPE_CHECKING:  # pyarrow (and the numpy it loads) is imported only when a snapshot is read
    import pyarrow as pa
    import pyarrow.parquet as pq

IMAGE_COLUMN = "image"
DEFAULT_BUDGET = 256 << 20  # bytes of row-group image columns kept between reads
MAX_GROUPS = 4  # row groups kept: the in-flight window spans one or two at a time
_LOCATOR = re.compile(r"^(?P<shard>.+)#row_group=(?P<rg>\d+)&row=(?P<row>\d+)&image=(?P<k>\d+)$")


@dataclass(frozen=True)
class EmbeddedImage:
    """The `index`-th image of a row's `image` column (0 for a single image struct)."""

    shard: Path  # as given (a hub-cache symlink stays a symlink)
    row_group: int
    row: int  # within the row group
    index: int

    def read_bytes(self) -> bytes:
        """The image's bytes, checked to decode within the servers' limits; MediaError if not."""
        data = CACHE.image_bytes(self)
        problem = bytes_problem(data)
        if problem:
            raise MediaError("image", f"{self}: the embedded image {problem}")
        return data

    def __str__(self) -> str:
        return f"{self.shard}#row_group={self.row_group}&row={self.row}&image={self.index}"


def from_locator(text: str) -> EmbeddedImage | None:
    """The embedded image a `str(EmbeddedImage)` names, or None for any other text."""
    m = _LOCATOR.match(text)
    if m is None:
        return None
    return EmbeddedImage(Path(m["shard"]), int(m["rg"]), int(m["row"]), int(m["k"]))


def bytes_leaf(schema: pq.ParquetSchema) -> str | None:
    """The parquet column path of the image bytes (`image.list.element.bytes` for a list of
    structs, `image.bytes` for one struct, `image` for plain binary), or None."""
    paths = [schema.column(i).path for i in range(len(schema))]
    if IMAGE_COLUMN in paths:
        return IMAGE_COLUMN
    return next((p for p in paths if p.startswith(IMAGE_COLUMN + ".") and p.endswith(".bytes")),
                None)


def _cell_images(cell: pa.Scalar) -> list[bytes | None]:
    """One row's images as bytes (None where one holds no bytes), whatever the column shape."""
    value = cell.as_py()
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value)]
    items = value if isinstance(value, list) else [value]
    return [item.get("bytes") if isinstance(item, dict) else item for item in items]


class RowGroupCache:
    """Row-group image columns, least recently used dropped first beyond `budget` bytes."""

    def __init__(self, budget: int = DEFAULT_BUDGET, max_groups: int = MAX_GROUPS):
        self.budget = budget
        self.max_groups = max_groups
        self.groups_read = 0  # how many row-group columns were read (a run reads each ~once)
        self._groups: OrderedDict[tuple[str, int], pa.ChunkedArray] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def _column(self, shard: Path, row_group: int) -> pa.ChunkedArray:
        key = (str(shard), row_group)
        with self._lock:
            if key in self._groups:
                self._groups.move_to_end(key)
                return self._groups[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one reader per row group; the others wait for its result
            with self._lock:
                if key in self._groups:
                    return self._groups[key]
            try:
                column = _read_column(shard, row_group)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self.groups_read += 1
                self._groups[key] = column
                while len(self._groups) > 1 and (len(self._groups) > self.max_groups
                                                 or self._size() > self.budget):
                    self._groups.popitem(last=False)
        return column

    def _size(self) -> int:
        return sum(c.nbytes for c in self._groups.values())

    def image_bytes(self, ref: EmbeddedImage) -> bytes:
        column = self._column(ref.shard, ref.row_group)
        if not 0 <= ref.row < len(column):
            raise MediaError("image", f"{ref}: row group {ref.row_group} has {len(column)} rows")
        images = _cell_images(column[ref.row])
        if ref.index >= len(images):
            raise MediaError("image", f"{ref}: the row holds {len(images)} embedded image(s)")
        data = images[ref.index]
        if not data:
            raise MediaError("image", f"{ref}: embedded image {ref.index + 1} holds no bytes "
                                      "(a path only)")
        return data

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()


def _read_column(shard: Path, row_group: int) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(shard) as pf:
            leaf = bytes_leaf(pf.schema)
            if leaf is None:
                raise MediaError("image", f"{shard}: no image bytes column")
            return pf.read_row_group(row_group, columns=[leaf]).column(0)
    except (OSError, pa.ArrowException) as exc:
        raise MediaError("image", f"{shard}: cannot read row group {row_group} ({exc})") from None


CACHE = RowGroupCache()

