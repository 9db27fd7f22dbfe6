"""msads hash: one JSON object on stdout, reasons for people on stderr."""

from __future__ import annotations

import json

from include.msads_capi.identity import sha256_hex


def test_email_and_phone(msads):
    code, out, err = msads("hash", "--email", "  Jane.Doe@Example.COM ", "--phone",
                           "020 7946 0958", "--region", "gb")
    assert code == 0
    assert json.loads(out) == {
        "email": {"normalized": "jane.doe@example.com",
                  "sha256": sha256_hex("jane.doe@example.com"), "reason": None},
        "phone": {"normalized": "+442079460958", "sha256": sha256_hex("+442079460958"),
                  "reason": None},
    }


def test_a_value_not_given_is_null_and_an_unusable_one_says_why(msads):
    code, out, err = msads("hash", "--phone", "650 253 000", "--region", "US")
    assert code == 0
    data = json.loads(out)
    assert data["email"] is None
    assert data["phone"] == {"normalized": "+1650253000", "sha256": None,
                             "reason": "invalid_phone"}
    assert "invalid_phone" in err


def test_national_number_without_region(msads):
    code, out, err = msads("hash", "--phone", "(650) 253-0000")
    assert json.loads(out)["phone"]["reason"] == "no_region"
    assert "default region" in err


def test_gmail_option_and_prehashed_email(msads):
    digest = sha256_hex("test@contoso.com")
    code, out, _ = msads("hash", "--email", digest.upper())
    assert json.loads(out)["email"] == {"normalized": digest, "sha256": digest, "reason": None}
    code, out, _ = msads("hash", "--email", "J.Ane+x@gmail.com", "--gmail-canonical")
    assert json.loads(out)["email"]["normalized"] == "jane@gmail.com"


def test_bad_region_and_nothing_to_hash_are_one_line_errors(msads):
    code, out, err = msads("hash", "--phone", "020 7946 0958", "--region", "UK")
    assert code == 2 and out == "" and "GB" in err
    code, out, err = msads("hash")
    assert code == 2 and "--email" in err
