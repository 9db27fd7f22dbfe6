"""The currencies Microsoft Advertising takes for conversion goal revenue and conversions.

Microsoft's "Conversion Goal Revenue Currencies" list, exactly as published (100 codes; it
still has the legacy TRL, VEF and HRK, and has no TRY):
https://learn.microsoft.com/en-us/advertising/guides/currencies#conversiongoalrevenue

The emulator keeps its own copy so that it never agrees with the product by construction.
"""

from __future__ import annotations

CONVERSION_GOAL_REVENUE_CURRENCIES = frozenset("""
AED ALL AMD ARS AUD AZN BDT BGN BHD BND BOB BRL BWP BZD CAD CHF CLP CNY COP CRC CZK DKK DOP DZD
EGP ETB EUR FJD GBP GEL GHS GTQ HKD HNL HRK HUF IDR ILS INR IQD ISK JMD JOD JPY KES KGS KRW KWD
KZT LBP LKR LYD MAD MKD MNT MOP MUR MVR MWK MXN MYR NGN NIO NOK NZD OMR PAB PEN PHP PKR PLN PYG
QAR RON RSD RUB RWF SAR SEK SGD THB TND TOP TRL TTD TWD TZS UAH UGX USD UYU UZS VEF VND XAF XCD
XOF YER ZAR ZMW
""".split())
