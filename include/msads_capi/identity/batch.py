"""Normalise and hash the email and phone columns of a batch of events, vectorised."""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.msads_capi.errors import MsadsError
from include.msads_capi.identity import phones
from include.msads_capi.identity.buffers import owners, string_buffers, subset
from include.msads_capi.identity.reasons import REASONS
from include.msads_capi.identity.scalar import normalize_phone, normalize_region

if TYPE_CHECKING:
    from collections.abc import Callable

# Reason codes as small integers while working; 0 means "usable".
CODES: tuple[str | None, ...] = (None, *REASONS)
_CODE = {c: i for i, c in enumerate(CODES)}
# Every character str.isspace() accepts (Python 3.11, Unicode 14): what str.strip() removes and
# what "whitespace inside" means. A test holds this list to Python's own answer.
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003"
                 "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WHITESPACE_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]"
_SHA256_HEX = "^[0-9a-fA-F]{64}$"
_GMAIL_SUFFIX = r"@(?:gmail|googlemail)\.com$"


@dataclass(frozen=True)
class Column:
    """One identifier column read value by value: normalised text, reason code, digest flag."""

    normalized: pa.Array
    reason: np.ndarray
    digest: np.ndarray = field(repr=False)


def _mask(array: pa.Array) -> np.ndarray:
    return array.fill_null(False).to_numpy(zero_copy_only=False)


def _lengths(array: pa.Array) -> np.ndarray:
    return pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False)


def _put(base: pa.Array, mask: np.ndarray, values: pa.Array) -> pa.Array:
    if not mask.any():
        return base
    if mask.all():
        return values.cast(base.type)
    return pc.replace_with_mask(base, pa.array(mask), values)


def _has_ascii_whitespace(strings: pa.Array) -> np.ndarray:
    """Which values hold an ASCII character str.isspace() accepts (all of them are <= 0x20)."""
    offsets, data = string_buffers(strings)
    found = np.zeros(len(strings), bool)
    if not len(strings):
        return found
    low = offsets[0] + np.flatnonzero(data[offsets[0]:offsets[-1]] <= 0x20)
    byte = data[low]
    spaces = low[((byte >= 0x09) & (byte <= 0x0d)) | (byte >= 0x1c)]
    found[owners(offsets, spaces)] = True
    return found


def _email_shaped(lowered: pa.Array, ascii_: np.ndarray) -> np.ndarray:
    """``local@domain``: an @ with text before it and text without @ after it, no whitespace."""
    offsets, data = string_buffers(lowered)
    shaped = np.zeros(len(lowered), bool)
    if not len(lowered):
        return shaped
    at = offsets[0] + np.flatnonzero(data[offsets[0]:offsets[-1]] == ord("@"))
    owner = owners(offsets, at)
    last = np.flatnonzero(np.diff(owner, append=-1) != 0)  # each value's last @ (owners ascend)
    at, owner = at[last], owner[last]
    shaped[owner] = (at > offsets[owner]) & (at < offsets[owner + 1] - 1)
    spaced = _has_ascii_whitespace(lowered)
    # Other whitespace is non-ASCII (U+0085, U+00A0, U+2000...): a regex on those values alone.
    others = shaped & ~spaced & ~ascii_
    if others.any():
        spaced[others] = _mask(pc.match_substring_regex(lowered.filter(pa.array(others)),
                                                        _WHITESPACE_CLASS))
    return shaped & ~spaced


def _start(values: pa.Array, prehashed: bool) -> tuple[Column, pa.Array, np.ndarray]:
    """Missing, blank and pre-hashed values, shared by both rules.

    Returns the column so far, the trimmed values (``str.strip()`` exactly) and the rows still
    to read.
    """
    n = len(values)
    reason = np.zeros(n, np.int8)
    digest = np.zeros(n, bool)
    missing = ~_mask(values.is_valid())
    reason[missing] = _CODE["missing"]
    trimmed = pc.utf8_trim(values, PY_WHITESPACE)
    lengths = _lengths(trimmed)
    empty = ~missing & (lengths == 0)
    reason[empty] = _CODE["empty"]
    # A digest is 64 ASCII characters, so 64 bytes: the regex runs on those values alone.
    hexed = ~missing & (lengths == 64)
    if hexed.any():
        hexed[hexed] = _mask(pc.match_substring_regex(trimmed.filter(pa.array(hexed)),
                                                      _SHA256_HEX))
    digest[hexed] = True
    normalized = _put(pa.nulls(n, pa.string()), hexed,
                      pc.ascii_lower(trimmed.filter(pa.array(hexed))))
    todo = ~missing & ~empty & ~hexed
    if prehashed:
        reason[todo] = _CODE["not_a_sha256"]
        todo[:] = False
    return Column(normalized, reason, digest), trimmed, todo


