"""Arrow string arrays as raw numpy buffers, for per-byte work without per-value Python."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def string_buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string or binary array's value offsets and data bytes, as numpy views (no copy).

    Value ``i`` is ``data[offsets[i]:offsets[i + 1]]``; ``offsets[0]`` need not be 0.
    """
    large = pa.types.is_large_string(strings.type) or pa.types.is_large_binary(strings.type)
    _, offsets, data = strings.buffers()
    if offsets is None:  # an empty array may have no buffers at all
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(offsets, np.int64 if large else np.int32)
    offsets = offsets[strings.offset:strings.offset + len(strings) + 1]
    return offsets, (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8))


def owners(offsets: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The value each byte position belongs to (positions as in ``data``, not relative)."""
    return np.searchsorted(offsets, positions, side="right") - 1


def from_parts(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A string array from offsets (starting at 0) and UTF-8 bytes; large when it has to be."""
    n = len(offsets) - 1
    if offsets[-1] >= 2**31:
        return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int64)),
                                                pa.py_buffer(np.ascontiguousarray(data)))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)),
                                       pa.py_buffer(np.ascontiguousarray(data)))


def subset(strings: pa.Array, mask: np.ndarray) -> pa.Array:
    """The values under ``mask`` (the array itself when that is all of them)."""
    return strings if mask.all() else strings.filter(pa.array(mask))
