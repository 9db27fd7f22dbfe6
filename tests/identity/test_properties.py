"""Properties: normalisation is idempotent, and the batch path equals one value at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.msads_capi.identity import (
    batch,
    hash_identities,
    normalize_email,
    normalize_phone,
    sha256_hex,
)

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
REGIONS = st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "IT", "RU",
                           "GG", "AG", "AR", "MX", "CN", "KR", "us", " gb ", "UK", "ZZ", "", None])
SEPARATORS = st.sampled_from(["", " ", "-", ".", " - ", "(", ")", "  ", "/"])
PREFIXES = st.sampled_from(["", "", "+", "+ ", "00", "011", "0", "(0)", "+0", "1", "(", "tel: ",
                            "\uff0b", "++"])
EXTENSIONS = st.sampled_from(["", "", "", " ext. 12", " x5", "x123", " EXT 7", " extension 3",
                              " #44", ";ext=9", ",,2"])
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=5)


@st.composite
def phone_texts(draw) -> str:
    groups = draw(st.lists(DIGITS, min_size=1, max_size=5))
    body = "".join(g + draw(SEPARATORS) for g in groups)
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        body += draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=7))
    text = draw(PREFIXES) + body + draw(EXTENSIONS)
    pad = draw(st.sampled_from(["", " ", "\t", "\u00a0", "\n "]))
    return pad + text + pad


PHONES = st.one_of(phone_texts(), st.text(max_size=20), st.none(),
                   st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64))
EMAIL_CHARS = st.sampled_from(list("abcXYZ09.+_-@ ") + ["\t", "\u00a0", "\u3000", "É", "ß", "İ",
                                                          "Σ", "ẞ", "ǅ", "Ω", "я", "字", "\u0301"])
LOCALS = st.text(alphabet=EMAIL_CHARS, min_size=0, max_size=12)


@st.composite
def email_texts(draw) -> str:
    local = draw(LOCALS)
    domain = draw(st.sampled_from(["gmail.com", "GoogleMail.com", "example.com", "Exämple.DE",
                                   "", "b"]))
    at = draw(st.sampled_from(["@", "@", "@", "", "@@", " @"]))
    pad = draw(st.sampled_from(["", " ", "\u2003", "\r\n"]))
    return pad + local + at + domain + pad


EMAILS = st.one_of(email_texts(), st.text(max_size=25), st.none())


@SETTINGS
@given(st.lists(st.tuples(PHONES, REGIONS), min_size=1, max_size=40))
def test_phone_batch_equals_one_value_at_a_time(pairs):
    values = [v for v, _ in pairs]
    regions = [batch.normalize_region(r) for _, r in pairs]
    column = batch.phone_numbers(pa.array(values, pa.string()), np.array(regions, dtype=object))
    got = list(zip(column.normalized.to_pylist(), [batch.CODES[c] for c in column.reason],
                   strict=True))
    expected = [tuple(normalize_phone(v, r))[::2] for v, r in pairs]
    assert got == expected


@SETTINGS
@given(st.lists(EMAILS, min_size=1, max_size=40), st.booleans())
def test_email_batch_equals_one_value_at_a_time(values, gmail):
    column = batch.emails(pa.array(values, pa.string()), gmail_canonical=gmail)
    got = list(zip(column.normalized.to_pylist(), [batch.CODES[c] for c in column.reason],
                   strict=True))
    expected = [tuple(normalize_email(v, gmail_canonical=gmail))[::2] for v in values]
    assert got == expected


@SETTINGS
@given(st.lists(st.tuples(EMAILS, PHONES, REGIONS), min_size=1, max_size=30), st.booleans())
def test_hash_identities_digests_equal_one_value_at_a_time(rows, gmail):
    frame = pd.DataFrame(rows, columns=["email", "phone", "region"], dtype=object)
    result = hash_identities(frame, email="email", phone="phone", region="region",
                             gmail_canonical=gmail).frame
    for i, (email, phone, region) in enumerate(rows):
        e = normalize_email(email, gmail_canonical=gmail)
        p = normalize_phone(phone, region)
        row = result.iloc[i]
        assert (_na(row.email_sha256), _na(row.email_reason)) == (e.sha256, e.reason)
        assert (_na(row.phone_sha256), _na(row.phone_reason)) == (p.sha256, p.reason)


@SETTINGS
@given(EMAILS, st.booleans())
def test_email_normalisation_is_idempotent(value, gmail):
    first = normalize_email(value, gmail_canonical=gmail)
    if first.sha256 is None:
        return
    again = normalize_email(first.normalized, gmail_canonical=gmail)
    assert again == first
    if first.sha256 != first.normalized:
        assert first.sha256 == sha256_hex(first.normalized)


@SETTINGS
@given(PHONES, REGIONS, REGIONS)
def test_phone_normalisation_is_idempotent(value, region, other_region):
    first = normalize_phone(value, region)
    if first.sha256 is None:
        return
    # E.164 carries its country: reading it again, with any default region, changes nothing.
    assert normalize_phone(first.normalized, other_region) == first


def _na(value):
    return None if pd.isna(value) else value
