"""The generator's truth: CONTRACT section 3 (with the choices of notes/INTERPRETATION.md)
evaluated once more, independently of recon and of the scenarios, over the generated attempts,
settlement rows, incident windows and binding rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.synth.plan import Day
from tests.synth.vocabulary import (CAUSE_OF, CF_CONFIRMED, C_CU, C_GO, C_INC, C_NI, C_NONE, C_NSR,
                                    C_SP, C_UNC, GW_SCHEME_INDEX, INCIDENTS, S_OVERPAID, S_PAID,
                                    S_PARTIAL, S_PENDING, S_UNPAID)


def evaluate(day: Day, missing: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(status, root cause, settled fen) per installment, as section 3 decides them from the
    generated rows; `missing` is the index of the gateway whose file is not written."""
    n, A, R, B = day.n, day.A, day.R, day.B
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
    for g, s, e, _ in INCIDENTS:
        in_inc |= (dgw == g) & (A["sent_sec"][dec] >= s) & (A["sent_sec"][dec] <= e)
    dcause = np.where(~arrived_gw[dgw], C_SP,
                      np.where(dcode >= 0, CAUSE_OF[GW_SCHEME_INDEX[dgw], dcode.clip(0)],
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
    q = pd.DataFrame({"loan": day.loan[need], "q": need, "t": t_at[need]})
    b = pd.DataFrame({"loan": B["loan"], "bound": B["bound"], "unbound": B["unbound"], "hu": B["has_unbound"]})
    j = q.merge(b, on="loan", how="inner")
    j = j[(j["bound"] <= j["t"]) & (~j["hu"] | (j["unbound"] > j["t"]))]
    active = np.zeros(n, bool)
    active[j["q"].to_numpy()] = True
    cause[~has_sent] = np.where(has_instr & r2_unconf, C_INC, np.where(active, C_NI, C_CU))[~has_sent]

    due = day.due
    status = np.where(settled > due, S_OVERPAID, np.where(settled == due, S_PAID, np.where(
        cause == C_SP, S_PENDING, np.where(settled > 0, S_PARTIAL, S_UNPAID))))
    cause = np.where(status <= S_PAID, C_NONE, cause)
    return status.astype(np.int8), cause.astype(np.int8), settled
