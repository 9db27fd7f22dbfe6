"""Reference codes: ISO 4217 currencies in circulation and ISO 3166-1 regions for phones."""

from __future__ import annotations

from functools import cache

from include.msads_capi.errors import MsadsError

# ISO 4217 currencies in circulation (no fund, metal, testing or withdrawn codes), 2025 list.
CURRENCIES = frozenset("""
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD
KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN
NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP
SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND
VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())


@cache
def regions() -> frozenset[str]:
    """ISO 3166-1 alpha-2 regions that have a telephone numbering plan (phonenumbers' list)."""
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def currency(value: str, *, what: str = "currency") -> str:
    """An ISO 4217 code, upper-cased; a clear error otherwise."""
    code = (value or "").strip().upper()
    if code not in CURRENCIES:
        raise MsadsError(f"{what} {value!r} is not an ISO 4217 currency code in use; "
                         "use three letters such as USD, EUR or GBP")
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
