"""Phone numbers to E.164 for many values at once, by the same rules phonenumbers.parse applies.

phonenumbers costs about 25 microseconds a value; a batch of a million distinct numbers would
spend most of its time there. This module reads the common shapes (ASCII digits with spaces,
dots, dashes and brackets, an optional leading +, an "x"/"ext" extension) with numpy on the raw
Arrow buffers and pyarrow string kernels, driven by phonenumbers' own metadata: the same
international prefixes, national-prefix rules, possible lengths and validation patterns, in the
same order as ``phonenumbers.parse`` and ``phonenumbers.is_valid_number`` use them. What it does
not cover (letters, other extension spellings, non-ASCII digits, numbers phonenumbers would
re-read after a failure, non-geographic calling codes) is marked ``slow`` and handed to
phonenumbers one distinct value at a time; national-prefix rules that insert digits (the
Caribbean area codes, Argentina's 9) are applied per value with ``re``. The tests compare both
paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonemetadata import PhoneMetadata

from include.msads_capi.identity.buffers import from_parts, owners, string_buffers, subset

if TYPE_CHECKING:
    from phonenumbers.phonemetadata import PhoneNumberDesc

# Values in this shape (and at most 250 characters, phonenumbers' input limit) are read here:
# the number, then perhaps an extension written "ext", "ext." or "x" (dropped, as phonenumbers
# does; other spellings go to phonenumbers).
_EXTENSION = r" *(?:[eE][xX][tT]|[xX])[.:]? *[0-9]{1,9}$"
FAST_SHAPE = r"^[ .()\-]*\+?[0-9 .()\-]*(?:" + _EXTENSION[:-1] + ")?$"
MAX_INPUT = 250
_MIN_NSN, _MAX_NSN = 2, 17
_NON_GEO = "001"
_COUNTRY_REGIONS = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
_IS_CALLING_CODE = np.zeros(1000, bool)
_IS_CALLING_CODE[list(_COUNTRY_REGIONS)] = True

# What phonenumbers' _test_number_length answers.
_POSSIBLE, _TOO_SHORT, _TOO_LONG, _INVALID_LENGTH, _LOCAL_ONLY = range(5)
_KEEP_UNSTRIPPED = np.array([_TOO_SHORT, _LOCAL_ONLY, _INVALID_LENGTH])

# The number types is_valid_number accepts; fixed line and mobile first because most numbers are.
_TYPE_FIELDS = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "voip",
                "personal_number", "pager", "uan", "voicemail")


@dataclass(frozen=True)
class _Desc:
    pattern: str
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class _Plan:
    """One region's metadata, shaped for vectorised use."""

    region: str
    country_code: int
    idd: str | None
    national_prefix: str | None
    prefix_vectorised: bool
    prefix_re: re.Pattern | None
    transform: str | None
    general: _Desc | None
    general_re: re.Pattern | None
    local_lengths: tuple[int, ...]
    types: tuple[_Desc, ...]
    leading_digits: str | None


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(desc.national_number_pattern, tuple(desc.possible_length))


@cache
def plan(region: str) -> _Plan | None:
    """The metadata phonenumbers uses for ``region``; None for regions without any."""
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None:
        return None
    npp = md.national_prefix_for_parsing or None
    prefix_re = re.compile(npp) if npp else None
    transform = md.national_prefix_transform_rule or None
    # Capture groups only name a carrier code, which is not kept. A transform rule made only of
    # the last group (Brazil's \2, Japan's \1) gives, where that group took no part in the
    # match, the plain stripped number phonenumbers uses then: one regex replacement does both.
    # Other rules (the Caribbean area codes, Argentina's 9) need Python's re.
    vectorised = (prefix_re is None or transform is None
                  or re.fullmatch(rf"(?:\\{prefix_re.groups})+", transform) is not None)
    general = _desc(md.general_desc)
    mobile_too = not md.same_mobile_and_fixed_line_pattern
    types = tuple(d for f in _TYPE_FIELDS if (f != "mobile" or mobile_too)
                  for d in [_desc(getattr(md, f))] if d is not None)
    return _Plan(region=region, country_code=md.country_code, idd=md.international_prefix,
                 national_prefix=npp, prefix_vectorised=vectorised, prefix_re=prefix_re,
                 transform=transform, general=general,
                 general_re=re.compile(general.pattern) if general else None,
                 local_lengths=tuple(md.general_desc.possible_length_local_only),
                 types=types, leading_digits=md.leading_digits)


