"""The generator's vocabulary: gateways, incident windows, sending slots, statuses and root
causes as small integers, response codes under CONTRACT section 5's default maps (the one copy in
tests/code_tables.py), the scenarios and their intended outcomes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib

import numpy as np

from recon.contract import BINDING_STATUSES, CONFIRM_STATUSES, RootCause, Status
from tests.code_tables import DEFAULT_MAPS
from tests.synth.arrays import draw_choice, draw_ints

GATEWAYS: tuple[str, ...] = ("UNIONPAY", "CNAPS_DD", "LIANLIAN")
GATEWAY_SCHEME: dict[str, str] = {"UNIONPAY": "iso8583", "CNAPS_DD": "iso20022", "LIANLIAN": "iso8583"}
SCHEMES = ("iso8583", "iso20022")
GW_SCHEME_INDEX = np.array([SCHEMES.index(GATEWAY_SCHEME[g]) for g in GATEWAYS], dtype=np.int8)
GW_SHARE = (0.34, 0.33, 0.33)  # a busy day: three settlement files of about a third each

# Incident windows on D, seconds after D 00:00:00 (inclusive both ends). They lie outside the
# regular sending slots, so only attempts placed there on purpose fall inside.
INCIDENTS: tuple[tuple[int, int, int, str], ...] = (  # gateway index, start, end, description
    (0, 13 * 3600, 14 * 3600 + 1800, '银联通道故障, 交易超时 (ticket "INC-4471")'),
    (1, 11 * 3600 + 1200, 11 * 3600 + 3000, "CNAPS direct-debit front end unavailable; 人行系统维护"),
    (2, 21 * 3600 + 2700, 22 * 3600 + 900, "连连支付 channel degraded, timeouts"),
    (0, 13 * 3600 - 86400, 14 * 3600 - 86400, "yesterday's UnionPay incident (D-1), already closed"),
)
# Regular sending slots of the collections batch: attempt k of an installment is sent in slot k.
SLOTS = ((6 * 3600, 11 * 3600 - 1), (15 * 3600, 18 * 3600 - 1), (19 * 3600, 21 * 3600 + 1799))

CAUSES: tuple[str, ...] = ("",) + tuple(c.value for c in RootCause)  # index 0: no root cause
_C = {c: i for i, c in enumerate(CAUSES)}
C_NONE = 0
C_CU = _C["card_unbound"]
C_IB = _C["insufficient_balance"]
C_AF = _C["account_frozen"]
C_AC = _C["account_closed"]
C_GO = _C["gateway_outage"]
C_INC = _C["instruction_not_confirmed"]
C_NI = _C["not_instructed"]
C_NSR = _C["no_settlement_record"]
C_SP = _C["settlement_pending"]
C_OD = _C["other_decline"]
C_UNC = _C["unclassified"]

STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
_S = {s: i for i, s in enumerate(STATUSES)}
S_OVERPAID, S_PAID, S_PENDING, S_PARTIAL, S_UNPAID = (
    _S["overpaid"], _S["paid"], _S["pending"], _S["partially_paid"], _S["unpaid"])

B_ACTIVE, B_UNBOUND, B_REVOKED, B_EXPIRED = (BINDING_STATUSES.index(s) for s in
                                             ("ACTIVE", "UNBOUND", "REVOKED", "EXPIRED"))
CF_CONFIRMED, CF_PENDING, CF_EXPIRED, CF_FAILED, CF_NOT_REQUIRED = (
    CONFIRM_STATUSES.index(s) for s in ("CONFIRMED", "PENDING", "EXPIRED", "FAILED", "NOT_REQUIRED"))

# Codes in no table of their scheme -> unclassified (some are valid codes of the *other* scheme).
_UNKNOWN = {"iso8583": ["01", "N7", "A0", "99", "Q5", "AM04"], "iso20022": ["AM09", "FF01", "NARR", "MS01", "51"]}
SUCCESS_CODE = {"iso8583": "00", "iso20022": "ACSC"}

CODES: tuple[str, ...] = tuple(sorted(set().union(*(DEFAULT_MAPS[s] for s in SCHEMES),
                                                  *_UNKNOWN.values(), SUCCESS_CODE.values())))
CODE_INDEX = {c: i for i, c in enumerate(CODES)}


def _cause_of() -> np.ndarray:
    """Cause of (scheme, code) under the default maps."""
    cause_of = np.full((2, len(CODES)), C_UNC, dtype=np.int8)
    for si, scheme in enumerate(SCHEMES):
        for code, cause in DEFAULT_MAPS[scheme].items():
            cause_of[si, CODE_INDEX[code]] = _C[cause]
    return cause_of


def _codes_for() -> dict[tuple[int, int], np.ndarray]:
    """Candidate codes for (scheme, cause), in the code tables' order."""
    codes_for = {}
    for si, scheme in enumerate(SCHEMES):
        for ci in range(len(CAUSES)):
            lst = ([c for c, v in DEFAULT_MAPS[scheme].items() if _C[v] == ci] if ci != C_UNC
                   else _UNKNOWN[scheme])
            if lst:
                codes_for[(si, ci)] = np.array([CODE_INDEX[c] for c in lst], dtype=np.int16)
    return codes_for


CAUSE_OF = _cause_of()
CODES_FOR = _codes_for()

_MSG_BY_CAUSE = {
    C_IB: '余额不足, 请充值后重试 ("NSF")',
    C_AF: "账户冻结 / account frozen",
    C_AC: "账户已销户",
    C_CU: "卡号无效或未签约, card not enrolled",
    C_INC: "持卡人未确认, SMS code not entered",
    C_GO: "系统繁忙, 请稍后重试",
    C_OD: "交易被拒绝: 请联系发卡行",
    C_UNC: '未知错误, code "{code}"',
}