@cache
def _python_case_class() -> str:
    """A regex class of the characters Arrow's ``utf8_lower`` may not lowercase as ``str.lower()``.

    Latin, Greek and Cyrillic letters (U+0080 to U+052F) are compared one by one at first use;
    those that agree are left to Arrow. Everything else non-ASCII, anything lowercased to more
    than one character (U+0130) and the capital sigma (Python writes a final sigma at the end of
    a word) stay with Python.
    """
    chars = [chr(c) for c in range(0x80, 0x530)]
    arrow = pc.utf8_lower(pa.array(chars, pa.string())).to_pylist()
    same = [ord(c) for c, a in zip(chars, arrow, strict=True)
            if c != "\u03a3" and c.lower() == a and len(a) == 1]
    # As ranges of consecutive code points: where each run starts and where it ends.
    starts = [c for i, c in enumerate(same) if i == 0 or same[i - 1] != c - 1]
    ends = [c for i, c in enumerate(same) if i + 1 == len(same) or same[i + 1] != c + 1]
    return "[^\\x00-\\x7f" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}"
                                     for a, b in zip(starts, ends, strict=True)) + "]"


def _ascii(strings: pa.Array) -> np.ndarray:
    """Which values are all ASCII: no byte of 0x80 or above (on the raw buffers)."""
    offsets, data = string_buffers(strings)
    result = np.ones(len(strings), bool)
    high = offsets[0] + np.flatnonzero(data[offsets[0]:offsets[-1]] >= 0x80)
    result[owners(offsets, high)] = False
    return result


