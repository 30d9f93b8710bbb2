"""Synthetic inbox days with ground truth.

``generate_day`` writes one ``INBOX/<D>/`` directory that follows CONTRACT.md section 2 (installments,
binding history, debit instructions, three gateways' settlement files with their ``.ctl`` control files
and the incident list) plus files that are *not* inputs and that recon never reads:

- ``_truth.csv``: for every valid installment, the outcome intended when it was generated
  (``loan_id, installment_no, status, root_cause`` then ``amount_due, amount_settled, scenario``);
- ``_truth_settlement_exceptions.csv``: the orphan / duplicate-debit rows section 4.2 should list;
- ``_truth_rejects.csv``: every bad row planted (file, physical line, data record, column, reason).

How the truth is made: every installment is given a *scenario* (paid first time, failed with code
51, created but never sent while the card was unbound, ...) with the status and root cause that
scenario is meant to produce, then the rows are generated to produce it.  After that the rules of
section 3 (with the choices of notes/INTERPRETATION.md) are evaluated once more, independently,
over the generated attempts, settlement rows, incident windows and binding rows, and the two must
agree; with ``missing_gateway`` the evaluated outcome is written (attempts on the missing gateway
turn into ``settlement_pending``).

Everything is vectorised (numpy + pyarrow.compute): 1,000,000 installments take ~12-15 s and ~1.4 GB.
Amounts are integer fen throughout and are formatted as strings, never through floats.

    python -m recon.synth --date 2026-11-27 --installments 100000 --out ./inbox
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import pathlib
import time
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.contract import BINDING_STATUSES, CONFIRM_STATUSES, RootCause, Status

__all__ = ["GATEWAYS", "GATEWAY_SCHEME", "SynthSummary", "generate_day"]

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

GATEWAYS: tuple[str, ...] = ("UNIONPAY", "CNAPS_DD", "LIANLIAN")
GATEWAY_SCHEME: dict[str, str] = {"UNIONPAY": "iso8583", "CNAPS_DD": "iso20022", "LIANLIAN": "iso8583"}
_SCHEMES = ("iso8583", "iso20022")
_GW_SCHEME = np.array([_SCHEMES.index(GATEWAY_SCHEME[g]) for g in GATEWAYS], dtype=np.int8)
_GW_SHARE = (0.34, 0.33, 0.33)  # a busy day: three settlement files of about a third each

# Incident windows on D, seconds after D 00:00:00 (inclusive both ends). They lie outside the
# regular sending slots, so only attempts placed there on purpose fall inside.
_INCIDENTS: tuple[tuple[int, int, int, str], ...] = (  # gateway index, start, end, description
    (0, 13 * 3600, 14 * 3600 + 1800, '银联通道故障, 交易超时 (ticket "INC-4471")'),
    (1, 11 * 3600 + 1200, 11 * 3600 + 3000, "CNAPS direct-debit front end unavailable; 人行系统维护"),
    (2, 21 * 3600 + 2700, 22 * 3600 + 900, "连连支付 channel degraded, timeouts"),
    (0, 13 * 3600 - 86400, 14 * 3600 - 86400, "yesterday's UnionPay incident (D-1), already closed"),
)
# Regular sending slots of the collections batch: attempt k of an installment is sent in slot k.
_SLOTS = ((6 * 3600, 11 * 3600 - 1), (15 * 3600, 18 * 3600 - 1), (19 * 3600, 21 * 3600 + 1799))

_CAUSES: tuple[str, ...] = ("",) + tuple(c.value for c in RootCause)  # index 0: no root cause
_C = {c: i for i, c in enumerate(_CAUSES)}
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

_STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
_S = {s: i for i, s in enumerate(_STATUSES)}
S_OVERPAID, S_PAID, S_PENDING, S_PARTIAL, S_UNPAID = (
    _S["overpaid"], _S["paid"], _S["pending"], _S["partially_paid"], _S["unpaid"])

B_ACTIVE, B_UNBOUND, B_REVOKED, B_EXPIRED = (BINDING_STATUSES.index(s) for s in
                                             ("ACTIVE", "UNBOUND", "REVOKED", "EXPIRED"))
CF_CONFIRMED, CF_PENDING, CF_EXPIRED, CF_FAILED, CF_NOT_REQUIRED = (
    CONFIRM_STATUSES.index(s) for s in ("CONFIRMED", "PENDING", "EXPIRED", "FAILED", "NOT_REQUIRED"))

# Section 5 default maps (a private copy: the generator must not depend on recon's own tables).
_MAP: dict[str, dict[str, str]] = {
    "iso8583": {
        **dict.fromkeys(["51"], "insufficient_balance"),
        **dict.fromkeys(["62"], "account_frozen"),
        **dict.fromkeys(["14"], "account_closed"),
        **dict.fromkeys(["04", "33", "41", "43", "54"], "card_unbound"),
        **dict.fromkeys(["55", "38", "75"], "instruction_not_confirmed"),
        **dict.fromkeys(["68", "90", "91", "92", "96", "98"], "gateway_outage"),
        **dict.fromkeys(["03", "05", "12", "13", "15", "30", "34", "57", "59", "61", "65", "94"],
                        "other_decline"),
    },
    "iso20022": {
        **dict.fromkeys(["AM04"], "insufficient_balance"),
        **dict.fromkeys(["AC06"], "account_frozen"),
        **dict.fromkeys(["AC04"], "account_closed"),
        **dict.fromkeys(["AC01", "MD01", "MD02"], "card_unbound"),
        **dict.fromkeys(["AB05", "AB06", "AB07", "AB08", "AB09", "AB10", "ED05"], "gateway_outage"),
        **dict.fromkeys(["AG01", "AG02", "AM02", "AM05", "MD06", "MD07", "MS02", "MS03", "RR01",
                         "RR02", "RR03", "RR04", "SL01", "TM01"], "other_decline"),
    },
}
# Codes in no table of their scheme -> unclassified (some are valid codes of the *other* scheme).
_UNKNOWN = {"iso8583": ["01", "N7", "A0", "99", "Q5", "AM04"], "iso20022": ["AM09", "FF01", "NARR", "MS01", "51"]}
_SUCCESS_CODE = {"iso8583": "00", "iso20022": "ACSC"}

_CODES: tuple[str, ...] = tuple(sorted(set().union(*(_MAP[s] for s in _SCHEMES), *_UNKNOWN.values(),
                                                     _SUCCESS_CODE.values())))
_CODE_IX = {c: i for i, c in enumerate(_CODES)}
# cause of (scheme, code) under the default maps
_CAUSE_OF = np.full((2, len(_CODES)), C_UNC, dtype=np.int8)
for _si, _s in enumerate(_SCHEMES):
    for _code, _cause in _MAP[_s].items():
        _CAUSE_OF[_si, _CODE_IX[_code]] = _C[_cause]
# candidate codes for (scheme, cause)
_CODES_FOR: dict[tuple[int, int], np.ndarray] = {}
for _si, _s in enumerate(_SCHEMES):
    for _ci in range(len(_CAUSES)):
        lst = ([c for c, v in _MAP[_s].items() if _C[v] == _ci] if _ci != C_UNC else _UNKNOWN[_s])
        if lst:
            _CODES_FOR[(_si, _ci)] = np.array([_CODE_IX[c] for c in lst], dtype=np.int16)

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
_CODE_MSG = []
for _code in _CODES:
    if _code in _SUCCESS_CODE.values():
        _CODE_MSG.append("交易成功")
    else:
        causes = {_CAUSE_OF[s, _CODE_IX[_code]] for s in range(2)} - {C_UNC}
        _CODE_MSG.append(_MSG_BY_CAUSE[min(causes) if causes else C_UNC].replace("{code}", _code))

# attempt kinds (one instruction each)
K_SUCC, K_SUCC2, K_FAIL1, K_FAIL2, K_NOROW, K_UNSENT = range(6)
_ROWS_OF_KIND = np.array([1, 2, 1, 2, 0, 0], dtype=np.int64)
_BINS = (("622202", "ICBC"), ("621700", "CCB"), ("622848", "ABC"), ("621661", "BOC"),
         ("622588", "CMB"), ("622262", "BOCOM"))

_DAY = 86400
_HOUR = 3600

# Scenarios: name, share of installments (None: the rest), intended status, intended root cause
# (-1: decided per installment by the builder).
_SCENARIOS: tuple[tuple[str, float | None, int, int], ...] = (
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
_SC = {s[0]: i for i, s in enumerate(_SCENARIOS)}


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


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------

def _u(rng: np.random.Generator, lo, hi, n: int) -> np.ndarray:
    """Uniform integers in [lo, hi] (inclusive; lo/hi may be arrays)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    return lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)


