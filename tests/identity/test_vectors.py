"""The published test vectors: both the one-value functions and the batch path must give them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from include.msads_capi.identity import hash_identities, normalize_email, normalize_phone

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text(encoding="utf-8"))["cases"]
COUNTRIES = ("us-", "gb-", "de-", "fr-", "in-", "br-", "jp-")


def _id(case: dict) -> str:
    return case["id"]


def test_there_are_enough_vectors_covering_what_the_issue_lists():
    ids = [c["id"] for c in VECTORS]
    assert len(VECTORS) >= 60
    assert len(set(ids)) == len(ids)
    for prefix in COUNTRIES:
        assert sum(i.startswith(prefix) for i in ids) >= 3, prefix
    assert any(c["value"] is None for c in VECTORS if c["kind"] == "email")
    assert any(c["value"] is None for c in VECTORS if c["kind"] == "phone")
    assert any("vanity" in i for i in ids) and any("extension" in i for i in ids)
    assert any("prehashed" in i for i in ids) and any("trunk" in i for i in ids)


@pytest.mark.parametrize("case", VECTORS, ids=_id)
def test_vector_digest_is_sha256_of_the_normalised_value(case):
    if case["sha256"] is None:
        assert case["reason"]
    elif "prehashed" in case["id"]:
        assert case["sha256"] == case["normalized"]
    else:
        assert case["sha256"] == hashlib.sha256(case["normalized"].encode("utf-8")).hexdigest()


@pytest.mark.parametrize("case", VECTORS, ids=_id)
def test_one_value_at_a_time(case):
    if case["kind"] == "email":
        got = normalize_email(case["value"], prehashed=case["prehashed"],
                              gmail_canonical=case["gmail_canonical"])
    else:
        got = normalize_phone(case["value"], case["region"], prehashed=case["prehashed"])
    assert tuple(got) == (case["normalized"], case["sha256"], case["reason"])


@pytest.mark.parametrize("options", [
    {"prehashed": False, "gmail_canonical": False},
    {"prehashed": False, "gmail_canonical": True},
    {"prehashed": True, "gmail_canonical": False},
], ids=["plain", "gmail", "prehashed"])
def test_batch_path_gives_the_vectors(options):
    emails = [c for c in VECTORS if c["kind"] == "email"
              and c["prehashed"] == options["prehashed"]
              and c["gmail_canonical"] == options["gmail_canonical"]]
    phones = [c for c in VECTORS if c["kind"] == "phone" and c["prehashed"] == options["prehashed"]]
    rows = max(len(emails), len(phones))
    pad = [None] * rows
    frame = pd.DataFrame({
        "email": ([c["value"] for c in emails] + pad)[:rows],
        "phone": ([c["value"] for c in phones] + pad)[:rows],
        "phone_region": ([c["region"] for c in phones] + pad)[:rows],
    }, index=pd.RangeIndex(100, 100 + rows))
    result = hash_identities(frame, email="email", phone="phone", region="phone_region",
                             email_prehashed=options["prehashed"],
                             phone_prehashed=options["prehashed"],
                             gmail_canonical=options["gmail_canonical"]).frame
    for i, case in enumerate(emails):
        row = result.iloc[i]
        assert (_na(row.email_sha256), _na(row.email_reason)) == (case["sha256"], case["reason"]), \
            case["id"]
    for i, case in enumerate(phones):
        row = result.iloc[i]
        assert (_na(row.phone_sha256), _na(row.phone_reason)) == (case["sha256"], case["reason"]), \
            case["id"]


def _na(value):
    return None if pd.isna(value) else value