def _lower(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``str.lower()`` exactly: Arrow where its case mapping is Python's, Python for the rest.

    Returns the lowered values and which of them are ASCII.
    """
    ascii_ = _ascii(values)
    lowered = pc.ascii_lower(values)
    if ascii_.all():
        return lowered, ascii_
    # Values with any other character (a few): Arrow's utf8_lower, or Python's own str.lower().
    others = values.filter(pa.array(~ascii_))
    text = pc.utf8_lower(others)
    python = _mask(pc.match_substring_regex(others, _python_case_class()))
    if python.any():
        text = _put(text, python, pa.array([v.lower() for v in
                                            others.filter(pa.array(python)).to_pylist()],
                                           pa.string()))
    return _put(lowered, ~ascii_, text), ascii_


def emails(values: pa.Array, *, prehashed: bool = False, gmail_canonical: bool = False) -> Column:
    """The email rule of :func:`~include.msads_capi.identity.scalar.normalize_email`, vectorised."""
    column, trimmed, todo = _start(values, prehashed)
    if not todo.any():
        return column
    lowered, ascii_ = _lower(trimmed if todo.all() else trimmed.filter(pa.array(todo)))
    shaped = _email_shaped(lowered, ascii_)
    result = lowered
    if gmail_canonical:
        gmail = shaped & _mask(pc.match_substring_regex(lowered, _GMAIL_SUFFIX))
        if gmail.any():
            local = pc.replace_substring_regex(lowered.filter(pa.array(gmail)), _GMAIL_SUFFIX, "")
            local = pc.replace_substring_regex(local, r"(?s)\+.*", "", max_replacements=1)
            local = pc.replace_substring(local, ".", "")
            kept = _lengths(local) > 0
            rows = np.flatnonzero(gmail)
            shaped[rows[~kept]] = False
            canonical = np.zeros(len(gmail), bool)
            canonical[rows[kept]] = True
            local = pc.binary_join_element_wise(local.filter(pa.array(kept)), "@gmail.com", "")
            result = _put(result, canonical, local)
    column.reason[np.flatnonzero(todo)[~shaped]] = _CODE["not_an_email"]
    return Column(_put(column.normalized, todo, result), column.reason, column.digest)


def phone_numbers(values: pa.Array, regions: np.ndarray, *, prehashed: bool = False) -> Column:
    """The phone rule of :func:`~include.msads_capi.identity.scalar.normalize_phone`, vectorised.

    :param regions: the default region of each value, already upper-case (or None).
    """
    region_of, names = pd.factorize(pd.array(np.asarray(regions, dtype=object), dtype=object))
    return _phones(values, region_of, list(names), prehashed)


def _phones(values: pa.Array, region_of: np.ndarray, names: list[str | None],
            prehashed: bool) -> Column:
    """:func:`phone_numbers` with the regions given as indexes into ``names`` (-1: none)."""
    column, trimmed, todo = _start(values, prehashed)
    python = np.zeros(len(todo), bool)
    if todo.any():
        e164, outcome, slow = phones.read(subset(trimmed, todo), region_of[todo], names)
        idx = np.flatnonzero(todo)
        python[idx[slow]] = True
        outcome_codes = np.array([_CODE[o] if o else 0 for o in phones.OUTCOMES], np.int8)
        column.reason[idx[~slow]] = outcome_codes[outcome[~slow]]
        column = Column(_put(column.normalized, todo, e164), column.reason, column.digest)
    if not python.any():
        return column
    # What the vectorised reader leaves: phonenumbers itself, once per distinct value.
    raw = values.filter(pa.array(python)).to_pylist()
    region_names = np.array([*names, None], dtype=object)[region_of[python]]  # -1: None
    results = [normalize_phone(v, r, prehashed=prehashed)
               for v, r in zip(raw, region_names, strict=True)]
    idx = np.flatnonzero(python)
    column.reason[idx] = [_CODE[r.reason] for r in results]
    text = pa.array([r.normalized for r in results], pa.string())
    return Column(_put(column.normalized, python, text), column.reason, column.digest)


_DIGEST = type(hashlib.sha256()).digest
# Values hashed at a time: their Python bytes objects (about 64 bytes each) then fit in the
# one empty 1 MiB arena Python keeps for reuse, instead of new arenas mapped and unmapped
# for every chunk (some 8,000 page faults per million rows).
_CHUNK = 1 << 13


def hex_digests(values: pa.Array) -> np.ndarray:
    """Lowercase hex SHA-256 of each (non-null) value's UTF-8 bytes: one 64-byte row per value."""
    n = len(values)
    # In Arrow's memory pool, which keeps freed memory for the next batch, and in chunks, so that
    # few Python bytes objects live at once: fresh memory costs page faults.
    result = np.frombuffer(pa.allocate_buffer(64 * n), np.uint8).reshape(n, 64)
    data = values.cast(pa.binary())
    for start in range(0, n, _CHUNK):
        part = data.slice(start, _CHUNK).to_numpy(zero_copy_only=False)
        # hashlib is called once per value (nothing in the standard library hashes many at
        # once); the digests go straight into one array, then one hexlify for the chunk.
        raw = np.fromiter(map(_DIGEST, map(hashlib.sha256, part)), dtype="S32", count=len(part))
        result[start:start + len(part)] = np.frombuffer(binascii.hexlify(raw), np.uint8).reshape(
            len(part), 64)
    return result


def _fixed(strings: pa.Array, width: int) -> np.ndarray:
    """Values that are all ``width`` bytes long, one row each."""
    offsets, data = string_buffers(strings)
    return data[offsets[0]:offsets[-1]].reshape(len(strings), width)


def digests(column: Column) -> tuple[np.ndarray, np.ndarray]:
    """The hex SHA-256 to send for each usable value (each hashed once), one 64-byte row each,
    and the row of each value (-1: none)."""
    usable = column.reason == 0
    hashed = usable & ~column.digest
    given = usable & column.digest
    row = np.full(len(usable), -1, np.int64)
    count = int(hashed.sum())
    row[hashed] = np.arange(count)
    hexes = hex_digests(subset(column.normalized, hashed))
    if given.any():
        row[given] = count + np.arange(int(given.sum()))
        hexes = np.concatenate([hexes, _fixed(column.normalized.filter(pa.array(given)), 64)])
    return hexes, row


def _spread(found: tuple[np.ndarray, np.ndarray], reason: np.ndarray,
            value_of: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Digests and reasons of distinct values, spread over rows (``value_of`` -1: missing)."""
    hexes, row = found
    n = len(value_of)
    reason = np.append(reason, np.int8(_CODE["missing"]))[value_of]  # -1 picks the last
    sent = reason == 0
    count = int(sent.sum())
    # Arrow's take copies 64-byte items as fast as numpy, into memory its pool keeps for reuse.
    items = pa.FixedSizeBinaryArray.from_buffers(pa.binary(64), len(hexes),
                                                 [None, pa.py_buffer(hexes)])
    picked = items.take(row[value_of[sent]]).buffers()[1]
    large = 64 * count >= 2**31
    offsets = np.zeros(n + 1, np.int64 if large else np.int32)
    np.cumsum(sent, out=offsets[1:])
    offsets *= 64
    kind = pa.LargeStringArray if large else pa.StringArray
    text = kind.from_buffers(n, pa.py_buffer(offsets), picked,
                             pa.py_buffer(np.packbits(sent, bitorder="little")), n - count)
    return text, reason


@dataclass(frozen=True)
class HashResult:
    """What :func:`hash_identities` returns.

    ``frame`` has the input's index and the columns ``email_sha256``, ``phone_sha256``,
    ``email_reason``, ``phone_reason`` (pandas ``string``; missing as ``<NA>``) and
    ``has_click_id`` (bool). ``coverage`` counts rows, and rows with a click id, a usable email,
    a usable phone, and none of the three. ``reasons`` counts reason codes per identifier.
    """

    frame: pd.DataFrame
    coverage: dict[str, int]
    reasons: dict[str, dict[str, int]]


def _strings(frame: pd.DataFrame, name: str | None, what: str) -> pa.Array | None:
    """A column as one Arrow string array (nulls kept), or None when no column is named."""
    if name is None:
        return None
    if name not in frame.columns:
        raise MsadsError(f"{what} column {name!r} is not in the batch; the batch has "
                         f"{', '.join(map(str, frame.columns)) or 'no columns'}")
    series = frame[name]
    if pd.api.types.is_float_dtype(series.dtype):
        try:  # phones read as floats (16502530000.0) are whole numbers
            series = series.astype("Int64")
        except (TypeError, ValueError):
            pass
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array(series.astype("string"), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    return array


def _per_row(values: pa.Array,
             read: Callable[[pa.Array], Column]) -> tuple[pa.Array, np.ndarray]:
    """Read each distinct value once; spread digests and reasons back over the rows."""
    encoded = values.dictionary_encode()
    column = read(encoded.dictionary)
    value_of = encoded.indices.fill_null(-1).to_numpy()
    return _spread(digests(column), column.reason, value_of)


def _phone_rows(values: pa.Array, region_of: np.ndarray, region_names: list[str | None],
                prehashed: bool) -> tuple[pa.Array, np.ndarray]:
    """Read each distinct (value, region) pair once; spread the results back over the rows."""
    encoded = values.dictionary_encode()
    value_of = encoded.indices.fill_null(-1).to_numpy()
    pair_values = encoded.dictionary
    # Usually each number comes with one region only: then the pairs are the distinct values.
    # One slot more, written by the missing values (-1) and not compared.
    pair_region = np.zeros(len(pair_values) + 1, np.int64)
    pair_region[value_of] = region_of
    mixed = pair_region[value_of] != region_of
    pair_region = pair_region[:-1]
    if (mixed & (value_of >= 0)).any():
        width = len(region_names)
        # One integer per (value, region) pair; a missing value (-1) stays distinguishable.
        pair_of, keys = pd.factorize(value_of.astype(np.int64) * width + region_of)
        pair_values = pair_values.take(pa.array(keys // width, mask=keys < 0))
        pair_region = keys % width
        value_of = pair_of
    column = _phones(pair_values, pair_region, region_names, prehashed)
    return _spread(digests(column), column.reason, value_of)


def _regions(frame: pd.DataFrame, region: str | None, default_region: str | None,
             n: int) -> tuple[np.ndarray, list[str | None]]:
    """Each row's default phone region: an index into a short list of region codes."""
    default = normalize_region(default_region)
    if region is None:
        return np.zeros(n, np.int64), [default]
    encoded = _strings(frame, region, "phone region").dictionary_encode()
    names = [normalize_region(r) for r in encoded.dictionary.to_pylist()] + [default]
    return encoded.indices.fill_null(len(names) - 1).to_numpy().astype(np.int64), names


def _not_blank(values: pa.Array) -> np.ndarray:
    """Which values hold more than whitespace (as Arrow's ``utf8_trim_whitespace`` sees it)."""
    offsets, data = string_buffers(values)
    result = _mask(values.is_valid()) & (np.diff(offsets) > 0)
    first = np.zeros(len(values), np.uint8)
    first[result] = data[offsets[:-1][result]]
    # A value starting with printable ASCII other than a space is settled; trim the others.
    unsure = result & ((first <= 0x20) | (first >= 0x7f))
    if unsure.any():
        result[unsure] = _lengths(pc.utf8_trim_whitespace(values.filter(pa.array(unsure)))) > 0
    return result


def _text_column(array: pa.Array, index: pd.Index) -> pd.Series:
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([array])), index=index)


