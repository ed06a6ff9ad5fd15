"""Which certificate country may sign a passport of which issuing state.

A passport's zone names its issuing state with an ICAO code (Doc 9303 Part 3: ISO 3166-1
alpha-3, plus a few of ICAO's own such as ``D`` for Germany), while the Document Signer
and CSCA certificates that sign its chip name their country with ISO 3166-1 alpha-2 in
the subject's countryName (Doc 9303 Part 12, section 7.1). Passive authentication only
proves that *some* trusted CSCA vouched for the chip; this module says which of them may
vouch for a given issuing state, so that one state's signer is never accepted for
another state's passports.

ISO codes are mapped with pycountry. ICAO's codes that are not ISO are mapped here, to
the countryName their issuers' certificates carry. Codes that name no state that signs
passports (stateless persons ``XXA`` to ``XXX``, and the international organizations
``XBA`` ... ``XPO``) map to nothing: such a chip is refused unless the operator lists
the pair among the known exceptions (``QIANBAO_CHIP_SIGNER_COUNTRY_EXCEPTIONS``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

import pycountry

# ICAO codes that are not ISO 3166-1 alpha-3, and the countryName their signers use.
ICAO_CERTIFICATE_COUNTRIES: Final[Mapping[str, str]] = {
    "D": "DE",  # Germany writes D<< in the zone
    # British nationals other than British citizens: passports of the United Kingdom.
    "GBD": "GB",
    "GBN": "GB",
    "GBO": "GB",
    "GBP": "GB",
    "GBS": "GB",
    # The United Nations' laissez-passer, its agencies', and UNMIK's travel documents
    # for residents of Kosovo are all issued by the United Nations.
    "UNO": "UN",
    "UNA": "UN",
    "UNK": "UN",
    "EUE": "EU",  # the European Union's laissez-passer
    "RKS": "XK",  # Kosovo: no ISO code; XK is the user-assigned code its certificates use
}


def certificate_country(issuing_state: str) -> str | None:
    """The ISO 3166-1 alpha-2 countryName of the state behind an ICAO issuing-state code
    (as in the zone, without fillers); None when the code names no such state."""
    code = issuing_state.strip("<").upper()
    if code in ICAO_CERTIFICATE_COUNTRIES:
        return ICAO_CERTIFICATE_COUNTRIES[code]
    country = pycountry.countries.get(alpha_3=code) if len(code) == 3 else None
    return str(country.alpha_2) if country is not None else None


def signer_countries(issuing_state: str, exceptions: Collection[str] = ()) -> frozenset[str]:
    """The countryNames allowed on the Document Signer and CSCA certificates of a
    passport issued by ``issuing_state``: its own, and those that ``exceptions``
    (``"STATE:CC"`` pairs, as in the setting) allow for it."""
    code = issuing_state.strip("<").upper()
    allowed = {
        country
        for state, _, country in (pair.upper().partition(":") for pair in exceptions)
        if state == code and country
    }
    own = certificate_country(code)
    if own is not None:
        allowed.add(own)
    return frozenset(allowed)
