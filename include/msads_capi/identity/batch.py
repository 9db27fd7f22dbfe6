"""Normalise and hash the email and phone columns of a batch of events, vectorised."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.msads_capi.errors import MsadsError
from include.msads_capi.identity import phones
from include.msads_capi.identity.reasons import REASONS
from include.msads_capi.identity.scalar import (
    Normalized,
    normalize_email,
    normalize_phone,
    normalize_region,
)

# Reason codes as small integers while working; 0 means "usable".
CODES: tuple[str | None, ...] = (None, *REASONS)
_CODE = {c: i for i, c in enumerate(CODES)}
# The ASCII characters Python's str.strip() removes; non-ASCII values go through Python itself.
_ASCII_SPACE = "".join(chr(c) for c in range(128) if chr(c).isspace())
_ASCII_SPACE_CLASS = "[" + "".join(f"\\x{ord(c):02x}" for c in _ASCII_SPACE) + "]"
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
    return pc.replace_with_mask(base, pa.array(mask), values) if mask.any() else base


def _start(values: pa.Array, prehashed: bool) -> tuple[Column, pa.Array, np.ndarray, np.ndarray]:
    """Missing, blank and pre-hashed values, shared by both rules.

    Returns the column so far, the trimmed values (ASCII rows only), the rows still to read,
    and the rows to read in Python (non-ASCII: Unicode rules stay Python's own).
    """
    n = len(values)
    reason = np.zeros(n, np.int8)
    digest = np.zeros(n, bool)
    normalized = pa.nulls(n, pa.string())
    missing = ~_mask(values.is_valid())
    reason[missing] = _CODE["missing"]
    ascii_ = _mask(pc.string_is_ascii(values))
    python = ~missing & ~ascii_
    trimmed = pc.utf8_trim(values, _ASCII_SPACE)
    empty = ascii_ & (_lengths(trimmed) == 0)
    reason[empty] = _CODE["empty"]
    hexed = ascii_ & ~empty & _mask(pc.match_substring_regex(trimmed, _SHA256_HEX))
    digest[hexed] = True
    normalized = _put(normalized, hexed, pc.ascii_lower(trimmed.filter(pa.array(hexed))))
    todo = ascii_ & ~empty & ~hexed
    if prehashed:
        reason[todo] = _CODE["not_a_sha256"]
        todo[:] = False
    return Column(normalized, reason, digest), trimmed, todo, python


def _apply_python(column: Column, rows: np.ndarray, results: list[Normalized]) -> Column:
    """Fold one-value-at-a-time results into a column."""
    if not rows.any():
        return column
    idx = np.flatnonzero(rows)
    column.reason[idx] = [_CODE[r.reason] for r in results]
    column.digest[idx] = [r.sha256 is not None and r.sha256 == r.normalized for r in results]
    text = pa.array([r.normalized for r in results], pa.string())
    return Column(_put(column.normalized, rows, text), column.reason, column.digest)


def emails(values: pa.Array, *, prehashed: bool = False, gmail_canonical: bool = False) -> Column:
    """The email rule of :func:`~include.msads_capi.identity.scalar.normalize_email`, vectorised."""
    column, trimmed, todo, python = _start(values, prehashed)
    if todo.any():
        lowered = pc.ascii_lower(trimmed.filter(pa.array(todo)))
        shaped = (_mask(pc.match_substring_regex(lowered, "(?s)^.+@[^@]+$"))
                  & ~_mask(pc.match_substring_regex(lowered, _ASCII_SPACE_CLASS)))
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
        idx = np.flatnonzero(todo)
        column.reason[idx[~shaped]] = _CODE["not_an_email"]
        column = Column(_put(column.normalized, todo, result), column.reason, column.digest)
    raw = values.filter(pa.array(python)).to_pylist()
    return _apply_python(column, python, [
        normalize_email(v, prehashed=prehashed, gmail_canonical=gmail_canonical) for v in raw])


def phone_numbers(values: pa.Array, regions: np.ndarray, *, prehashed: bool = False) -> Column:
    """The phone rule of :func:`~include.msads_capi.identity.scalar.normalize_phone`, vectorised.

    :param regions: the default region of each value, already upper-case (or None).
    """
    regions = np.asarray(regions, dtype=object)
    column, trimmed, todo, python = _start(values, prehashed)
    if todo.any():
        fast = todo & _mask(pc.match_substring_regex(trimmed, phones.FAST_SHAPE))
        python |= todo & ~fast
        if fast.any():
            e164, outcome, slow = phones.to_e164(trimmed.filter(pa.array(fast)), regions[fast])
            idx = np.flatnonzero(fast)
            python[idx[slow]] = True
            read = idx[~slow]
            outcome_codes = np.array([_CODE[o] if o else 0 for o in phones.OUTCOMES], np.int8)
            column.reason[read] = outcome_codes[outcome[~slow]]
            column = Column(_put(column.normalized, fast, e164), column.reason, column.digest)
    raw = values.filter(pa.array(python)).to_pylist()
    return _apply_python(column, python, [
        normalize_phone(v, r, prehashed=prehashed) for v, r in zip(raw, regions[python],
                                                                   strict=True)])


def sha256_hex_many(values: pa.Array) -> pa.Array:
    """Lowercase hex SHA-256 of each (non-null) value's UTF-8 bytes."""
    n = len(values)
    data = values.cast(pa.binary()).to_pylist()
    sha256 = hashlib.sha256
    # One join and one hex() for the whole batch instead of a Python string per digest.
    hexes = b"".join([sha256(v).digest() for v in data]).hex().encode("ascii")
    large = 64 * n >= 2**31
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int64 if large else np.int32)
    kind = pa.LargeStringArray if large else pa.StringArray
    return kind.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexes)).cast(pa.string())