def _pick(rng: np.random.Generator, n: int, probs: Sequence[float]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").astype(np.int64).clip(0, len(p) - 1)


def _slot_time(rng, k: int, n: int) -> np.ndarray:
    lo, hi = _SLOTS[k]
    return _u(rng, lo, hi, n)


def _other_gw(rng, gw: np.ndarray) -> np.ndarray:
    return ((gw + _u(rng, 1, 2, len(gw))) % 3).astype(np.int8)


def _window(gw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(3, np.int64)
    end = np.zeros(3, np.int64)
    for g, s, e, _ in _INCIDENTS:
        if s >= 0:
            start[g], end[g] = s, e
    return start[gw], end[gw]


def _pick_codes(rng, cause, gw: np.ndarray) -> np.ndarray:
    """A response code of gw's scheme that maps to cause (scalar or per-row array)."""
    n = len(gw)
    cause = np.broadcast_to(np.asarray(cause, dtype=np.int64), (n,))
    out = np.full(n, -1, dtype=np.int16)
    sch = _GW_SCHEME[gw]
    for s in (0, 1):
        for c in np.unique(cause[sch == s]):
            m = (sch == s) & (cause == c)
            cands = _CODES_FOR[(s, int(c))]
            out[m] = cands[_u(rng, 0, len(cands) - 1, int(m.sum()))]
    return out


_PREFAIL_CAUSES = np.array([C_IB, C_AF, C_AC, C_CU, C_INC, C_GO, C_OD, C_UNC])
_PREFAIL_P = (0.6, 0.05, 0.03, 0.05, 0.05, 0.07, 0.10, 0.05)


def _prefail_codes(rng, gw: np.ndarray) -> np.ndarray:
    cause = _PREFAIL_CAUSES[_pick(rng, len(gw), _PREFAIL_P)]
    cause = np.where((cause == C_INC) & (_GW_SCHEME[gw] == 1), C_IB, cause)
    return _pick_codes(rng, cause, gw)


def _s(x) -> pa.Array:
    """Integers -> decimal strings."""
    return pc.cast(pa.array(np.asarray(x, dtype=np.int64)), pa.string())


def _zpad(x, width: int, prefix: str = "") -> pa.Array:
    s = pc.utf8_lpad(_s(x), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, s, "") if prefix else s


def _amount(fen) -> pa.Array:
    fen = np.asarray(fen, dtype=np.int64)
    return pc.binary_join_element_wise(_s(fen // 100), pc.utf8_lpad(_s(fen % 100), width=2, padding="0"), ".")


def _fmt_amount(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _ts(base: dt.date, secs, *, iso: bool = False, mask: np.ndarray | None = None) -> pa.Array:
    """Seconds after base 00:00:00 -> 'YYYY-MM-DD HH:MM:SS' (or ISO 8601 with +08:00); mask -> empty."""
    secs = np.asarray(secs, dtype=np.int64)
    n = len(secs)
    days = np.floor_divide(secs, _DAY)
    sod = secs - days * _DAY
    ud, inv = np.unique(days, return_inverse=True)
    lut = np.frombuffer(b"".join((base + dt.timedelta(days=int(d))).isoformat().encode() for d in ud) or b"",
                        dtype=np.uint8).reshape(-1, 10)
    w = 25 if iso else 19
    m = np.empty((n, w), dtype=np.uint8)
    if n:
        m[:, :10] = lut[inv.reshape(-1)]
    m[:, 10] = ord("T") if iso else ord(" ")
    h, mi, s = sod // 3600, sod // 60 % 60, sod % 60
    for col, v in ((11, h), (14, mi), (17, s)):
        m[:, col] = v // 10 + 48
        m[:, col + 1] = v % 10 + 48
    m[:, 13] = m[:, 16] = ord(":")
    if iso:
        m[:, 19:25] = np.frombuffer(b"+08:00", dtype=np.uint8)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int64) * w).astype(np.int32).tobytes())
    arr = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(m.tobytes())])
    if mask is not None:
        arr = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), arr)
    return arr


def _ts1(base: dt.date, sec: int) -> str:
    return (dt.datetime.combine(base, dt.time()) + dt.timedelta(seconds=int(sec))).strftime("%Y-%m-%d %H:%M:%S")


def _lut(values: Sequence[str], idx) -> pa.Array:
    return pc.take(pa.array(list(values), pa.string()), pa.array(np.asarray(idx, dtype=np.int64)))


# --------------------------------------------------------------------------------------------
# Column accumulators
# --------------------------------------------------------------------------------------------

class _Acc:
    def __init__(self, defaults: dict[str, tuple[type, object]]):
        self.defaults = defaults
        self.blocks: list[dict[str, np.ndarray]] = []

    def add(self, n: int, **cols) -> None:
        if n:
            self.blocks.append({k: np.broadcast_to(np.asarray(v), (n,)) for k, v in cols.items()} | {"_n": n})

    def build(self) -> dict[str, np.ndarray]:
        out = {}
        for k, (dtype, default) in self.defaults.items():
            parts = [b[k] if k in b else np.full(b["_n"], default) for b in self.blocks]
            out[k] = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        return out


_ATTEMPT_FIELDS = {
    "inst": (np.int64, -1), "gw": (np.int8, 0), "kind": (np.int8, K_SUCC), "sent": (bool, True),
    "sent_sec": (np.int64, 0), "created_sec": (np.int64, 0), "amount": (np.int64, 0),
    "succ_amt": (np.int64, 0), "code": (np.int16, -1), "code2": (np.int16, -1),
    "conf_req": (bool, False), "conf_status": (np.int8, CF_NOT_REQUIRED),
}
_BINDING_FIELDS = {"loan": (np.int64, -1), "status": (np.int8, B_ACTIVE), "bound": (np.int64, 0),
                   "unbound": (np.int64, 0), "has_unbound": (bool, False)}


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------

