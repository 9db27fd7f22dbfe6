"""Why an email or phone value was not used: short snake_case codes and the sentence behind each."""

from __future__ import annotations

# Codes are stable: they end up in result rows and run summaries, and analysts filter on them.
REASONS: dict[str, str] = {
    "missing": "no value was given (NULL)",
    "empty": "the value is blank once surrounding whitespace is removed",
    "not_an_email": "not an email address: it needs one '@' with text on both sides and no "
                    "whitespace inside",
    "not_a_sha256": "the column is declared pre-hashed but the value is not 64 hexadecimal "
                    "characters",
    "not_a_phone": "not a phone number: too few digits, or characters a phone number cannot hold",
    "no_region": "a national phone number (no leading + or international prefix) and no valid "
                 "default phone region to read it with; set the Space's default region or write "
                 "the number with its country code",
    "invalid_country_code": "the number starts with an international prefix, but no country "
                            "uses the calling code after it",
    "too_short": "too few digits for a phone number",
    "too_long": "too many digits for a phone number",
    "invalid_phone": "the digits do not form a valid number in its country's numbering plan",
}


def describe(code: str) -> str:
    """The human sentence for a reason code (the code itself when it is unknown)."""
    return REASONS.get(code, code)
