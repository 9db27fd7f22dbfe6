"""Reference codes: the currencies Microsoft takes for conversions, ISO 3166-1 phone regions."""

from __future__ import annotations

from functools import cache

from include.msads_capi.errors import MsadsError

# Microsoft's "Conversion Goal Revenue Currencies": the codes it takes for a conversion's or a
# goal's currency (learn.microsoft.com/en-us/advertising/guides/currencies#conversiongoalrevenue).
# Not all of ISO 4217: it lists the legacy TRL for the Turkish lira, not TRY, and keeps HRK and
# VEF. A code outside it is refused by Microsoft (5611), so it never leaves the warehouse.
CURRENCIES = frozenset("""
AED ALL AMD ARS AUD AZN BDT BGN BHD BND BOB BRL BWP BZD CAD CHF CLP CNY COP CRC CZK DKK DOP DZD
EGP ETB EUR FJD GBP GEL GHS GTQ HKD HNL HRK HUF IDR ILS INR IQD ISK JMD JOD JPY KES KGS KRW KWD
KZT LBP LKR LYD MAD MKD MNT MOP MUR MVR MWK MXN MYR NGN NIO NOK NZD OMR PAB PEN PHP PKR PLN PYG
QAR RON RSD RUB RWF SAR SEK SGD THB TND TOP TRL TTD TWD TZS UAH UGX USD UYU UZS VEF VND XAF XCD
XOF YER ZAR ZMW
""".split())
CURRENCY_LIST_URL = ("https://learn.microsoft.com/en-us/advertising/guides/currencies"
                     "#conversiongoalrevenue")


@cache
def regions() -> frozenset[str]:
    """ISO 3166-1 alpha-2 regions that have a telephone numbering plan (phonenumbers' list)."""
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def currency(value: str, *, what: str = "currency") -> str:
    """A currency Microsoft takes for conversions, upper-cased; a clear error otherwise."""
    code = (value or "").strip().upper()
    if code not in CURRENCIES:
        raise MsadsError(f"{what} {value!r} is not a currency Microsoft Advertising takes for "
                         f"conversions; use one of its list ({CURRENCY_LIST_URL}), such as USD, "
                         "EUR or GBP")
    return code


def region(value: str, *, what: str = "phone region") -> str:
    """An ISO 3166-1 alpha-2 region with a numbering plan, upper-cased; a clear error otherwise."""
    code = (value or "").strip().upper()
    if code == "UK":
        raise MsadsError(f"{what} 'UK' is not ISO 3166-1; the United Kingdom is GB")
    if code not in regions():
        raise MsadsError(f"{what} {value!r} is not an ISO 3166-1 alpha-2 country code; "
                         "use two letters such as US, GB, DE or FR")
    return code
