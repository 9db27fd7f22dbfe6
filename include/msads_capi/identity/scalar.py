"""One value at a time: the reference rules for email and phone, used by the CLI and the tests."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

import phonenumbers

# A SHA-256 digest written as hex; the pipeline never hashes such a value again.
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Google treats these as one mailbox namespace; only used when gmail_canonical is asked for.
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Where phonenumbers starts reading a number: the first digit or plus sign.
_NUMBER_START = re.compile(r"[+\uFF0B\d]")

_PARSE_REASONS = {
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not_a_phone",
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too_short",
    phonenumbers.NumberParseException.TOO_LONG: "too_long",
}


class Normalized(NamedTuple):
    """What became of one value.

    ``normalized`` is what would be hashed (or the digest itself for a pre-hashed value; for an
    unusable value, as much as could be read, or None); ``sha256`` is the lowercase hex digest to
    send, or None; ``reason`` is a code from :data:`REASONS` when ``sha256`` is None.
    """

    normalized: str | None
    sha256: str | None
    reason: str | None


def sha256_hex(value: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``value``."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _text(value: object) -> str | None:
    """The value as text, or None when it is missing (None, NaN, pandas NA)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone stored as a float: 16502530000.0 means 16502530000
    try:
        if value != value:  # NaN and pandas NA compare unequal (NA raises, see below)
            return None
    except TypeError:
        return None
    return str(value)


def _blank_or_digest(value: object, prehashed: bool) -> Normalized | str:
    """The common start of both rules: missing, blank, or already a digest; else the trimmed text."""
    text = _text(value)
    if text is None:
        return Normalized(None, None, "missing")
    text = text.strip()
    if not text:
        return Normalized(None, None, "empty")
    if SHA256_HEX.fullmatch(text):
        digest = text.lower()
        return Normalized(digest, digest, None)
    if prehashed:
        return Normalized(None, None, "not_a_sha256")
    return text


def normalize_email(value: object, *, prehashed: bool = False,
                    gmail_canonical: bool = False) -> Normalized:
    """Trim, lowercase (full Unicode case mapping), check the shape, hash.

    :param prehashed: the value must already be a SHA-256 hex digest; it is never hashed again.
    :param gmail_canonical: for gmail.com and googlemail.com, drop dots and a ``+tag`` from the
        local part and use gmail.com (Microsoft documents no such rule; off by default).
    """
    start = _blank_or_digest(value, prehashed)
    if isinstance(start, Normalized):
        return start
    email = start.lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in email):
        return Normalized(email, None, "not_an_email")
    if gmail_canonical and domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return Normalized(email, None, "not_an_email")
        email = f"{local}@gmail.com"
    return Normalized(email, sha256_hex(email), None)


def normalize_region(region: object) -> str | None:
    """A default region as phonenumbers wants it (upper case), or None when blank."""
    text = _text(region)
    return (text.strip().upper() or None) if text is not None else None


def normalize_phone(value: object, region: object = None, *, prehashed: bool = False) -> Normalized:
    """E.164 with the leading +, read with ``region`` as the default for national numbers, hashed.

    The number is parsed by phonenumbers (extension dropped) and must be valid for its country;
    ``normalized`` holds the E.164 form even when it is not valid, so a person can see why.
    """
    start = _blank_or_digest(value, prehashed)
    if isinstance(start, Normalized):
        return start
    region_code = normalize_region(region)
    try:
        number = phonenumbers.parse(start, region_code)
    except phonenumbers.NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not_a_phone")
        if reason == "invalid_country_code" and region_code not in phonenumbers.SUPPORTED_REGIONS:
            first = _NUMBER_START.search(start)
            if first is None or first.group() not in "+\uFF0B":
                reason = "no_region"
        return Normalized(None, None, reason)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number):
        return Normalized(e164, None, "invalid_phone")
    return Normalized(e164, sha256_hex(e164), None)