def _code_message(code: str) -> str:
    if code in SUCCESS_CODE.values():
        return "交易成功"
    causes = {CAUSE_OF[s, CODE_INDEX[code]] for s in range(2)} - {C_UNC}
    return _MSG_BY_CAUSE[min(causes) if causes else C_UNC].replace("{code}", code)


CODE_MESSAGES = [_code_message(code) for code in CODES]

# attempt kinds (one instruction each)
K_SUCC, K_SUCC2, K_FAIL1, K_FAIL2, K_NOROW, K_UNSENT = range(6)
ROWS_OF_KIND = np.array([1, 2, 1, 2, 0, 0], dtype=np.int64)
CARD_BINS = (("622202", "ICBC"), ("621700", "CCB"), ("622848", "ABC"), ("621661", "BOC"),
             ("622588", "CMB"), ("622262", "BOCOM"))


# Scenarios: name, share of installments (None: the rest), intended status, intended root cause
# (-1: decided per installment by the builder).
SCENARIOS: tuple[tuple[str, float | None, int, int], ...] = (
    ("paid_first_try", None, S_PAID, C_NONE),
    ("paid_after_retry", 0.040, S_PAID, C_NONE),
    ("paid_split_debit", 0.003, S_PAID, C_NONE),
    ("overpaid_duplicate_debit", 0.003, S_OVERPAID, C_NONE),
    ("overpaid_double_collection", 0.002, S_OVERPAID, C_NONE),
    ("partial_then_failed", 0.010, S_PARTIAL, -1),
    ("partial_all_succeeded", 0.004, S_PARTIAL, C_UNC),
    ("failed_insufficient_balance", 0.110, S_UNPAID, C_IB),
    ("failed_account_frozen", 0.012, S_UNPAID, C_AF),
    ("failed_account_closed", 0.008, S_UNPAID, C_AC),
    ("failed_card_unbound", 0.012, S_UNPAID, C_CU),
    ("failed_instruction_not_confirmed", 0.006, S_UNPAID, C_INC),
    ("failed_gateway_outage_code", 0.008, S_UNPAID, C_GO),
    ("failed_other_decline", 0.020, S_UNPAID, C_OD),
    ("failed_unknown_code", 0.004, S_UNPAID, C_UNC),
    ("sent_no_row_in_incident", 0.006, S_UNPAID, C_GO),
    ("sent_no_row", 0.006, S_UNPAID, C_NSR),
    ("unsent_not_confirmed", 0.009, S_UNPAID, C_INC),
    ("unsent_card_unbound", 0.005, S_UNPAID, C_CU),
    ("unsent_not_instructed", 0.005, S_UNPAID, C_NI),
    ("no_instruction_card_unbound", 0.014, S_UNPAID, C_CU),
    ("no_instruction_not_instructed", 0.008, S_UNPAID, C_NI),
)
SCENARIO = {s[0]: i for i, s in enumerate(SCENARIOS)}


@dataclasses.dataclass(frozen=True)
class SynthSummary:
    business_date: dt.date
    day_dir: pathlib.Path
    installments: int                     # valid installments = rows of _truth.csv
    rows: dict[str, int]                  # data records written per input file (bad/duplicate included)
    bad_rows: dict[str, int]              # rows planted to be rejected, per input file
    duplicate_rows: dict[str, int]        # exact duplicate rows planted (collapse), per input file
    status_counts: dict[str, int]
    root_cause_counts: dict[str, int]     # "" = paid/overpaid
    scenario_counts: dict[str, int]
    orphan_settlements: int
    duplicate_debits: int
    missing_gateway: str | None
    seconds: float


# Drawing codes, times and gateways of this vocabulary.

def slot_time(rng, k: int, n: int) -> np.ndarray:
    lo, hi = SLOTS[k]
    return draw_ints(rng, lo, hi, n)


def other_gateway(rng, gw: np.ndarray) -> np.ndarray:
    return ((gw + draw_ints(rng, 1, 2, len(gw))) % 3).astype(np.int8)


def incident_window(gw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(3, np.int64)
    end = np.zeros(3, np.int64)
    for g, s, e, _ in INCIDENTS:
        if s >= 0:
            start[g], end[g] = s, e
    return start[gw], end[gw]


def pick_codes(rng, cause, gw: np.ndarray) -> np.ndarray:
    """A response code of gw's scheme that maps to cause (scalar or per-row array)."""
    n = len(gw)
    cause = np.broadcast_to(np.asarray(cause, dtype=np.int64), (n,))
    out = np.full(n, -1, dtype=np.int16)
    sch = GW_SCHEME_INDEX[gw]
    for s in (0, 1):
        for c in np.unique(cause[sch == s]):
            m = (sch == s) & (cause == c)
            cands = CODES_FOR[(s, int(c))]
            out[m] = cands[draw_ints(rng, 0, len(cands) - 1, int(m.sum()))]
    return out


_PREFAIL_CAUSES = np.array([C_IB, C_AF, C_AC, C_CU, C_INC, C_GO, C_OD, C_UNC])
_PREFAIL_P = (0.6, 0.05, 0.03, 0.05, 0.05, 0.07, 0.10, 0.05)


def prefail_codes(rng, gw: np.ndarray) -> np.ndarray:
    cause = _PREFAIL_CAUSES[draw_choice(rng, len(gw), _PREFAIL_P)]
    cause = np.where((cause == C_INC) & (GW_SCHEME_INDEX[gw] == 1), C_IB, cause)
    return pick_codes(rng, cause, gw)

