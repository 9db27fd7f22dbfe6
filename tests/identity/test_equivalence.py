"""The vectorised path gives exactly what phonenumbers gives one value at a time.

Example numbers of every region phonenumbers knows, written the ways people write them and read
with several default regions, then mutated digit by digit (so invalid numbers and odd prefixes
come up too). Hypothesis explores further in test_properties.py.
"""

from __future__ import annotations

import random

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from include.msads_capi.identity import batch, normalize_phone, phones

FORMATS = (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
           phonenumbers.PhoneNumberFormat.NATIONAL)
TYPES = (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
         phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.PREMIUM_RATE,
         phonenumbers.PhoneNumberType.VOIP, phonenumbers.PhoneNumberType.SHARED_COST)
CALLING_FROM = ("US", "GB", "DE", "JP", "BR", "CH", "AU", "RU")


def _examples(seed: int) -> tuple[list[str], list[str | None]]:
    rng = random.Random(seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    values: list[str] = []
    defaults: list[str | None] = []

    def add(value: str, region: str | None) -> None:
        values.append(value)
        defaults.append(region)

    for region in regions:
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in FORMATS:
                text = phonenumbers.format_number(example, fmt)
                for default in (region, rng.choice(regions), "US", None):
                    add(text, default)
            for origin in CALLING_FROM:
                add(phonenumbers.format_out_of_country_calling_number(example, origin), origin)
            national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
            add(f"{national} ext. {rng.randint(1, 9999)}", region)
            add(f"{national} x{rng.randint(1, 99)}", region)
            digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
            for _ in range(6):
                chars = list(digits)
                at = rng.randrange(len(chars))
                roll = rng.random()
                if roll < 0.4:
                    chars[at] = rng.choice("0123456789")
                elif roll < 0.7:
                    del chars[at]
                else:
                    chars.insert(at, rng.choice("0123456789"))
                prefix = rng.choice(["+", "", "00", "011", "0", "(0)", "+0", "1"])
                add(prefix + "".join(chars), rng.choice([region, "US", "GB", "DE", "IN", None]))
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
        add(rng.choice(["+", "", "", "00", "0", "011"]) + digits,
            rng.choice(regions + ["US"] * 20 + [None]))
    return values, defaults


@pytest.fixture(scope="module")
def examples() -> tuple[list[str], list[str | None]]:
    return _examples(seed=20260105)


def test_vectorised_reader_matches_phonenumbers(examples):
    values, defaults = examples
    trimmed = pc.utf8_trim_whitespace(pa.array(values, pa.string()))
    shaped = pc.match_substring_regex(trimmed, phones.FAST_SHAPE).to_numpy(zero_copy_only=False)
    fast_values = trimmed.filter(pa.array(shaped))
    fast_regions = np.array(defaults, dtype=object)[shaped]
    e164, outcome, slow = phones.to_e164(fast_values, fast_regions)
    e164 = e164.to_pylist()
    read = 0
    for i, (value, region) in enumerate(zip(fast_values.to_pylist(), fast_regions, strict=True)):
        if slow[i]:
            continue
        read += 1
        expected = normalize_phone(value, region)
        assert (e164[i], phones.OUTCOMES[outcome[i]]) == (expected.normalized, expected.reason), \
            (value, region)
    # The comparison is only worth something if the reader itself handled nearly everything.
    assert read >= 0.9 * len(fast_values)
    assert len(fast_values) >= 0.9 * len(values)


def test_batch_phone_column_matches_one_value_at_a_time(examples):
    values, defaults = examples
    column = batch.phone_numbers(pa.array(values, pa.string()), np.array(defaults, dtype=object))
    normalized = column.normalized.to_pylist()
    for i, (value, region) in enumerate(zip(values, defaults, strict=True)):
        expected = normalize_phone(value, region)
        got_reason = batch.CODES[column.reason[i]]
        assert (normalized[i], got_reason) == (expected.normalized, expected.reason), (value, region)


def test_phonenumbers_is_called_only_for_distinct_pairs_it_is_needed_for(monkeypatch):
    calls: list[str] = []
    real = phonenumbers.parse

    def counting_parse(number, region=None, *args, **kwargs):
        calls.append(number)
        return real(number, region, *args, **kwargs)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    import pandas as pd

    from include.msads_capi.identity import hash_identities

    e164 = ["+16502530000", "+442079460958", "+4930123456"] * 300
    national = ["(650) 253-0000", "020 7946 0958"] * 300
    vanity = ["1-800-FLOWERS", "+1 800 GOT JUNK"] * 300
    frame = pd.DataFrame({"phone": e164 + national + vanity,
                          "region": ["US"] * 900 + ["US", "GB"] * 300 + ["US"] * 600})
    result = hash_identities(frame, phone="phone", region="region")
    assert result.coverage["phone"] == len(frame)
    assert sorted(calls) == sorted(["1-800-FLOWERS", "+1 800 GOT JUNK"])
