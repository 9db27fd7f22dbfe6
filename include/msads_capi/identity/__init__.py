"""Identity: normalise and SHA-256 email addresses and phone numbers for enhanced conversions.

The pipeline hashes a whole batch at once::

    from include.msads_capi.identity import hash_identities

    result = hash_identities(frame, email="email", phone="phone", region="phone_region",
                             click_id="msclkid", email_prehashed=False, phone_prehashed=False,
                             gmail_canonical=False)
    result.frame     # same index: email_sha256, phone_sha256, email_reason, phone_reason
                     # (pandas "string", <NA> when absent) and has_click_id (bool)
    result.coverage  # {"rows", "click_id", "email", "phone", "none"}: counts, JSON-ready
    result.reasons   # {"email": {reason: count}, "phone": {reason: count}}

One value at a time (the CLI, tests, an analyst's check)::

    normalize_email("  Jane.Doe@Example.COM ")   # Normalized("jane.doe@example.com", "<sha>", None)
    normalize_phone("(650) 253-0000", "US")       # Normalized("+16502530000", "<sha>", None)

Rules (docs/identity.md has them in full, with Microsoft's statements and what they leave open):
email is trimmed and lowercased and must look like ``local@domain`` without whitespace; phone is
E.164 with the ``+`` as phonenumbers reads it with the row's default region, and must be valid;
a value that already is 64 hex characters is lowercased and sent as is; digests are lowercase
hex SHA-256 of the UTF-8 bytes. An unusable value gets no digest and a reason code
(:data:`REASONS`). Raw values are never logged or put in exceptions.

The batch path is vectorised (pyarrow kernels, each distinct value read and hashed once,
phonenumbers only for the shapes :mod:`.phones` does not read itself) and gives exactly the
results of the one-value functions; the tests hold it to that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.msads_capi.identity.reasons import REASONS, describe
from include.msads_capi.identity.scalar import (
    Normalized,
    normalize_email,
    normalize_phone,
    normalize_region,
    sha256_hex,
)

if TYPE_CHECKING:
    from include.msads_capi.identity.batch import HashResult, hash_identities


def __getattr__(name: str):
    # The batch path needs pandas and pyarrow (about 0.4 s to import); one-value checks such
    # as `msads hash` and `msads why` do not, so it is loaded on first use.
    if name in ("HashResult", "hash_identities"):
        from include.msads_capi.identity import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REASONS", "HashResult", "Normalized", "describe", "hash_identities",
           "normalize_email", "normalize_phone", "normalize_region", "sha256_hex"]