def _reason_column(codes: np.ndarray, index: pd.Index) -> pd.Series:
    names = pa.array([c or "" for c in CODES], pa.string())
    text = names.take(pa.array(codes.astype(np.int32), mask=codes == 0))
    return _text_column(text, index)


def _counts(codes: np.ndarray) -> dict[str, int]:
    found = np.bincount(codes.astype(np.int64), minlength=len(CODES))
    return {CODES[i]: int(c) for i, c in enumerate(found) if i and c}


def hash_identities(frame: pd.DataFrame, *, email: str | None = None, phone: str | None = None,
                    region: str | None = None, click_id: str | None = None,
                    default_region: str | None = None, email_prehashed: bool = False,
                    phone_prehashed: bool = False, gmail_canonical: bool = False) -> HashResult:
    """Normalise and SHA-256 the email and phone columns of ``frame``; count identifier coverage.

    :param email: the column of email addresses (None: no email).
    :param phone: the column of phone numbers (None: no phone).
    :param region: the column of default phone regions (ISO 3166-1 alpha-2), per row.
    :param click_id: the column of Microsoft click ids, for coverage and ``has_click_id``.
    :param default_region: the region used where ``region`` is None or the column holds null.
    :param email_prehashed: the email column holds SHA-256 hex digests, never plain addresses.
    :param phone_prehashed: the phone column holds SHA-256 hex digests.
    :param gmail_canonical: apply Gmail's dot and plus rules (not a Microsoft rule; off).
    """
    n = len(frame)
    index = frame.index
    nothing = (pa.nulls(n, pa.string()), np.full(n, _CODE["missing"], np.int8))
    email_values = _strings(frame, email, "email")
    email_sha, email_reason = nothing if email_values is None else _per_row(
        email_values, lambda v: emails(v, prehashed=email_prehashed,
                                       gmail_canonical=gmail_canonical))
    phone_values = _strings(frame, phone, "phone")
    region_of, region_names = _regions(frame, region, default_region, n)
    phone_sha, phone_reason = nothing if phone_values is None else _phone_rows(
        phone_values, region_of, region_names, phone_prehashed)
    clicks = _strings(frame, click_id, "click id")
    has_click = np.zeros(n, bool) if clicks is None else _not_blank(clicks)
    has_email = email_reason == 0
    has_phone = phone_reason == 0
    result = pd.DataFrame({
        "email_sha256": _text_column(email_sha, index),
        "phone_sha256": _text_column(phone_sha, index),
        "email_reason": _reason_column(email_reason, index),
        "phone_reason": _reason_column(phone_reason, index),
        "has_click_id": pd.Series(has_click, index=index, dtype=bool),
    }, index=index)
    coverage = {"rows": n, "click_id": int(has_click.sum()), "email": int(has_email.sum()),
                "phone": int(has_phone.sum()),
                "none": int((~has_click & ~has_email & ~has_phone).sum())}
    return HashResult(result, coverage, {"email": _counts(email_reason),
                                         "phone": _counts(phone_reason)})
