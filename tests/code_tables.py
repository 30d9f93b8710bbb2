"""CONTRACT section 5's default code maps, written out once for the tests, the synthetic-day
generator (tests/synth) and the SQL reference (tests/bench/sql_reference.py).

Independent of recon's own tables (recon/codes.py) on purpose: a code recon maps wrongly then
shows up as a difference instead of being agreed with.
"""

from __future__ import annotations

# Per scheme, per root cause, its codes in the contract's order.
_CODES_BY_CAUSE: dict[str, dict[str, str]] = {
    "iso8583": {
        "insufficient_balance": "51",
        "account_frozen": "62",
        "account_closed": "14",
        "card_unbound": "04 33 41 43 54",
        "instruction_not_confirmed": "55 38 75",
        "gateway_outage": "68 90 91 92 96 98",
        "other_decline": "03 05 12 13 15 30 34 57 59 61 65 94",
    },
    "iso20022": {
        "insufficient_balance": "AM04",
        "account_frozen": "AC06",
        "account_closed": "AC04",
        "card_unbound": "AC01 MD01 MD02",
        "gateway_outage": "AB05 AB06 AB07 AB08 AB09 AB10 ED05",
        "other_decline": "AG01 AG02 AM02 AM05 MD06 MD07 MS02 MS03 RR01 RR02 RR03 RR04 SL01 TM01",
    },
}

# scheme -> response code -> root cause (codes in the order above).
DEFAULT_MAPS: dict[str, dict[str, str]] = {
    scheme: {code: cause for cause, codes in causes.items() for code in codes.split()}
    for scheme, causes in _CODES_BY_CAUSE.items()
}
