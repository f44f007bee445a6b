"""PostgreSQL's binary COPY format, built from numpy columns with no Python code per row.

A binary COPY row is a field count, then per field a length word and the value in network
byte order (length -1 for NULL). Rows whose variable-size fields have the same sizes (same
address family, same NULLs, same text lengths) have the same layout, so each such group is
one byte matrix stacked from column blocks. The flow writer and the collector's roll-ups both
build their payloads here.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
PG_EPOCH_US = 946_684_800 * 1_000_000   # 2000-01-01 in µs since the Unix epoch
NULL = struct.pack(">i", -1)
_AF = {4: 2, 6: 3}                      # PostgreSQL's inet family codes


def fixed(values: np.ndarray, dtype: str) -> np.ndarray:
    """A (n, 4 + size) block: the length word then the big-endian value."""
    size = np.dtype(dtype).itemsize
    block = np.empty((len(values), 4 + size), dtype=np.uint8)
    block[:, :4] = np.frombuffer(struct.pack(">i", size), dtype=np.uint8)
    block[:, 4:] = values.astype(dtype).view(np.uint8).reshape(-1, size)
    return block


def nulls(n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(NULL, dtype=np.uint8), (n, 4))


def nullable(values: np.ndarray, dtype: str, present: bool) -> np.ndarray:
    return fixed(values, dtype) if present else nulls(len(values))


def inet(addresses: np.ndarray, family: int, bits: int | None = None, cidr: bool = False) -> np.ndarray:
    """inet (or cidr) fields of 16-byte address rows of one family; ``bits`` the mask length."""
    nb = 4 if family == 4 else 16
    block = np.empty((len(addresses), 4 + 4 + nb), dtype=np.uint8)
    block[:, :4] = np.frombuffer(struct.pack(">i", 4 + nb), dtype=np.uint8)
    block[:, 4:8] = (_AF[family], nb * 8 if bits is None else bits, int(cidr), nb)
    block[:, 8:] = addresses[:, :nb]
    return block


def nullable_inet(addresses: np.ndarray, family: int) -> np.ndarray:
    return inet(addresses, family) if family else nulls(len(addresses))


def text(value: str | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode()
    return struct.pack(">i", len(data)) + data


def field_matrix(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Encoded fields as a zero-padded byte matrix (one row each) and their lengths."""
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    matrix = np.zeros((len(parts), int(lengths.max())), dtype=np.uint8)
    flat = np.frombuffer(b"".join(parts), dtype=np.uint8)
    rows = np.repeat(np.arange(len(parts)), lengths)
    columns = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    matrix[rows, columns] = flat
    return lengths, matrix


@dataclass
class Column:
    """One column of rows to COPY.

    ``kind``: "bool", "int2", "int4", "int8", "timestamptz" (µs since the Unix epoch), "inet", "cidr"
    (``values`` 16-byte rows, ``family`` 4 or 6 per row, ``bits`` the mask lengths for cidr) or
    "text" (``values`` indexes into ``strings``). ``present`` marks non-NULL rows (None: all);
    an inet row of family 0 and a text index of -1 are NULL too.
    """

    kind: str
    values: np.ndarray
    present: np.ndarray | None = None
    family: np.ndarray | None = None
    bits: np.ndarray | None = None
    strings: list[str] | None = None


_FIXED = {"bool": "|u1", "int2": ">i2", "int4": ">i4", "int8": ">i8", "timestamptz": ">i8"}


def encode_rows(columns: list[Column]) -> bytes:
    """The whole binary COPY payload for rows given column by column."""
    n = len(columns[0].values)
    if not n:
        return HEADER + TRAILER
    signature = np.zeros(n, dtype=np.int64)
    texts = {}
    for i, column in enumerate(columns):
        if column.kind == "text":
            lengths, matrix = field_matrix([NULL] + [text(s) for s in column.strings or []])
            index = column.values.astype(np.int64) + 1
            if column.present is not None:
                index = np.where(column.present, index, 0)
            texts[i] = (index, matrix)
            part, radix = lengths[index], int(lengths.max()) + 1
        elif column.kind in ("inet", "cidr"):
            family = column.family.astype(np.int64) if column.present is None else \
                np.where(column.present, column.family, 0).astype(np.int64)
            part, radix = family // 2, 4   # 0, 2 (IPv4) or 3 (IPv6)
        else:
            part, radix = (np.ones(n, np.int64) if column.present is None
                           else column.present.astype(np.int64)), 2
        signature = signature * radix + part
    count = np.frombuffer(struct.pack(">h", len(columns)), dtype=np.uint8)
    parts = [HEADER]
    order = np.argsort(signature, kind="stable")
    ordered = signature[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], n]):
        rows = order[start:stop]
        blocks = [np.broadcast_to(count, (len(rows), 2))]
        for i, column in enumerate(columns):
            blocks.append(_block(column, rows, texts.get(i)))
        parts.append(np.hstack(blocks).tobytes())
    parts.append(TRAILER)
    return b"".join(parts)


def _block(column: Column, rows: np.ndarray, text_fields) -> np.ndarray:
    first = rows[0]
    if column.kind == "text":
        index, matrix = text_fields
        width = int(np.frombuffer(matrix[index[first], :4].tobytes(), ">i4")[0])
        return matrix[index[rows], :4 + max(width, 0)]
    if column.present is not None and not column.present[first]:
        return nulls(len(rows))
    if column.kind in ("inet", "cidr"):
        family = int(column.family[first])
        if family not in (4, 6):
            return nulls(len(rows))
        if column.kind == "cidr":
            return inet(column.values[rows], family, int(column.bits[first]), cidr=True)
        return inet(column.values[rows], family)
    values = column.values[rows]
    if column.kind == "timestamptz":
        values = values - PG_EPOCH_US
    return fixed(values, _FIXED[column.kind])