def _bools(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _literal(pattern: str) -> bool:
    """Patterns such as ``0``, ``00`` or ``011`` match themselves only: no regex needed."""
    return pattern.isascii() and pattern.isdigit()


def _starts(strings: pa.Array, pattern: str) -> np.ndarray:
    """``re.match`` for every value (RE2 picks the same leftmost-first match as Python)."""
    if _literal(pattern):
        return _bools(pc.starts_with(strings, pattern))
    return _bools(pc.match_substring_regex(strings, f"^(?:{pattern})"))


def _full(strings: pa.Array, pattern: str) -> np.ndarray:
    return _bools(pc.match_substring_regex(strings, f"^(?:{pattern})$"))


def _strip_start(strings: pa.Array, pattern: str, rewrite: str | None = None) -> pa.Array:
    """What follows the match of ``pattern`` at the start of each value (all must match),
    after ``rewrite`` (groups as ``\\1``) when one is given."""
    if _literal(pattern) and not rewrite:
        return pc.utf8_slice_codeunits(strings, len(pattern))
    return pc.replace_substring_regex(strings, f"^(?:{pattern})", rewrite or "",
                                      max_replacements=1)


def _lengths(strings: pa.Array) -> np.ndarray:
    return pc.binary_length(strings).to_numpy(zero_copy_only=False)


def _put(base: pa.Array, mask: np.ndarray, values: pa.Array) -> pa.Array:
    """``base`` with the rows under ``mask`` replaced, in order, by ``values``."""
    if not mask.any():
        return base
    return pc.replace_with_mask(base, pa.array(mask), values)


def _groups(keys: np.ndarray, rows: np.ndarray):
    """(key, row indexes) for each key among ``rows``, indexes ascending, one pass."""
    idx = np.flatnonzero(rows)
    if not len(idx):
        return
    # Keys are small (region indexes, calling codes): int16 makes numpy's stable sort a radix sort.
    order = np.argsort(keys[idx].astype(np.int16), kind="stable")
    idx = idx[order]
    for part in np.split(idx, np.flatnonzero(np.diff(keys[idx])) + 1):
        yield keys[part[0]], part


class _Pieces:
    """Values for some rows of an array, found group by group; read back in any order."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.values: list[pa.Array] = []
        self._joined: tuple[pa.Array, np.ndarray] | None = None

    def add(self, rows: np.ndarray, values: pa.Array) -> None:
        self.rows.append(rows)
        self.values.append(values.cast(pa.string()))
        self._joined = None

    def take(self, rows: np.ndarray, n: int) -> pa.Array:
        """The values of ``rows`` (of ``n``), null where no piece gave one."""
        if self._joined is None:
            given = np.concatenate([*self.rows, np.zeros(0, np.int64)])
            position = np.full(n, len(given), np.int64)
            position[given] = np.arange(len(given))
            self._joined = (pa.concat_arrays([*self.values, pa.nulls(1, pa.string())]), position)
        values, position = self._joined
        return values.take(pa.array(position[rows]))


def _scan(values: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Each value's ASCII digits without its extension, whether it has a +, its length, and
    whether it is in :data:`FAST_SHAPE`.

    On the raw buffers, no per-value Python. In that shape an x can only start an extension
    (``x`` or ``ext``), and what follows it is the extension, which phonenumbers drops; for
    other values the digits are meaningless.
    """
    n = len(values)
    offsets, data = string_buffers(values)
    base = int(offsets[0])
    chunk = data[base:offsets[-1]]
    starts = offsets.astype(np.int64) - base
    digit = (chunk - np.uint8(ord("0"))) < 10
    plus_at = np.flatnonzero(chunk == ord("+"))
    separator = ((chunk == ord(" ")) | ((chunk - np.uint8(ord("("))) < 2)  # ( )
                 | ((chunk - np.uint8(ord("-"))) < 2))  # - .
    odd = np.zeros(n, bool)  # a character other than digits, separators and +: the regex decides
    odd[owners(starts, np.flatnonzero(~(digit | separator) & (chunk != ord("+"))))] = True
    xs = np.flatnonzero((chunk | np.uint8(0x20)) == ord("x"))
    if len(xs):
        span = starts[owners(starts, xs) + 1] - xs  # from the x to the end of its value
        first = np.cumsum(span) - span
        digit[np.repeat(xs - first, span) + np.arange(span.sum())] = False
    kept = np.zeros(len(chunk) + 1, np.int64 if len(chunk) >= 2**31 else np.int32)
    np.cumsum(digit, out=kept[1:])
    plus = np.zeros(n, bool)
    holder = owners(starts, plus_at)
    plus[holder] = True
    # Otherwise the shape is: at most one +, and no digit before it.
    shaped = ~odd
    shaped[holder[1:][holder[1:] == holder[:-1]]] = False
    shaped[holder[kept[plus_at] > kept[starts[holder]]]] = False
    if odd.any():
        shaped[odd] = _bools(pc.match_substring_regex(values.filter(pa.array(odd)), FAST_SHAPE))
    return from_parts(kept[starts], chunk[digit]), plus, np.diff(starts), shaped


def _drop_heads(digits: pa.Array, width: np.ndarray) -> pa.Array:
    """Each value without its first ``width`` characters (ASCII digits: one byte each)."""
    offsets, data = string_buffers(digits)
    base = int(offsets[0])
    chunk = data[base:offsets[-1]]
    starts = offsets.astype(np.int64) - base
    keep = np.ones(len(chunk), bool)
    for k in range(1, int(width.max(initial=0)) + 1):
        keep[starts[:-1][width >= k] + k - 1] = False
    starts[1:] -= np.cumsum(width)
    return from_parts(starts, chunk[keep])


def _matches(strings: pa.Array, lengths: np.ndarray, desc: _Desc | None) -> np.ndarray:
    """phonenumbers' _is_number_matching_desc: a possible length, then the full pattern."""
    if desc is None:
        return np.zeros(len(strings), bool)
    ok = np.isin(lengths, desc.lengths) if desc.lengths else np.ones(len(strings), bool)
    if ok.any():
        ok[ok] = _full(subset(strings, ok), desc.pattern)
    return ok


def _general_pattern(strings: pa.Array, p: _Plan) -> np.ndarray:
    """phonenumbers' _match_national_number against the general description (no length check)."""
    if p.general is None:
        return np.zeros(len(strings), bool)
    return _full(strings, p.general.pattern)


def _test_length(lengths: np.ndarray, p: _Plan) -> np.ndarray:
    """phonenumbers' _test_number_length for the general description."""
    possible = p.general.lengths if p.general else ()
    result = np.full(len(lengths), _INVALID_LENGTH)
    if possible and possible[0] != -1:
        result[np.isin(lengths, possible)] = _POSSIBLE
        result[lengths < possible[0]] = _TOO_SHORT
        result[lengths > possible[-1]] = _TOO_LONG
    result[np.isin(lengths, p.local_lengths)] = _LOCAL_ONLY  # checked first by phonenumbers
    return result


def _strip_one(number: str, p: _Plan) -> str:
    """phonenumbers' _maybe_strip_national_prefix_carrier_code for one number (groups, transforms)."""
    match = p.prefix_re.match(number) if number else None
    if match is None:
        return number
    general = p.general_re
    viable = general is not None and general.fullmatch(number) is not None
    if not p.transform or match.groups()[-1] is None:
        rest = number[match.end():]
    else:
        rest = p.prefix_re.sub(p.transform, number, count=1)
    if viable and (general is None or general.fullmatch(rest) is None):
        return number
    return rest


def _strip_national_prefix(strings: pa.Array, p: _Plan) -> pa.Array:
    """Remove a trunk prefix (``0``, ``1``...) where phonenumbers would."""
    if p.national_prefix is None or len(strings) == 0:
        return strings
    candidates = _starts(strings, p.national_prefix) & (_lengths(strings) > 0)
    if not candidates.any():
        return strings
    numbers = subset(strings, candidates)
    if p.prefix_vectorised:
        rest = _strip_start(numbers, p.national_prefix, p.transform)
        # Keep the prefix when the number was viable with it and is not without it.
        keep = _general_pattern(numbers, p)
        if keep.any():
            keep[keep] = ~_general_pattern(rest.filter(pa.array(keep)), p)
            rest = pc.if_else(pa.array(keep), numbers, rest)
    else:
        rest = pa.array([_strip_one(n, p) for n in numbers.to_pylist()], pa.string())
    return _put(strings, candidates, rest)


def _split_calling_code(digits: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """phonenumbers' _extract_country_code: the first 1, 2 or 3 digits that are a calling code.

    Returns each value's calling code and how many digits it takes (0 and 0: none).
    """
    offsets, data = string_buffers(digits)
    n = len(digits)
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    code = np.zeros(n, np.int32)
    width = np.zeros(n, np.int8)
    head = np.zeros(n, np.int32)
    for k in (1, 2, 3):
        rows = np.flatnonzero(lengths >= k)
        head[rows] = head[rows] * 10 + (data[starts[rows] + k - 1] - ord("0"))
        # No calling code starts with 0 (as numbers, "01" would read as 1).
        hit = rows[(width[rows] == 0) & _IS_CALLING_CODE[head[rows]]
                   & (data[starts[rows]] != ord("0"))]
        code[hit] = head[hit]
        width[hit] = k
    return code, width


def _type_known(numbers: pa.Array, p: _Plan) -> np.ndarray:
    """phonenumbers' _number_type_helper(...) != UNKNOWN."""
    lengths = _lengths(numbers)
    open_ = _matches(numbers, lengths, p.general)
    known = np.zeros(len(numbers), bool)
    # The numbers no type has matched yet, shrinking as types match (most match the first).
    rows = np.flatnonzero(open_)
    remaining, lengths = subset(numbers, open_), lengths[rows]
    for desc in p.types:
        if not len(rows):
            break
        hit = _matches(remaining, lengths, desc)
        if hit.any():
            known[rows[hit]] = True
            rows, lengths, remaining = rows[~hit], lengths[~hit], remaining.filter(pa.array(~hit))
    return known


def _valid(numbers: pa.Array, calling_code: int) -> np.ndarray:
    """phonenumbers' is_valid_number: pick the region as region_code_for_number does, validate."""
    regions = _COUNTRY_REGIONS[calling_code]
    if len(regions) == 1:
        return _type_known(numbers, plan(regions[0]))
    valid = np.zeros(len(numbers), bool)
    # The numbers no region has claimed yet, shrinking region by region (most go to the first).
    rows = np.arange(len(numbers))
    remaining = numbers
    for region in regions:
        p = plan(region)
        if p is None:
            continue
        if not len(rows):
            break
        if p.leading_digits is not None:
            claimed = _starts(remaining, p.leading_digits)
            valid[rows[claimed]] = _type_known(subset(remaining, claimed), p)
        else:
            claimed = _type_known(remaining, p)
            valid[rows[claimed]] = True
        if claimed.any():
            rows, remaining = rows[~claimed], remaining.filter(pa.array(~claimed))
    return valid


# Outcome codes while reading; turned into reason strings at the end.
_OK, _SHORT, _LONG, _BAD_CODE, _INVALID = range(5)
OUTCOMES = (None, "too_short", "too_long", "invalid_country_code", "invalid_phone")


def to_e164(values: pa.Array, regions: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Read trimmed, non-null values with their default regions.

    Values not in :data:`FAST_SHAPE` are left to phonenumbers.

    :param values: the numbers as written (whitespace already trimmed).
    :param regions: upper-case region codes (or None), one per value.
    :returns: E.164 strings (null where unreadable); outcome codes, indexes into
        :data:`OUTCOMES` (0 when valid); and a mask of the values this module leaves to
        phonenumbers (their other outputs are meaningless).
    """
    region_of, names = pd.factorize(pd.array(np.asarray(regions, dtype=object), dtype=object))
    return read(values, region_of, list(names))


def _from_region(d: pa.Array, idx: np.ndarray, p: _Plan, code: np.ndarray,
                 from_number: np.ndarray, outcome: np.ndarray, national: _Pieces) -> None:
    """Numbers written without a +, read with their default region: international prefix,
    the region's own calling code written out, or a national number."""
    via_idd = np.zeros(len(idx), bool)
    if p.idd:
        hit = _starts(d, p.idd)
        if hit.any():
            after = _strip_start(d.filter(pa.array(hit)), p.idd)
            # An international prefix followed by 0 is not one (calling codes never start 0).
            real = ~_bools(pc.starts_with(after, "0"))
            via_idd[np.flatnonzero(hit)[real]] = True
            after = subset(after, real)
            sub = idx[via_idd]
            too_short = _lengths(after) <= _MIN_NSN
            found_code, width = _split_calling_code(after)
            found = (width > 0) & ~too_short
            outcome[sub[too_short]] = _SHORT
            outcome[sub[~found & ~too_short]] = _BAD_CODE
            code[sub[found]] = found_code[found]
            from_number[sub[found]] = True
            national.add(sub, _drop_heads(after, width))
    own = str(p.country_code)
    starts_own = _bools(pc.starts_with(d, own)) & ~via_idd
    take = np.zeros(len(idx), bool)
    if starts_own.any():
        full = d.filter(pa.array(starts_own))
        potential = _strip_national_prefix(pc.utf8_slice_codeunits(full, len(own)), p)
        # phonenumbers takes the digits as the calling code when that makes a better number.
        better = ((~_general_pattern(full, p) & _general_pattern(potential, p))
                  | (_test_length(_lengths(full), p) == _TOO_LONG))
        take[np.flatnonzero(starts_own)[better]] = True
        code[idx[take]] = p.country_code
        from_number[idx[take]] = True
        national.add(idx[take], potential.filter(pa.array(better)))
    domestic = ~via_idd & ~take
    code[idx[domestic]] = p.country_code
    national.add(idx[domestic], subset(d, domestic))


def _national(nn: pa.Array, idx: np.ndarray, p: _Plan,
              outcome: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """The national (trunk) prefix, phonenumbers' length limits, then validity.

    ``p`` is the region whose metadata reads these numbers (its calling code is theirs).
    Returns the rows that have an E.164 form, and that form.
    """
    short = _lengths(nn) < _MIN_NSN
    potential = _strip_national_prefix(nn, p)
    use = ~np.isin(_test_length(_lengths(potential), p), _KEEP_UNSTRIPPED)
    nn = pc.if_else(pa.array(use), potential, nn)
    final = _lengths(nn)
    outcome[idx[short | (final < _MIN_NSN)]] = _SHORT
    outcome[idx[~short & (final > _MAX_NSN)]] = _LONG
    ok = ~short & (final >= _MIN_NSN) & (final <= _MAX_NSN)
    nn = subset(nn, ok)
    idx = idx[ok]
    outcome[idx[~_valid(nn, p.country_code)]] = _INVALID
    return idx, pc.utf8_replace_slice(nn, 0, 0, f"+{p.country_code}")


def read(values: pa.Array, region_of: np.ndarray,
         names: list[str | None]) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """:func:`to_e164` with the regions given as indexes into ``names`` (-1: none)."""
    n = len(values)
    digits, plus, full_length, shaped = _scan(values)
    # Fewer than three digits: phonenumbers' viability rules differ; too rare to be worth it.
    slow = ~shaped | (_lengths(digits) < 3) | (full_length > MAX_INPUT)
    outcome = np.zeros(n, np.int8)
    code = np.zeros(n, np.int32)
    from_number = np.zeros(n, bool)  # the calling code was written in the number
    national = _Pieces()

    # 1. The calling code: after a +, after the region's international prefix, or the region's own.
    rows = np.flatnonzero(plus & ~slow)
    if len(rows):
        found_code, width = _split_calling_code(digits.take(pa.array(rows)))
        found = width > 0
        slow[rows[~found]] = True  # phonenumbers then retries without the +
        code[rows[found]] = found_code[found]
        from_number[rows[found]] = True
        national.add(rows[found], _drop_heads(digits.take(pa.array(rows[found])), width[found]))
    names = list(names)
    usable = np.array([r in phonenumbers.SUPPORTED_REGIONS for r in names] + [False])
    slow |= ~plus & ~usable[region_of]  # no default region: phonenumbers says so (no_region)
    for r, idx in _groups(region_of, ~plus & ~slow):
        _from_region(digits.take(pa.array(idx)), idx, plan(names[r]), code, from_number,
                     outcome, national)

    # The metadata that reads the national number: the calling code's main region, or the
    # default region when the number was written without a calling code.
    meta = region_of.copy()
    for c, idx in _groups(code, from_number & ~slow):
        main = _COUNTRY_REGIONS[int(c)][0]
        if main == _NON_GEO:
            slow[idx] = True  # non-geographic metadata is looked up differently; rare
            continue
        if main not in names:
            names.append(main)
        meta[idx] = names.index(main)

    # 2. The national number, one metadata region at a time.
    e164 = _Pieces()
    for m, idx in _groups(meta, ~slow & (outcome == _OK)):
        e164.add(*_national(national.take(idx, n), idx, plan(names[m]), outcome))
    return e164.take(np.arange(n), n), outcome, slow

