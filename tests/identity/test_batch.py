"""hash_identities as the pipeline uses it: shape of the result, coverage, options, no leaks."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from include.msads_capi.errors import MsadsError
from include.msads_capi.identity import REASONS, batch, hash_identities, sha256_hex

JANE = sha256_hex("jane@example.com")
US = sha256_hex("+16502530000")


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "email": ["Jane@Example.com", None, "not an email", "  ", "jane@example.com"],
        "phone": ["(650) 253-0000", "+44 20 7946 0958", None, "12", "650 253 0000"],
        "phone_region": ["US", "US", "GB", None, None],
        "msclkid": ["f894f652ea334e739002f7167ab8f8e3", None, "  ", None, None],
    }, index=pd.Index([42, 7, 99, 3, 5], name="event"))


def test_result_frame_keeps_the_index_and_has_the_promised_columns():
    result = hash_identities(_frame(), email="email", phone="phone", region="phone_region",
                             click_id="msclkid", default_region="US")
    frame = result.frame
    assert frame.index.equals(_frame().index)
    assert list(frame.columns) == ["email_sha256", "phone_sha256", "email_reason",
                                   "phone_reason", "has_click_id"]
    assert frame.dtypes["email_sha256"] == "string" and frame.dtypes["has_click_id"] == "bool"
    assert frame.loc[42, "email_sha256"] == JANE and frame.loc[5, "email_sha256"] == JANE
    assert frame.loc[42, "phone_sha256"] == US
    # A null region falls back to the default region.
    assert frame.loc[5, "phone_sha256"] == US
    assert frame.loc[7, "email_reason"] == "missing" and pd.isna(frame.loc[7, "email_sha256"])
    assert frame.loc[99, "email_reason"] == "not_an_email"
    assert frame.loc[3, "email_reason"] == "empty"
    assert frame.loc[3, "phone_reason"] == "invalid_phone"
    assert pd.isna(frame.loc[42, "email_reason"])
    assert frame["has_click_id"].tolist() == [True, False, False, False, False]


def test_coverage_counts_rows_by_identifier_and_is_json():
    result = hash_identities(_frame(), email="email", phone="phone", region="phone_region",
                             click_id="msclkid")
    assert result.coverage == {"rows": 5, "click_id": 1, "email": 2, "phone": 2, "none": 2}
    assert json.loads(json.dumps(result.coverage)) == result.coverage
    assert result.reasons["email"] == {"missing": 1, "not_an_email": 1, "empty": 1}
    assert result.reasons["phone"] == {"missing": 1, "no_region": 2}
    assert set(result.reasons["phone"]) <= set(REASONS)


def test_columns_not_configured_count_as_missing():
    result = hash_identities(_frame(), email="email")
    assert result.frame["phone_reason"].eq("missing").all()
    assert result.coverage["phone"] == 0 and not result.frame["has_click_id"].any()


def test_an_empty_batch():
    result = hash_identities(_frame().iloc[:0], email="email", phone="phone",
                             region="phone_region", click_id="msclkid")
    assert len(result.frame) == 0
    assert result.coverage == {"rows": 0, "click_id": 0, "email": 0, "phone": 0, "none": 0}


def test_declared_prehashed_columns_pass_digests_through_and_refuse_plain_values():
    frame = pd.DataFrame({"email": [JANE.upper(), "jane@example.com"],
                          "phone": [f" {US} ", "+16502530000"]})
    result = hash_identities(frame, email="email", phone="phone", email_prehashed=True,
                             phone_prehashed=True).frame
    assert result["email_sha256"].tolist()[0] == JANE
    assert result["phone_sha256"].tolist()[0] == US
    assert result["email_reason"].tolist()[1] == "not_a_sha256"
    assert result["phone_reason"].tolist()[1] == "not_a_sha256"


def test_phones_stored_as_numbers_are_read_as_digits():
    frame = pd.DataFrame({"phone": [16502530000.0, None], "phone_int": [16502530000, 16502530000]})
    floats = hash_identities(frame, phone="phone", default_region="US").frame
    ints = hash_identities(frame, phone="phone_int", default_region="US").frame
    assert floats["phone_sha256"].tolist()[0] == US
    assert ints["phone_sha256"].tolist() == [US, US]


def test_gmail_option():
    frame = pd.DataFrame({"email": ["J.Ane+ads@googlemail.com"]})
    off = hash_identities(frame, email="email").frame["email_sha256"].iloc[0]
    on = hash_identities(frame, email="email", gmail_canonical=True).frame["email_sha256"].iloc[0]
    assert off == sha256_hex("j.ane+ads@googlemail.com")
    assert on == sha256_hex("jane@gmail.com")


def test_unknown_column_is_a_clear_error_without_values():
    with pytest.raises(MsadsError, match="email column 'mail' is not in the batch") as err:
        hash_identities(_frame(), email="mail")
    assert "Jane" not in str(err.value)


def test_raw_values_are_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    frame = pd.DataFrame({"email": ["secret.person@example.com"], "phone": ["+1 650 253 0000"]})
    hash_identities(frame, email="email", phone="phone")
    text = caplog.text
    assert "secret.person" not in text and "253" not in text


def test_whitespace_list_is_pythons():
    assert batch.PY_WHITESPACE == "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