def digests(column: Column) -> pa.Array:
    """The SHA-256 to send for each value: hashed once per distinct normalised value."""
    n = len(column.reason)
    usable = column.reason == 0
    hash_rows = usable & ~column.digest
    result = _put(pa.nulls(n, pa.string()), usable & column.digest,
                  column.normalized.filter(pa.array(usable & column.digest)))
    if hash_rows.any():
        encoded = column.normalized.filter(pa.array(hash_rows)).dictionary_encode()
        hashed = sha256_hex_many(encoded.dictionary).take(encoded.indices)
        result = _put(result, hash_rows, hashed)
    return result


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


def _per_row(values: pa.Array, read) -> tuple[pa.Array, np.ndarray]:
    """Read each distinct value once; spread digests and reasons back over the rows."""
    encoded = values.dictionary_encode()
    column = read(encoded.dictionary)
    sha = pa.concat_arrays([digests(column), pa.nulls(1, pa.string())])
    reason = np.append(column.reason, np.int8(_CODE["missing"]))
    rows = encoded.indices.fill_null(len(encoded.dictionary))
    return sha.take(rows), reason[rows.to_numpy()]


def _phone_rows(values: pa.Array, regions: np.ndarray, prehashed: bool):
    """Read each distinct (value, region) pair once."""
    encoded = values.dictionary_encode()
    value_of = encoded.indices.fill_null(-1).to_numpy()
    region_of, region_names = pd.factorize(pd.array(regions, dtype=object))
    width = len(region_names) + 2
    # One integer per (value, region); missing values and regions (-1) stay distinguishable.
    pair_id, pair_keys = pd.factorize(value_of.astype(np.int64) * width + region_of + 1)
    unique_value = pair_keys // width
    unique_region = pair_keys % width - 1
    names = np.append(np.asarray(region_names, dtype=object), None)
    pair_values = encoded.dictionary.take(pa.array(unique_value, mask=unique_value < 0))
    column = phone_numbers(pair_values, names[unique_region], prehashed=prehashed)
    sha = digests(column)
    return sha.take(pa.array(pair_id)), column.reason[pair_id]


def _regions(frame: pd.DataFrame, region: str | None, default_region: str | None,
             n: int) -> np.ndarray:
    default = normalize_region(default_region)
    if region is None:
        return np.full(n, default, dtype=object)
    encoded = _strings(frame, region, "phone region").dictionary_encode()
    names = np.array([normalize_region(r) for r in encoded.dictionary.to_pylist()] + [default],
                     dtype=object)
    return names[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()]


def _text_column(array: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([array.cast(pa.string())])),
                     index=index)


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
    regions = _regions(frame, region, default_region, n)
    phone_sha, phone_reason = nothing if phone_values is None else _phone_rows(
        phone_values, regions, phone_prehashed)
    clicks = _strings(frame, click_id, "click id")
    has_click = (np.zeros(n, bool) if clicks is None
                 else _lengths(pc.utf8_trim_whitespace(clicks)) > 0)
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
