"""Normalise and hash the email and phone columns of a batch of events, vectorised."""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.msads_capi.errors import MsadsError
from include.msads_capi.identity import phones
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
    return pc.replace_with_mask(base, pa.array(mask), values) if mask.any() else base


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
    empty = ~missing & (_lengths(trimmed) == 0)
    reason[empty] = _CODE["empty"]
    hexed = ~missing & ~empty & _mask(pc.match_substring_regex(trimmed, _SHA256_HEX))
    digest[hexed] = True
    normalized = _put(pa.nulls(n, pa.string()), hexed,
                      pc.ascii_lower(trimmed.filter(pa.array(hexed))))
    todo = ~missing & ~empty & ~hexed
    if prehashed:
        reason[todo] = _CODE["not_a_sha256"]
        todo[:] = False
    return Column(normalized, reason, digest), trimmed, todo


def _lower(values: pa.Array) -> pa.Array:
    """``str.lower()`` exactly: Arrow for ASCII values, Python's full case mapping for the rest."""
    ascii_ = _mask(pc.string_is_ascii(values))
    lowered = pc.ascii_lower(values)
    if ascii_.all():
        return lowered
    others = values.filter(pa.array(~ascii_)).to_pylist()
    return _put(lowered, ~ascii_, pa.array([v.lower() for v in others], pa.string()))


def emails(values: pa.Array, *, prehashed: bool = False, gmail_canonical: bool = False) -> Column:
    """The email rule of :func:`~include.msads_capi.identity.scalar.normalize_email`, vectorised."""
    column, trimmed, todo = _start(values, prehashed)
    if not todo.any():
        return column
    lowered = _lower(trimmed.filter(pa.array(todo)))
    shaped = (_mask(pc.match_substring_regex(lowered, "(?s)^.+@[^@]+$"))
              & ~_mask(pc.match_substring_regex(lowered, _WHITESPACE_CLASS)))
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
    regions = np.asarray(regions, dtype=object)
    column, trimmed, todo = _start(values, prehashed)
    fast = todo & _mask(pc.match_substring_regex(trimmed, phones.FAST_SHAPE))
    python = todo & ~fast
    if fast.any():
        e164, outcome, slow = phones.to_e164(trimmed.filter(pa.array(fast)), regions[fast])
        idx = np.flatnonzero(fast)
        python[idx[slow]] = True
        outcome_codes = np.array([_CODE[o] if o else 0 for o in phones.OUTCOMES], np.int8)
        column.reason[idx[~slow]] = outcome_codes[outcome[~slow]]
        column = Column(_put(column.normalized, fast, e164), column.reason, column.digest)
    if not python.any():
        return column
    # What the vectorised reader leaves: phonenumbers itself, once per distinct value.
    raw = values.filter(pa.array(python)).to_pylist()
    results = [normalize_phone(v, r, prehashed=prehashed)
               for v, r in zip(raw, regions[python], strict=True)]
    idx = np.flatnonzero(python)
    column.reason[idx] = [_CODE[r.reason] for r in results]
    text = pa.array([r.normalized for r in results], pa.string())
    return Column(_put(column.normalized, python, text), column.reason, column.digest)


def sha256_hex_many(values: pa.Array) -> pa.Array:
    """Lowercase hex SHA-256 of each (non-null) value's UTF-8 bytes."""
    n = len(values)
    data = values.cast(pa.binary()).to_pylist()
    sha256 = hashlib.sha256
    # One join and one hex() for the whole batch instead of a Python string per digest.
    hexes = binascii.hexlify(b"".join([sha256(v).digest() for v in data]))
    large = 64 * n >= 2**31
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int64 if large else np.int32)
    kind = pa.LargeStringArray if large else pa.StringArray
    return kind.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexes)).cast(pa.string())


def digests(column: Column) -> pa.Array:
    """The SHA-256 to send for each value (values are distinct already: each is hashed once)."""
    usable = column.reason == 0
    result = pa.nulls(len(usable), pa.string())
    result = _put(result, usable & column.digest,
                  column.normalized.filter(pa.array(usable & column.digest)))
    hash_rows = usable & ~column.digest
    return _put(result, hash_rows, sha256_hex_many(column.normalized.filter(pa.array(hash_rows))))


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
    sha = pa.concat_arrays([digests(column), pa.nulls(1, pa.string())])
    reason = np.append(column.reason, np.int8(_CODE["missing"]))
    rows = encoded.indices.fill_null(len(encoded.dictionary))
    return sha.take(rows), reason[rows.to_numpy()]


def _phone_rows(values: pa.Array, region_of: np.ndarray, region_names: list[str | None],
                prehashed: bool) -> tuple[pa.Array, np.ndarray]:
    """Read each distinct (value, region) pair once; spread the results back over the rows."""
    encoded = values.dictionary_encode()
    value_of = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
    width = len(region_names)
    # One integer per (value, region) pair; a missing value (-1) stays distinguishable.
    pair_id, pair_keys = pd.factorize(value_of * width + region_of)
    unique_value = pair_keys // width
    names = np.array(region_names, dtype=object)
    pair_values = encoded.dictionary.take(pa.array(unique_value, mask=unique_value < 0))
    column = phone_numbers(pair_values, names[pair_keys % width], prehashed=prehashed)
    return digests(column).take(pa.array(pair_id)), column.reason[pair_id]


def _regions(frame: pd.DataFrame, region: str | None, default_region: str | None,
             n: int) -> tuple[np.ndarray, list[str | None]]:
    """Each row's default phone region: an index into a short list of region codes."""
    default = normalize_region(default_region)
    if region is None:
        return np.zeros(n, np.int64), [default]
    encoded = _strings(frame, region, "phone region").dictionary_encode()
    names = [normalize_region(r) for r in encoded.dictionary.to_pylist()] + [default]
    return encoded.indices.fill_null(len(names) - 1).to_numpy().astype(np.int64), names


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
    region_of, region_names = _regions(frame, region, default_region, n)
    phone_sha, phone_reason = nothing if phone_values is None else _phone_rows(
        phone_values, region_of, region_names, phone_prehashed)
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