class _Day:
    def __init__(self, d: dt.date, n: int, seed: int):
        self.d = d
        self.n = n
        self.rng = np.random.default_rng(np.random.PCG64([seed, d.toordinal(), n]))
        self.att = _Acc(_ATTEMPT_FIELDS)
        self.bind = _Acc(_BINDING_FIELDS)

    # ---- installments & scenarios -------------------------------------------------------
    def plan(self) -> None:
        rng, n = self.rng, self.n
        shares = np.array([s[1] or 0.0 for s in _SCENARIOS])
        minc = 3 if n >= 1000 else (1 if n >= 100 else 0)
        counts = np.maximum(np.round(shares * n).astype(np.int64), minc)
        counts[0] = 0
        if counts.sum() > n:  # tiny days
            counts = np.floor(shares * n).astype(np.int64)
        counts[0] = n - counts.sum()
        scen = np.repeat(np.arange(len(_SCENARIOS)), counts)
        rng.shuffle(scen)
        self.scen = scen
        self.members = {i: np.flatnonzero(scen == i) for i in range(len(_SCENARIOS))}
        self.want_status = np.array([s[2] for s in _SCENARIOS], dtype=np.int8)[scen]
        self.want_cause = np.array([s[3] for s in _SCENARIOS], dtype=np.int8)[scen]

        # unique loan / borrower numbers: installments, loans with nothing due, throwaway (bad rows)
        self.n_extra_loans = max(1, n // 60)
        self.n_throw = 64 + n // 1000
        total = n + self.n_extra_loans + self.n_throw
        pool = np.cumsum(_u(rng, 1, 19, total)) + int(_u(rng, 0, 999, 1)[0])
        pool = pool[rng.permutation(total)]
        self.loan = pool[:n].copy()
        self.extra_loans = pool[n:n + self.n_extra_loans]
        self.throw_loans = pool[n + self.n_extra_loans:]
        self.borrower = (np.cumsum(_u(rng, 1, 9, n)) + 10**7)[rng.permutation(n)]
        self.inst_no = _u(rng, 1, 60, n)
        due = np.exp(rng.normal(np.log(3500.0), 0.45, n)).clip(300, 30000)
        fen = (due * 100).astype(np.int64)
        self.due = np.maximum(np.where(rng.random(n) < 0.3, fen // 100 * 100, fen), 30000)
        self.pgw = _pick(rng, n, _GW_SHARE).astype(np.int8)

        # loans with two installments due on D (only in scenarios that do not depend on bindings)
        self.twin_b = np.zeros(0, np.int64)
        if n >= 400:
            elig_names = ["paid_first_try", "paid_after_retry"] + [s[0] for s in _SCENARIOS if s[0].startswith("failed_")]
            elig = np.concatenate([self.members[_SC[x]] for x in elig_names])
            k = n // 200
            pick = rng.choice(elig, size=2 * k, replace=False)
            a, b = pick[:k], pick[k:]
            self.inst_no[a] = np.minimum(self.inst_no[a], 59)
            self.loan[b] = self.loan[a]
            self.borrower[b] = self.borrower[a]
            self.inst_no[b] = self.inst_no[a] + 1
            self.twin_b = b

    # ---- attempts ------------------------------------------------------------------------
    def _sent_conf(self, k: int):
        req = self.rng.random(k) < 0.25
        return req, np.where(req, CF_CONFIRMED, CF_NOT_REQUIRED)

    def _add_sent(self, inst, gw, kind, sent_sec, amount, *, succ_amt=0, code=-1, code2=-1, created=None):
        k = len(inst)
        if not k:
            return
        req, st = self._sent_conf(k)
        if created is None:
            created = sent_sec - _u(self.rng, 60, 6 * _HOUR, k)
        self.att.add(k, inst=inst, gw=gw, kind=kind, sent=True, sent_sec=sent_sec, created_sec=created,
                     amount=amount, succ_amt=succ_amt, code=code, code2=code2, conf_req=req, conf_status=st)

    def _chain(self, idx, r, *, gw, kind, sent_sec, amount, succ_amt=0, code=-1, code2=-1) -> None:
        """r[i] failed pre-attempts (slots 0..r-1), then the last attempt described by the kwargs."""
        rng = self.rng
        k = len(idx)
        if not k:
            return
        gw = np.broadcast_to(np.asarray(gw, np.int8), (k,))
        last_created = sent_sec - _u(rng, 60, 6 * _HOUR, k)
        tie = (r >= 1) & (rng.random(k) < 0.03)  # same sent_at as the last one, created earlier
        for slot in range(int(r.max(initial=0))):
            sel = r > slot
            m = int(sel.sum())
            pgw = np.where(rng.random(m) < 0.85, gw[sel], _other_gw(rng, gw[sel])).astype(np.int8)
            pkind = np.where(rng.random(m) < 0.9, K_FAIL1, K_NOROW)
            pcode = np.where(pkind == K_FAIL1, _prefail_codes(rng, pgw), -1)
            psent = _slot_time(rng, slot, m)
            is_tie = tie[sel] & (r[sel] == slot + 1)
            psent = np.where(is_tie, sent_sec[sel], psent)
            pcreated = np.where(is_tie, last_created[sel] - _u(rng, 1, 600, m), psent - _u(rng, 60, 6 * _HOUR, m))
            self._add_sent(idx[sel], pgw, pkind, psent, self.due[idx[sel]], code=pcode, created=pcreated)
        self._add_sent(idx, gw, kind, sent_sec, amount, succ_amt=succ_amt, code=code, code2=code2,
                       created=last_created)

    def _extra_unsent(self, idx) -> None:
        """A created-but-unsent, unconfirmed instruction next to sent ones (rule 1 still decides)."""
        k = len(idx)
        self.att.add(k, inst=idx, gw=self.pgw[idx], kind=K_UNSENT, sent=False,
                     created_sec=_u(self.rng, 0, 5 * _HOUR, k), amount=self.due[idx],
                     conf_req=True, conf_status=CF_PENDING)

    def attempts(self) -> None:
        rng, M, due, pgw = self.rng, self.members, self.due, self.pgw

        idx = M[_SC["paid_first_try"]]
        k = len(idx)
        self._chain(idx, np.zeros(k, np.int64), gw=pgw[idx], kind=K_SUCC, sent_sec=_slot_time(rng, 0, k),
                    amount=due[idx], succ_amt=due[idx])

        idx = M[_SC["paid_after_retry"]]
        k = len(idx)
        r = np.where(rng.random(k) < 0.75, 1, 2)
        sent = np.where(r == 1, _slot_time(rng, 1, k), _slot_time(rng, 2, k))
        self._chain(idx, r, gw=pgw[idx], kind=K_SUCC, sent_sec=sent, amount=due[idx], succ_amt=due[idx])

        idx = M[_SC["paid_split_debit"]]
        k = len(idx)
        a = (due[idx] * (0.3 + 0.4 * rng.random(k))).astype(np.int64)
        self._add_sent(idx, pgw[idx], K_SUCC, _slot_time(rng, 0, k), a, succ_amt=a)
        self._add_sent(idx, pgw[idx], K_SUCC, _slot_time(rng, 1, k), due[idx] - a, succ_amt=due[idx] - a)

        idx = M[_SC["overpaid_duplicate_debit"]]
        k = len(idx)
        self._add_sent(idx, pgw[idx], K_SUCC2, _slot_time(rng, 0, k), due[idx], succ_amt=due[idx])

        idx = M[_SC["overpaid_double_collection"]]
        k = len(idx)
        self._add_sent(idx, pgw[idx], K_SUCC, _slot_time(rng, 0, k), due[idx], succ_amt=due[idx])
        g2 = np.where(rng.random(k) < 0.5, pgw[idx], _other_gw(rng, pgw[idx])).astype(np.int8)
        self._add_sent(idx, g2, K_SUCC, _slot_time(rng, 1, k), due[idx], succ_amt=due[idx])

        # a partial SUCCESS and a failed attempt, in either order
        idx = M[_SC["partial_then_failed"]]
        k = len(idx)
        variants = [(C_IB, K_FAIL1), (C_AF, K_FAIL1), (C_OD, K_FAIL1), (C_CU, K_FAIL1), (C_UNC, K_FAIL1),
                    (C_GO, K_FAIL1), (C_NSR, K_NOROW), (C_GO, K_NOROW)]
        v = _pick(rng, k, (0.55, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05))
        vc = np.array([x[0] for x in variants])[v]
        vk = np.array([x[1] for x in variants])[v]
        self.want_cause[idx] = vc
        part = (due[idx] * (0.1 + 0.8 * rng.random(k))).astype(np.int64).clip(1)
        gw = pgw[idx]
        code = np.where(vk == K_FAIL1, _pick_codes(rng, np.where(vk == K_FAIL1, vc, C_IB), gw), -1)
        incident = (vk == K_NOROW) & (vc == C_GO)
        ws, we = _window(gw)
        fail_order_first = (rng.random(k) < 0.3) & (vk == K_FAIL1)
        t0, t1 = _slot_time(rng, 0, k), _slot_time(rng, 1, k)
        t1 = np.where(incident, _u(rng, ws, we, k), t1)
        a_ = ~fail_order_first
        self._add_sent(idx[a_], gw[a_], K_SUCC, t0[a_], due[idx][a_], succ_amt=part[a_])
        self._add_sent(idx[a_], gw[a_], vk[a_], t1[a_], due[idx][a_] - part[a_], code=code[a_])
        b_ = fail_order_first
        self._add_sent(idx[b_], gw[b_], K_FAIL1, t0[b_], due[idx][b_], code=code[b_])
        self._add_sent(idx[b_], gw[b_], K_SUCC, t1[b_], due[idx][b_], succ_amt=part[b_])

        # rule 4: every sent attempt succeeded, yet settled < amount_due
        idx = M[_SC["partial_all_succeeded"]]
        k = len(idx)
        two = rng.random(k) < 0.2
        part = (due[idx] * (0.1 + 0.6 * rng.random(k))).astype(np.int64).clip(1)
        part2 = ((due[idx] - part) * (0.1 + 0.8 * rng.random(k))).astype(np.int64).clip(1)
        one = ~two
        self._add_sent(idx[one], pgw[idx][one], K_SUCC, _slot_time(rng, 0, int(one.sum())), due[idx][one],
                       succ_amt=part[one])
        i2 = idx[two]
        self._add_sent(i2, pgw[i2], K_SUCC, _slot_time(rng, 0, len(i2)), part[two], succ_amt=part[two])
        self._add_sent(i2, pgw[i2], K_SUCC, _slot_time(rng, 1, len(i2)), part2[two], succ_amt=part2[two])

        # failed by a response code
        for name in ("failed_insufficient_balance", "failed_account_frozen", "failed_account_closed",
                     "failed_card_unbound", "failed_instruction_not_confirmed", "failed_gateway_outage_code",
                     "failed_other_decline", "failed_unknown_code"):
            idx = M[_SC[name]]
            k = len(idx)
            cause = _SCENARIOS[_SC[name]][3]
            gw = pgw[idx]
            if cause == C_INC:  # no iso20022 code means "not confirmed"
                gw = np.where(gw == 1, np.where(rng.random(k) < 0.5, 0, 2), gw).astype(np.int8)
            r = _pick(rng, k, (0.7, 0.2, 0.1))
            multi = rng.random(k) < 0.05  # two FAILED rows; the later one decides
            code = _pick_codes(rng, cause, gw)
            code2 = np.where(multi, _prefail_codes(rng, gw), -1)
            sent = np.choose(r, [_slot_time(rng, j, k) for j in range(3)])
            self._chain(idx, r, gw=gw, kind=np.where(multi, K_FAIL2, K_FAIL1), sent_sec=sent,
                        amount=due[idx], code=code, code2=code2)
            self._extra_unsent(idx[rng.random(k) < 0.03])

        # sent, no settlement row, inside an incident window of its gateway
        idx = M[_SC["sent_no_row_in_incident"]]
        k = len(idx)
        gw = pgw[idx]
        ws, we = _window(gw)
        b = rng.random(k)
        sent = np.where(b < 0.1, ws, np.where(b < 0.2, we, _u(rng, ws, we, k)))
        self._chain(idx, (rng.random(k) < 0.2).astype(np.int64), gw=gw, kind=K_NOROW, sent_sec=sent,
                    amount=due[idx])

        # sent, no settlement row, no incident of its gateway (some inside another gateway's window)
        idx = M[_SC["sent_no_row"]]
        k = len(idx)
        gw = pgw[idx]
        r = _pick(rng, k, (0.7, 0.2, 0.1))
        sent = np.choose(r, [_slot_time(rng, j, k) for j in range(3)])
        ows, owe = _window(_other_gw(rng, gw))
        move = (r <= 1) & (rng.random(k) < 0.15)
        sent = np.where(move, _u(rng, ows, owe, k), sent)
        self._chain(idx, r, gw=gw, kind=K_NOROW, sent_sec=sent, amount=due[idx])

        # rule 2: instructions created but none sent
        self.r2_T = np.zeros(self.n, np.int64)
        self.r2_early = np.full(self.n, np.iinfo(np.int64).min)
        for name in ("unsent_not_confirmed", "unsent_card_unbound", "unsent_not_instructed"):
            idx = M[_SC[name]]
            k = len(idx)
            T = _u(rng, 1 * _HOUR, 5 * _HOUR, k)
            two = rng.random(k) < 0.15
            early = T - _u(rng, 1800, 3 * _HOUR, k)
            self.r2_T[idx] = T
            self.r2_early[idx[two]] = early[two]
            creq_l = rng.random(k) < 0.5
            cst_l = np.where(creq_l, CF_CONFIRMED, CF_NOT_REQUIRED)
            creq_e = rng.random(k) < 0.5
            cst_e = np.where(creq_e, CF_CONFIRMED, CF_NOT_REQUIRED)
            if name == "unsent_not_confirmed":
                bad = np.array([CF_PENDING, CF_EXPIRED, CF_FAILED])[_u(rng, 0, 2, k)]
                on_early = two & (rng.random(k) < 0.5)  # "one of them", not necessarily the latest
                creq_l = np.where(on_early, creq_l, True)
                cst_l = np.where(on_early, cst_l, bad)
                creq_e = np.where(on_early, True, creq_e)
                cst_e = np.where(on_early, bad, cst_e)
            elif name == "unsent_not_instructed":
                odd = rng.random(k) < 0.1  # confirm_required=false: the status does not matter
                creq_l = np.where(odd, False, creq_l)
                cst_l = np.where(odd, CF_PENDING, cst_l)
            gw = pgw[idx]
            self.att.add(k, inst=idx, gw=gw, kind=K_UNSENT, sent=False, created_sec=T, amount=due[idx],
                         conf_req=creq_l, conf_status=cst_l)
            self.att.add(int(two.sum()), inst=idx[two], gw=gw[two], kind=K_UNSENT, sent=False,
                         created_sec=early[two], amount=due[idx][two], conf_req=creq_e[two],
                         conf_status=cst_e[two])

        A = self.att.build()
        # instruction ids ascend with created_at (merchant order numbers); ties broken at random
        order = np.lexsort((rng.random(len(A["inst"])), A["created_sec"]))
        seq = np.empty(len(order), np.int64)
        seq[order] = np.cumsum(_u(rng, 1, 29, len(order))) + 10**9
        A["seq"] = seq
        self.A = A

    # ---- bindings ------------------------------------------------------------------------
    def _ended_status(self, k):
        return np.array([B_UNBOUND, B_REVOKED, B_EXPIRED])[_u(self.rng, 0, 2, k)]

    def _add_ended(self, loans, end, bound=None):
        k = len(loans)
        if bound is None:
            bound = end - _u(self.rng, _DAY, 700 * _DAY, k)
        self.bind.add(k, loan=loans, status=self._ended_status(k), bound=bound, unbound=end, has_unbound=True)

    def _add_active(self, loans, bound):
        self.bind.add(len(loans), loan=loans, status=B_ACTIVE, bound=bound)

    def _add_history(self, loans, before, p):
        """With probability p, 1-2 older ended bindings before time `before`."""
        rng = self.rng
        sel = rng.random(len(loans)) < p
        loans, before = loans[sel], np.asarray(before)[sel] if np.ndim(before) else np.full(sel.sum(), before)
        h = np.where(rng.random(len(loans)) < 0.75, 1, 2)
        end = before - _u(rng, _HOUR, 200 * _DAY, len(loans))
        for j in range(2):
            m = h > j
            bound = end - _u(rng, _DAY, 700 * _DAY, len(loans))
            self._add_ended(loans[m], end[m], bound[m])
            end = bound - _u(rng, _HOUR, 30 * _DAY, len(loans))

    def _normal(self, loans):
        k = len(loans)
        bound = -_u(self.rng, _DAY, 1500 * _DAY, k)
        self._add_active(loans, bound)
        self._add_history(loans, bound, 0.15)

    def bindings(self) -> None:
        rng, M, n = self.rng, self.members, self.n
        r23 = {_SC[x] for x in ("unsent_not_confirmed", "unsent_card_unbound", "unsent_not_instructed",
                                "no_instruction_card_unbound", "no_instruction_not_instructed")}
        normal = np.ones(n, bool)
        normal[self.twin_b] = False
        for s in r23:
            normal[M[s]] = False
        self._normal(self.loan[normal])
        # loans with nothing due on D
        ex = self.extra_loans
        closed = rng.random(len(ex)) < 0.4
        self._normal(ex[~closed])
        self._add_ended(ex[closed], -_u(rng, _HOUR, 300 * _DAY, int(closed.sum())))

        # rule 3: at D 00:00:00
        idx = M[_SC["no_instruction_card_unbound"]]
        v = _pick(rng, len(idx), (0.25, 0.45, 0.10, 0.20))
        L = self.loan[idx]
        # v0: never bound
        m = v == 1  # everything ended before D
        end = -_u(rng, _HOUR, 300 * _DAY, int(m.sum()))
        self._add_ended(L[m], end)
        self._add_history(L[m], end - 800 * _DAY, 0.3)
        m = v == 2  # ended exactly at D 00:00:00 (not active: unbound_at must be > t)
        self._add_ended(L[m], np.zeros(int(m.sum()), np.int64))
        m = v == 3  # ended before D, re-bound during D (after midnight)
        self._add_ended(L[m], -_u(rng, _HOUR, 300 * _DAY, int(m.sum())))
        self._add_active(L[m], _u(rng, _HOUR, 20 * _HOUR, int(m.sum())))

        idx = M[_SC["no_instruction_not_instructed"]]
        v = _pick(rng, len(idx), (0.6, 0.1, 0.3))
        L = self.loan[idx]
        self._normal(L[v == 0])
        m = v == 1  # bound exactly at D 00:00:00 (active: bound_at <= t)
        self._add_active(L[m], np.zeros(int(m.sum()), np.int64))
        self._add_history(L[m], np.zeros(int(m.sum()), np.int64), 0.5)
        m = v == 2  # UNBOUND/REVOKED/EXPIRED later on D: still active at midnight
        self._add_ended(L[m], _u(rng, 1, 20 * _HOUR, int(m.sum())))

        # rule 2: at created_at of the latest unsent instruction (T)
        idx = M[_SC["unsent_not_confirmed"]]
        nob = rng.random(len(idx)) < 0.2
        self._normal(self.loan[idx[~nob]])
        self._add_ended(self.loan[idx[nob]], self.r2_T[idx[nob]] - _u(rng, _HOUR, 100 * _DAY, int(nob.sum())))

        idx = M[_SC["unsent_card_unbound"]]
        L, T, E = self.loan[idx], self.r2_T[idx], self.r2_early[idx]
        two = E > np.iinfo(np.int64).min
        v = np.where(two, 4, _pick(rng, len(idx), (0.4, 0.15, 0.15, 0.3)))
        m = v == 0
        self._add_ended(L[m], T[m] - _u(rng, 60, 6 * _HOUR, int(m.sum())))
        m = v == 1  # ended exactly at T
        self._add_ended(L[m], T[m])
        # v2: never bound
        m = v == 3  # ended, then re-bound after T
        self._add_ended(L[m], T[m] - _u(rng, 60, 100 * _DAY, int(m.sum())))
        self._add_active(L[m], T[m] + _u(rng, 60, 10 * _HOUR, int(m.sum())))
        m = v == 4  # active when the earlier instruction was created, not at the latest
        self._add_ended(L[m], _u(rng, E[m] + 1, T[m], int(m.sum())), E[m] - _u(rng, _DAY, 700 * _DAY, int(m.sum())))

        idx = M[_SC["unsent_not_instructed"]]
        L, T = self.loan[idx], self.r2_T[idx]
        v = _pick(rng, len(idx), (0.6, 0.2, 0.2))
        self._normal(L[v == 0])
        m = v == 1  # bound on D after midnight, at or before T (rule 3's midnight would say unbound)
        bnd = np.where(rng.random(int(m.sum())) < 0.2, T[m], _u(rng, 1, T[m], int(m.sum())))
        self._add_active(L[m], bnd)
        self._add_history(L[m], np.zeros(int(m.sum()), np.int64), 0.5)
        m = v == 2  # ended after T
        self._add_ended(L[m], T[m] + _u(rng, 1, 10 * _HOUR, int(m.sum())))

        B = self.bind.build()
        order = np.lexsort((rng.random(len(B["loan"])), B["bound"]))
        seq = np.empty(len(order), np.int64)
        seq[order] = np.cumsum(_u(rng, 1, 7, len(order))) + 10**6
        B["seq"] = seq
        self.B = B

    # ---- settlement rows -----------------------------------------------------------------
    def settlements(self) -> None:
        rng, A = self.rng, self.A
        nrows = _ROWS_OF_KIND[A["kind"]]
        att = np.repeat(np.arange(len(nrows)), nrows)
        first = np.ones(len(att), bool)
        first[1:] = att[1:] != att[:-1]
        sub = (~first).astype(np.int64)
        kind = A["kind"][att]
        success = (kind == K_SUCC) | (kind == K_SUCC2)
        gw = A["gw"][att]
        base = A["sent_sec"] + _u(rng, 1, 900, len(nrows))
        tt = base[att] + sub * _u(rng, 60, 3600, len(att))
        code = np.where(success, np.where(_GW_SCHEME[gw] == 0, _CODE_IX["00"], _CODE_IX["ACSC"]),
                        np.where((kind == K_FAIL2) & (sub == 0), A["code2"][att], A["code"][att]))
        amount = np.where(success, A["succ_amt"][att], A["amount"][att])
        self.R = {"att": att, "sub": sub, "gw": gw, "success": success, "txn_sec": tt, "code": code.astype(np.int64),
                  "amount": amount, "seq": A["seq"][att], "orphan": np.zeros(len(att), bool)}
        # orphans: SUCCESS (and a few FAILED) rows whose instruction_id matches nothing
        n_orph_s = max(2, self.n // 3000)
        n_orph_f = max(1, self.n // 10000)
        parts = []
        for g in range(3):
            for succ, k in ((True, n_orph_s), (False, n_orph_f)):
                gg = np.full(k, g, np.int8)
                parts.append({
                    "att": np.full(k, -1), "sub": np.zeros(k, np.int64), "gw": gg, "success": np.full(k, succ),
                    "txn_sec": _u(rng, 6 * _HOUR, 22 * _HOUR, k),
                    "code": (np.full(k, _CODE_IX[_SUCCESS_CODE[_SCHEMES[_GW_SCHEME[g]]]]) if succ
                             else _prefail_codes(rng, gg).astype(np.int64)),
                    "amount": _u(rng, 30000, 900000, k),
                    "seq": 9 * 10**11 + g * 10**10 + int(succ) * 10**9 + np.cumsum(_u(rng, 1, 999, k)),
                    "orphan": np.ones(k, bool)})
        for key in self.R:
            self.R[key] = np.concatenate([self.R[key]] + [p[key] for p in parts])

    # ---- truth: section 3 evaluated over the generated rows --------------------------------
    def evaluate(self, missing: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, A, R, B = self.n, self.A, self.R, self.B
        arrived_gw = np.array([g != missing for g in range(3)])
        # settlement rows joined to attempts through instruction_id (only arrived files)
        real = (R["att"] >= 0) & arrived_gw[R["gw"]]
        att = R["att"][real]
        succ = R["success"][real]
        n_att = len(A["inst"])
        succ_rows = np.bincount(att[succ], minlength=n_att)
        succ_fen = np.bincount(att[succ], weights=R["amount"][real][succ], minlength=n_att).astype(np.int64)
        settled = np.bincount(A["inst"], weights=succ_fen, minlength=n).astype(np.int64)
        # the latest FAILED row of each attempt (by txn_time)
        fail = ~succ
        f_att, f_t, f_code = att[fail], R["txn_sec"][real][fail], R["code"][real][fail]
        o = np.lexsort((f_t, f_att))
        last = np.ones(len(o), bool)
        last[:-1] = f_att[o][1:] != f_att[o][:-1]
        att_code = np.full(n_att, -1, np.int64)
        att_code[f_att[o][last]] = f_code[o][last]

        sent = A["sent"]
        not_ok = sent & (succ_rows == 0)
        cand = np.flatnonzero(not_ok)
        o = np.lexsort((A["seq"][cand], A["sent_sec"][cand], A["inst"][cand]))
        cand = cand[o]
        lastc = np.ones(len(cand), bool)
        lastc[:-1] = A["inst"][cand][1:] != A["inst"][cand][:-1]
        dec = cand[lastc]
        dinst = A["inst"][dec]
        dgw = A["gw"][dec].astype(np.int64)
        dcode = att_code[dec]
        in_inc = np.zeros(len(dec), bool)
        for g, s, e, _ in _INCIDENTS:
            in_inc |= (dgw == g) & (A["sent_sec"][dec] >= s) & (A["sent_sec"][dec] <= e)
        dcause = np.where(~arrived_gw[dgw], C_SP,
                          np.where(dcode >= 0, _CAUSE_OF[_GW_SCHEME[dgw], dcode.clip(0)],
                                   np.where(in_inc, C_GO, C_NSR)))
        cause = np.full(n, C_UNC, np.int64)  # rule 4 unless something earlier applies
        cause[dinst] = dcause
        has_sent = np.bincount(A["inst"], weights=sent, minlength=n) > 0
        has_instr = np.bincount(A["inst"], minlength=n) > 0

        # rule 2
        uns = np.flatnonzero(~sent & ~has_sent[A["inst"]])
        unconf = A["conf_req"][uns] & (A["conf_status"][uns] != CF_CONFIRMED)
        r2_unconf = np.bincount(A["inst"][uns], weights=unconf, minlength=n) > 0
        o = np.lexsort((A["seq"][uns], A["created_sec"][uns], A["inst"][uns]))
        u = uns[o]
        lastu = np.ones(len(u), bool)
        lastu[:-1] = A["inst"][u][1:] != A["inst"][u][:-1]
        t_at = np.zeros(n, np.int64)
        t_at[A["inst"][u[lastu]]] = A["created_sec"][u[lastu]]
        need = np.flatnonzero(~has_sent & ~(has_instr & r2_unconf))  # rule 3 uses t = 0
        q = pd.DataFrame({"loan": self.loan[need], "q": need, "t": t_at[need]})
        b = pd.DataFrame({"loan": B["loan"], "bound": B["bound"], "unbound": B["unbound"], "hu": B["has_unbound"]})
        j = q.merge(b, on="loan", how="inner")
        j = j[(j["bound"] <= j["t"]) & (~j["hu"] | (j["unbound"] > j["t"]))]
        active = np.zeros(n, bool)
        active[j["q"].to_numpy()] = True
        cause[~has_sent] = np.where(has_instr & r2_unconf, C_INC, np.where(active, C_NI, C_CU))[~has_sent]

        due = self.due
        status = np.where(settled > due, S_OVERPAID, np.where(settled == due, S_PAID, np.where(
            cause == C_SP, S_PENDING, np.where(settled > 0, S_PARTIAL, S_UNPAID))))
        cause = np.where(status <= S_PAID, C_NONE, cause)
        return status.astype(np.int8), cause.astype(np.int8), settled


# --------------------------------------------------------------------------------------------
# CSV writing
# --------------------------------------------------------------------------------------------

_NEEDS_QUOTE = '[",\r\n]'
_TEXT_COLUMNS = frozenset({"response_msg", "description"})  # the only generated values that may need quotes


def _quote(col: pa.Array) -> pa.Array:
    needs = pc.fill_null(pc.match_substring_regex(col, _NEEDS_QUOTE), False)
    if not pc.any(needs).as_py():
        return col
    q = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, q, col)


def _quote_every(col: pa.Array) -> pa.Array:
    """Every value in quotes, as exports that quote all fields write them."""
    return pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")


def _q1(v: str, every: bool = False) -> str:
    return '"' + v.replace('"', '""') + '"' if every or any(ch in v for ch in '",\r\n') else v


def _rows(cols: Sequence[pa.Array], eol: str) -> tuple[memoryview, np.ndarray]:
    """Join (already quoted) string columns into CSV records: (bytes of all records, record offsets)."""
    n = len(cols[0])
    if not n:
        return memoryview(b""), np.zeros(1, np.int64)
    rows = pc.binary_join_element_wise(*cols, ",", null_handling="replace", null_replacement="")
    rows = pc.binary_join_element_wise(rows, eol, "")
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    off_t = np.int64 if pa.types.is_large_string(rows.type) else np.int32
    bufs = rows.buffers()
    off = np.frombuffer(bufs[1], dtype=off_t, count=n + 1, offset=rows.offset * np.dtype(off_t).itemsize).astype(np.int64)
    return memoryview(bufs[2]), off


def _csv_bytes(header: Sequence[str], cols: Sequence[pa.Array], eol: str = "\n") -> bytes:
    """CSV of columns whose values never need quoting (ids, amounts, enum values)."""
    data, off = _rows(cols, eol)
    return (",".join(header) + eol).encode() + bytes(data[off[0]:off[-1]])


@dataclasses.dataclass
class _File:
    name: str
    columns: list[str]                    # contract column names, in writing order
    data: dict[str, pa.Array]             # valid rows
    bad: list[tuple[dict[str, str], str, str]] = dataclasses.field(default_factory=list)  # row, column, reason
    dups: list[int] = dataclasses.field(default_factory=list)  # valid row indexes written twice
    header: list[str] | None = None       # written header (variations), default = columns
    eol: str = "\n"
    encoding: str = "utf-8"
    bom: bool = False
    quote_every: bool = False             # every field (and the header) in quotes

    def write(self, day_dir: pathlib.Path, rng) -> tuple[str, int, list[dict]]:
        """Write the file (valid rows in order, bad/duplicate rows at random places).

        Returns the sha256 of the written bytes, the number of data records and the reject truth.
        """
        cols = [_quote_every(self.data[c]) if self.quote_every else
                _quote(self.data[c]) if c in _TEXT_COLUMNS else self.data[c] for c in self.columns]
        n_valid = len(cols[0])
        data, off = _rows(cols, self.eol)
        # extra records: bad rows (rendered here) and exact copies of valid records
        extra = [(",".join(_q1(row.get(c, ""), self.quote_every) for c in self.columns) + self.eol).encode()
                 for row, _, _ in self.bad]
        extra += [bytes(data[off[i]:off[i + 1]]) for i in self.dups]
        n_extra = len(extra)
        pos = np.sort(_u(rng, 0, n_valid, n_extra))        # inserted before valid record pos[j]
        which = rng.permutation(n_extra)                    # extra record placed at the j-th insertion point
        header = ",".join(_q1(h, self.quote_every) for h in (self.header or self.columns))
        chunks: list = [(header + self.eol).encode()]
        prev = 0
        for j in range(n_extra):
            chunks.append(data[off[prev]:off[pos[j]]])
            chunks.append(extra[which[j]])
            prev = pos[j]
        chunks.append(data[off[prev]:off[n_valid]])
        if self.encoding != "utf-8":
            chunks = [b"".join(chunks).decode("utf-8").encode(self.encoding)]
        if self.bom:
            chunks.insert(0, b"\xef\xbb\xbf")
        h = hashlib.sha256()
        with open(day_dir / self.name, "wb") as fh:
            for ch in chunks:
                h.update(ch)
                fh.write(ch)
        # reject truth: physical line (header = line 1) and data record (1-based) of each bad row
        rejects = []
        if self.bad:
            nl_valid = np.zeros(n_valid + 1, np.int64)   # newlines inside records 0..i-1
            for c, col in zip(self.columns, cols):
                if c in _TEXT_COLUMNS:
                    nl_valid[1:] += np.cumsum(pc.fill_null(pc.count_substring(col, "\n"), 0).to_numpy(zero_copy_only=False))
            extra_nl = [e.count(b"\n") - 1 for e in extra]
            nl_extra_before = 0
            for j in range(n_extra):
                rec = int(pos[j]) + j                     # 0-based data record
                b_i = int(which[j])
                if b_i < len(self.bad):
                    row, column, reason = self.bad[b_i]
                    rejects.append({"file": self.name, "line": 2 + rec + int(nl_valid[pos[j]]) + nl_extra_before,
                                    "record": rec + 1, "column": column, "value": row.get(column, ""),
                                    "reason": reason})
                nl_extra_before += extra_nl[b_i]
        return h.hexdigest(), n_valid + n_extra, rejects


def _n_bad(rows: int) -> int:
    return min(max(3, rows // 5000), rows // 200)


def _dup_rows(rng, rows: int, candidates: np.ndarray | None = None) -> list[int]:
    """Valid records written twice, exactly (a sender resending part of its export): about one
    in a thousand, at least one."""
    pool = np.arange(rows) if candidates is None else candidates
    if not len(pool):
        return []
    k = min(len(pool), max(1, rows // 1000))
    return sorted(int(i) for i in pool[rng.choice(len(pool), size=k, replace=False)])


def _take_bad(kinds: list, budget: int, rng) -> list:
    """Cycle through kinds in a random order (a kind is one row, or a pair for a duplicate key) within budget rows."""
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    out, used, i = [], 0, 0
    while kinds and used < budget and i < 10 * budget + len(kinds):
        k = kinds[i % len(kinds)]
        i += 1
        size = 2 if isinstance(k, list) else 1
        if used + size <= budget:
            out.append(k)
            used += size
    return out


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------

def generate_day(business_date: dt.date, installments: int, out_dir: pathlib.Path, seed: int = 0,
                 bad_rows: bool = True, missing_gateway: str | None = None,
                 format_variations: bool = True) -> SynthSummary:
    """Write ``out_dir/<D>/`` (inputs + ``_truth*.csv``) and return counts.

    bad_rows: plant a few rows per file that break one rule each (about one in 5,000), and write
        about one valid row in 1,000 twice, exactly (at least one per file), which must collapse;
        they never touch a truth installment.
    missing_gateway: that gateway's settlement .csv/.ctl are not written; the truth becomes
        ``pending / settlement_pending`` where its deciding attempt is on that gateway.
    format_variations: the mess real files have, within the contract's tolerances: UNIONPAY file
        in gb18030 with codes padded with spaces; CNAPS_DD file with a UTF-8 BOM, CRLF, another
        column order, ISO 8601 txn_time with offset, codes in lower case and statuses capitalised;
        LIANLIAN file with a UTF-8 BOM, every field quoted, the header in upper case with an extra
        column, quoted messages spanning two lines, padded and lower-case codes, and (with
        bad_rows) no bad rows, only repeated ones; installments.csv and bindings.csv with a UTF-8
        BOM, bindings.csv in another column order, an extra column in instructions.csv, booleans
        in mixed case. Messages are Chinese with commas and quotes in every settlement file.
    """
    t_start = time.perf_counter()
    if installments < 1:
        raise ValueError("installments must be >= 1")
    if missing_gateway is not None and missing_gateway not in GATEWAYS:
        raise ValueError(f"missing_gateway must be one of {GATEWAYS}")
    D = business_date
    ds = D.isoformat()
    dprefix = D.strftime("%Y%m%d")
    day_dir = pathlib.Path(out_dir) / ds
    day_dir.mkdir(parents=True, exist_ok=True)
    for stale in day_dir.glob("settlement_*"):
        stale.unlink()
    missing = GATEWAYS.index(missing_gateway) if missing_gateway else None

    g = _Day(D, installments, seed)
    g.plan()
    g.attempts()
    g.bindings()
    g.settlements()
    rng = g.rng
    n = installments
    status, cause, settled = g.evaluate(missing)
    if missing is None:
        bad = np.flatnonzero((status != g.want_status) | (cause != g.want_cause))
        if len(bad):
            i = int(bad[0])
            raise AssertionError(
                f"synth bug: {len(bad)} installments do not reach their intended outcome, e.g. scenario "
                f"{_SCENARIOS[g.scen[i]][0]}: wanted {_STATUSES[g.want_status[i]]}/{_CAUSES[g.want_cause[i]]}, "
                f"got {_STATUSES[status[i]]}/{_CAUSES[cause[i]]}")

    rows: dict[str, int] = {}
    bad_counts: dict[str, int] = {}
    dup_counts: dict[str, int] = {}
    rejects: list[dict] = []

    def emit(f: _File) -> str:
        # each file gets its own stream, so leaving one file out does not change the others
        frng = np.random.default_rng(np.random.PCG64([seed, D.toordinal(), n, zlib.crc32(f.name.encode())]))
        digest, records, rej = f.write(day_dir, frng)
        rows[f.name] = records
        bad_counts[f.name] = len(f.bad)
        dup_counts[f.name] = len(f.dups)
        rejects.extend(rej)
        return digest

    loan_s = _zpad(g.loan, 10)
    throw_s = [f"{x:010d}" for x in g.throw_loans]
    throw_i = iter(range(len(throw_s)))

    # ---- installments.csv --------------------------------------------------------------
    o = np.lexsort((g.inst_no, g.loan))
    inst_cols = ["loan_id", "installment_no", "borrower_id", "due_date", "amount_due", "currency"]
    f = _File("installments.csv", inst_cols, {
        "loan_id": pc.take(loan_s, pa.array(o)), "installment_no": _s(g.inst_no[o]),
        "borrower_id": _zpad(g.borrower[o], 12), "due_date": _lut([ds], np.zeros(n, np.int64)),
        "amount_due": _amount(g.due[o]), "currency": _lut(["CNY"], np.zeros(n, np.int64))},
        bom=format_variations)
    if bad_rows:
        def irow(**kw):
            r = {"loan_id": throw_s[next(throw_i)], "installment_no": str(int(_u(rng, 1, 60, 1)[0])),
                 "borrower_id": f"{int(_u(rng, 1, 10**9, 1)[0]):012d}", "due_date": ds,
                 "amount_due": _fmt_amount(int(_u(rng, 30000, 900000, 1)[0])), "currency": "CNY"}
            return r | kw
        kinds = [("installment_no", {"installment_no": "0"}, "installment_no must be >= 1"),
                 ("amount_due", {"amount_due": "12.345"}, "more than two decimals"),
                 ("amount_due", {"amount_due": "0.00"}, "amount must be > 0"),
                 ("due_date", {"due_date": (D + dt.timedelta(days=1)).isoformat()}, "due_date is not D"),
                 ("currency", {"currency": "USD"}, "currency must be CNY"),
                 ("loan_id", {"loan_id": ""}, "empty loan_id"),
                 ("amount_due", {"amount_due": "-300.00"}, "negative amount"),
                 ("installment_no", {"installment_no": "abc"}, "installment_no not an integer"),
                 ("borrower_id", {"borrower_id": ""}, "empty borrower_id"),
                 ("amount_due", {"amount_due": "1,234.00"}, "amount with grouping separator"),
                 ["dupkey"]]
        for k in _take_bad(kinds, _n_bad(n), rng):
            if isinstance(k, list):
                r1 = irow()
                r2 = r1 | {"amount_due": _fmt_amount(int(_u(rng, 30000, 900000, 1)[0]) + 1)}
                key = "loan_id/installment_no"
                for r in (r1, r2):
                    r[key] = f"{r['loan_id']}/{r['installment_no']}"  # the value reported for the composite key
                    f.bad.append((r, key, "same key, different values"))
            else:
                f.bad.append((irow(**k[1]), k[0], k[2]))
        f.dups = _dup_rows(rng, n)
    emit(f)

    # ---- bindings.csv --------------------------------------------------------------------
    B = g.B
    nb = len(B["loan"])
    o = np.argsort(B["seq"])
    bin_ix = _u(rng, 0, len(_BINS) - 1, nb)
    card = pc.binary_join_element_wise(_lut([b[0] for b in _BINS], bin_ix), "******",
                                       _zpad(_u(rng, 0, 9999, nb), 4), "")
    card = pc.if_else(pa.array(rng.random(nb) < 0.03), pa.scalar("", pa.string()), card)
    bank = pc.if_else(pa.array(rng.random(nb) < 0.05), pa.scalar("", pa.string()), _lut([b[1] for b in _BINS], bin_ix))
    bind_cols = ["binding_id", "loan_id", "account_token", "card_no_masked", "bank_code", "status", "bound_at", "unbound_at"]
    opa = pa.array(o)
    bdata = {"binding_id": _zpad(B["seq"][o], 16), "loan_id": _zpad(B["loan"][o], 10),
             "account_token": _zpad(_u(rng, 0, 10**17, nb), 18, "tok"), "card_no_masked": pc.take(card, opa),
             "bank_code": pc.take(bank, opa), "status": _lut(BINDING_STATUSES, B["status"][o]),
             "bound_at": _ts(D, B["bound"][o]), "unbound_at": _ts(D, B["unbound"][o], mask=~B["has_unbound"][o])}
    f = _File("bindings.csv", bind_cols, bdata,
              header=(["loan_id", "binding_id", "status", "bound_at", "unbound_at", "account_token",
                       "card_no_masked", "bank_code"] if format_variations else None),
              bom=format_variations)
    if format_variations:
        f.columns = f.header
    if bad_rows:
        bseq = iter(range(int(B["seq"].max(initial=10**6)) + 1000, 10**16))

        def brow(**kw):
            r = {"binding_id": f"{next(bseq):016d}", "loan_id": throw_s[next(throw_i)],
                 "account_token": f"tok{int(_u(rng, 0, 10**17, 1)[0]):018d}", "card_no_masked": "622202******0042",
                 "bank_code": "ICBC", "status": "ACTIVE", "bound_at": _ts1(D, -400 * _DAY + 3723), "unbound_at": ""}
            return r | kw
        kinds = [("status", {"status": "PENDING"}, "unknown binding status"),
                 ("unbound_at", {"status": "UNBOUND", "unbound_at": ""}, "unbound_at required unless ACTIVE"),
                 ("bound_at", {"bound_at": f"{D.year}-02-30 10:00:00"}, "invalid timestamp"),
                 ("account_token", {"account_token": ""}, "empty account_token"),
                 ("binding_id", {"binding_id": ""}, "empty binding_id"),
                 ("status", {"status": ""}, "empty status"),
                 ["dupkey"]]
        for k in _take_bad(kinds, _n_bad(nb), rng):
            if isinstance(k, list):
                r1 = brow()
                r2 = r1 | {"account_token": r1["account_token"] + "9"}
                f.bad += [(r1, "binding_id", "same key, different values"), (r2, "binding_id", "same key, different values")]
            else:
                f.bad.append((brow(**k[1]), k[0], k[2]))
        f.dups = _dup_rows(rng, nb)
    emit(f)

    # ---- instructions.csv ---------------------------------------------------------------
    A = g.A
    na = len(A["inst"])
    o = np.argsort(A["seq"])
    opa = pa.array(o)
    ai = A["inst"][o]
    conf_req = A["conf_req"][o]
    creq_s = _lut(["false", "true"], conf_req.astype(np.int64))
    if format_variations:  # booleans are case-insensitive
        creq_s = pc.if_else(pa.array(rng.random(na) < 0.01), _lut(["FALSE", "True"], conf_req.astype(np.int64)), creq_s)
    ins_cols = ["instruction_id", "loan_id", "installment_no", "gateway", "amount", "created_at",
                "confirm_required", "confirm_status", "sent_at"]
    idata = {"instruction_id": _zpad(A["seq"][o], 12, dprefix), "loan_id": pc.take(loan_s, pa.array(ai)),
             "installment_no": _s(g.inst_no[ai]), "gateway": _lut(GATEWAYS, A["gw"][o]),
             "amount": _amount(A["amount"][o]), "created_at": _ts(D, A["created_sec"][o]),
             "confirm_required": creq_s, "confirm_status": _lut(CONFIRM_STATUSES, A["conf_status"][o]),
             "sent_at": _ts(D, A["sent_sec"][o], mask=~A["sent"][o])}
    if format_variations:
        ins_cols = ins_cols + ["batch_no"]
        idata["batch_no"] = _zpad(A["created_sec"][o] // 3600 + 100, 4, "B" + dprefix)
    f = _File("instructions.csv", ins_cols, idata)
    if bad_rows:
        iseq = iter(range(8 * 10**11, 9 * 10**11))

        def xrow(**kw):
            r = {"instruction_id": f"{dprefix}{next(iseq):012d}", "loan_id": throw_s[next(throw_i)],
                 "installment_no": "7", "gateway": GATEWAYS[int(_u(rng, 0, 2, 1)[0])], "amount": "2345.60",
                 "created_at": _ts1(D, 5 * _HOUR), "confirm_required": "false", "confirm_status": "NOT_REQUIRED",
                 "sent_at": _ts1(D, 7 * _HOUR), "batch_no": "B" + dprefix + "0000"}
            return r | kw
        kinds = [("amount", {"amount": "0"}, "amount must be > 0"),
                 ("amount", {"amount": "12.3.4"}, "not an amount"),
                 ("installment_no", {"installment_no": "0"}, "installment_no must be >= 1"),
                 ("confirm_status", {"confirm_status": "MAYBE"}, "unknown confirm_status"),
                 ("confirm_required", {"confirm_required": "yes"}, "not a boolean"),
                 ("created_at", {"created_at": "yesterday"}, "invalid timestamp"),
                 ("sent_at", {"sent_at": f"{ds} 25:00:00"}, "invalid timestamp"),
                 ("instruction_id", {"instruction_id": ""}, "empty instruction_id"),
                 ("loan_id", {"loan_id": ""}, "empty loan_id"),
                 ["dupkey"]]
        for k in _take_bad(kinds, _n_bad(na), rng):
            if isinstance(k, list):
                r1 = xrow()
                r2 = r1 | {"amount": "2345.61"}
                f.bad += [(r1, "instruction_id", "same key, different values"),
                          (r2, "instruction_id", "same key, different values")]
            else:
                f.bad.append((xrow(**k[1]), k[0], k[2]))
        f.dups = _dup_rows(rng, na)
    emit(f)

    # ---- settlement files ----------------------------------------------------------------
    R = g.R
    sx_rows: list[pd.DataFrame] = []
    n_orphans = n_dupdebits = 0
    for gi, gname in enumerate(GATEWAYS):
        scheme = GATEWAY_SCHEME[gname]
        sel = np.flatnonzero(R["gw"] == gi)
        sel = sel[np.lexsort((R["sub"][sel], R["seq"][sel], R["txn_sec"][sel]))]
        k = len(sel)
        tseq = np.cumsum(_u(rng, 1, 4, k)) + 10**5
        if gname == "UNIONPAY":
            fmt_txn = lambda x: _zpad(x, 12)  # noqa: E731
            txn_fmt1 = lambda x: f"{x:012d}"  # noqa: E731
        elif gname == "CNAPS_DD":
            fmt_txn = lambda x: _zpad(x, 10, "CN" + dprefix)  # noqa: E731
            txn_fmt1 = lambda x: f"CN{dprefix}{x:010d}"  # noqa: E731
        else:
            fmt_txn = lambda x: _zpad(x, 18, "LL")  # noqa: E731
            txn_fmt1 = lambda x: f"LL{x:018d}"  # noqa: E731
        txn_id = fmt_txn(tseq)
        code = R["code"][sel]
        code_s = _lut(_CODES, code)
        msg = _lut(_CODE_MSG, code)
        success = R["success"][sel]
        if format_variations:
            fail_pa = pa.array(~success)
            if gname in ("CNAPS_DD", "LIANLIAN"):  # codes compare case-insensitively
                code_s = pc.if_else(pc.and_(fail_pa, pa.array(rng.random(k) < 0.05)), pc.utf8_lower(code_s), code_s)
            if gname in ("UNIONPAY", "LIANLIAN"):  # values are trimmed (inside quotes too)
                code_s = pc.if_else(pc.and_(fail_pa, pa.array(rng.random(k) < 0.02)),
                                    pc.binary_join_element_wise(" ", code_s, " ", ""), code_s)
            if gname == "LIANLIAN":  # quoted field spanning two lines
                msg = pc.if_else(pc.and_(fail_pa, pa.array(rng.random(k) < 0.01)),
                                 pc.binary_join_element_wise(msg, "\n第二行: 请稍后重试", ""), msg)
        iso = format_variations and gname == "CNAPS_DD"
        status_s = _lut(["FAILED", "SUCCESS"], success.astype(np.int64))
        if format_variations and gname == "CNAPS_DD":  # statuses compare case-insensitively
            status_s = pc.if_else(pa.array(rng.random(k) < 0.01), pc.utf8_capitalize(status_s), status_s)
        sdata = {"gateway_txn_id": txn_id, "instruction_id": _zpad(R["seq"][sel], 12, dprefix),
                 "amount": _amount(R["amount"][sel]), "status": status_s,
                 "response_code": code_s, "response_msg": msg, "txn_time": _ts(D, R["txn_sec"][sel], iso=iso)}
        cols = ["gateway_txn_id", "instruction_id", "amount", "status", "response_code", "response_msg", "txn_time"]
        header = None
        if format_variations and gname == "CNAPS_DD":
            cols = ["txn_time", "gateway_txn_id", "instruction_id", "status", "response_code", "amount", "response_msg"]
        if format_variations and gname == "LIANLIAN":
            cols = cols + ["channel_ref"]
            sdata["channel_ref"] = _zpad(_u(rng, 0, 10**11, k), 12, "R")
            header = [c.upper() for c in cols]
        f = _File(f"settlement_{gname}.csv", cols, sdata, header=header,
                  eol="\r\n" if (format_variations and gname == "CNAPS_DD") else "\n",
                  encoding="gb18030" if (format_variations and gname == "UNIONPAY") else "utf-8",
                  bom=format_variations and gname != "UNIONPAY",
                  quote_every=format_variations and gname == "LIANLIAN")
        if bad_rows:
            bseq_s = iter(range(int(tseq.max(initial=10**5)) + 100, 10**12))
            xseq = iter(range(7 * 10**11 + gi * 10**9, 8 * 10**11))
            fcode = "51" if scheme == "iso8583" else "AM04"

            def srow(**kw):
                r = {"gateway_txn_id": txn_fmt1(next(bseq_s)), "instruction_id": f"{dprefix}{next(xseq):012d}",
                     "amount": "1500.00", "status": "FAILED", "response_code": fcode, "response_msg": "余额不足",
                     "txn_time": _ts1(D, 9 * _HOUR + 14 * 60 + 3), "channel_ref": "R000000000000"}
                if iso:
                    r["txn_time"] = r["txn_time"].replace(" ", "T") + "+08:00"
                return r | kw
            kinds = [("amount", {"amount": "0.00"}, "amount must be > 0"),
                     ("amount", {"amount": "abc"}, "not an amount"),
                     ("status", {"status": "REVERSED"}, "unknown settlement status"),
                     ("gateway_txn_id", {"gateway_txn_id": ""}, "empty gateway_txn_id"),
                     ("txn_time", {"txn_time": f"{D:%Y/%m/%d} 10:00"}, "invalid timestamp"),
                     ["dupkey"]]
            # One gateway's export has no bad rows (only resent ones): its every row passes.
            clean = format_variations and gname == "LIANLIAN"
            for kk in [] if clean else _take_bad(kinds, _n_bad(k), rng):
                if isinstance(kk, list):
                    r1 = srow()
                    r2 = r1 | {"amount": "1500.01"}
                    f.bad += [(r1, "gateway_txn_id", "same key, different values"),
                              (r2, "gateway_txn_id", "same key, different values")]
                else:
                    f.bad.append((srow(**kk[1]), kk[0], kk[2]))
            s_ix, f_ix = np.flatnonzero(success & ~R["orphan"][sel]), np.flatnonzero(~success)
            f.dups = [int(s_ix[_u(rng, 0, len(s_ix) - 1, 1)[0]])] if len(s_ix) else []
            f.dups += [int(f_ix[_u(rng, 0, len(f_ix) - 1, 1)[0]])] if len(f_ix) else []
            f.dups = sorted(set(f.dups) | set(_dup_rows(rng, k, np.flatnonzero(~(success & R["orphan"][sel])))))
        # control totals over every written data record (bad and duplicate rows included)
        amounts = R["amount"][sel]
        dups = np.asarray(f.dups, dtype=np.int64)
        total_fen = int(amounts[success].sum()) + int(amounts[dups][success[dups]].sum())
        records = k + len(f.bad) + len(f.dups)
        if gi == missing:
            continue
        digest = emit(f)
        assert rows[f.name] == records
        ctl = ["# settlement control file (written last)", f"gateway={gname}", f"business_date={ds}",
               f"scheme={scheme}"]
        if f.encoding != "utf-8":
            ctl.append(f"encoding={f.encoding}")
        ctl += [f"records={records}", f"amount_total={_fmt_amount(total_fen)}",
                f"sha256={digest}"]
        (day_dir / f"settlement_{gname}.ctl").write_text("\n".join(ctl) + "\n", encoding="ascii")
        # settlement exceptions truth
        orph = success & R["orphan"][sel]
        dupd = success & (R["sub"][sel] == 1)
        n_orphans += int(orph.sum())
        n_dupdebits += int(dupd.sum())
        for kind_name, m in (("orphan_settlement", orph), ("duplicate_debit", dupd)):
            if m.any():
                mi = pa.array(np.flatnonzero(m))
                sx_rows.append(pd.DataFrame({
                    "gateway": gname, "gateway_txn_id": pc.take(txn_id, mi).to_pandas(),
                    "instruction_id": pc.take(sdata["instruction_id"], mi).to_pandas(),
                    "amount": pc.take(sdata["amount"], mi).to_pandas(), "kind": kind_name}))

    # ---- gateway_incidents.csv -------------------------------------------------------------
    inc = [[GATEWAYS[gi], _ts1(D, s), _ts1(D, e), desc] for gi, s, e, desc in _INCIDENTS]
    f = _File("gateway_incidents.csv", ["gateway", "started_at", "ended_at", "description"],
              {c: pa.array([r[j] for r in inc], pa.string()) for j, c in
               enumerate(["gateway", "started_at", "ended_at", "description"])})
    emit(f)

    # ---- truth files ---------------------------------------------------------------------
    o = np.lexsort((g.inst_no, g.loan))
    opa = pa.array(o)
    truth_cols = ["loan_id", "installment_no", "status", "root_cause", "amount_due", "amount_settled", "scenario"]
    body = _csv_bytes(truth_cols, [
        pc.take(loan_s, opa), _s(g.inst_no[o]), _lut(_STATUSES, status[o]), _lut(_CAUSES, cause[o]),
        _amount(g.due[o]), _amount(settled[o]), _lut([s[0] for s in _SCENARIOS], g.scen[o])])
    (day_dir / "_truth.csv").write_bytes(body)
    sx_cols = ["gateway", "gateway_txn_id", "instruction_id", "amount", "kind"]
    sx = pd.concat(sx_rows, ignore_index=True) if sx_rows else pd.DataFrame(columns=sx_cols)
    sx.to_csv(day_dir / "_truth_settlement_exceptions.csv", index=False, columns=sx_cols)
    rj_cols = ["file", "line", "record", "column", "value", "reason"]
    pd.DataFrame(rejects, columns=rj_cols).to_csv(day_dir / "_truth_rejects.csv", index=False)

    st_counts = np.bincount(status, minlength=len(_STATUSES))
    c_counts = np.bincount(cause, minlength=len(_CAUSES))
    return SynthSummary(
        business_date=D, day_dir=day_dir, installments=n, rows=rows, bad_rows=bad_counts,
        duplicate_rows=dup_counts,
        status_counts={s: int(c) for s, c in zip(_STATUSES, st_counts) if c},
        root_cause_counts={s: int(c) for s, c in zip(_CAUSES, c_counts) if c},
        scenario_counts={s[0]: int(c) for s, c in zip(_SCENARIOS, np.bincount(g.scen, minlength=len(_SCENARIOS)))},
        orphan_settlements=n_orphans, duplicate_debits=n_dupdebits, missing_gateway=missing_gateway,
        seconds=time.perf_counter() - t_start)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recon.synth", description="Write a synthetic inbox day.")
    p.add_argument("--date", type=dt.date.fromisoformat, required=True)
    p.add_argument("--installments", type=int, default=10_000)
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("inbox"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bad-rows", action="store_true")
    p.add_argument("--missing-gateway", choices=GATEWAYS)
    p.add_argument("--plain", action="store_true", help="no format variations (utf-8, LF, contract column order)")
    a = p.parse_args(argv)
    s = generate_day(a.date, a.installments, a.out, seed=a.seed, bad_rows=not a.no_bad_rows,
                     missing_gateway=a.missing_gateway, format_variations=not a.plain)
    print(f"{s.day_dir}: {s.installments} installments in {s.seconds:.2f}s")
    for name, r in s.rows.items():
        print(f"  {name:32s} {r:>10d} rows  {s.bad_rows[name]:>5d} bad  {s.duplicate_rows[name]:>3d} dup")
    print("  status:", s.status_counts)
    print("  root_cause:", s.root_cause_counts)
    print(f"  orphans: {s.orphan_settlements}  duplicate debits: {s.duplicate_debits}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
