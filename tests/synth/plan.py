"""The plan of a synthetic day: every installment gets a scenario (paid first time, failed with
code 51, created but never sent while the card was unbound, ...) with the outcome it is meant to
produce, then the attempts, binding rows and settlement rows that produce it."""

from __future__ import annotations

import datetime as dt

import numpy as np

from tests.synth.arrays import DAY, HOUR, Columns, draw_choice, draw_ints
from tests.synth.vocabulary import (B_ACTIVE, B_EXPIRED, B_REVOKED, B_UNBOUND, CF_CONFIRMED,
                                    CF_EXPIRED, CF_FAILED, CF_NOT_REQUIRED, CF_PENDING, CODE_INDEX,
                                    C_AF, C_CU, C_GO, C_IB, C_INC, C_NSR, C_OD, C_UNC,
                                    GW_SCHEME_INDEX, GW_SHARE, K_FAIL1, K_FAIL2, K_NOROW, K_SUCC,
                                    K_SUCC2, K_UNSENT, ROWS_OF_KIND, SCENARIO, SCENARIOS, SCHEMES,
                                    SUCCESS_CODE, incident_window, other_gateway, pick_codes,
                                    prefail_codes, slot_time)

_ATTEMPT_FIELDS = {
    "inst": (np.int64, -1), "gw": (np.int8, 0), "kind": (np.int8, K_SUCC), "sent": (bool, True),
    "sent_sec": (np.int64, 0), "created_sec": (np.int64, 0), "amount": (np.int64, 0),
    "succ_amt": (np.int64, 0), "code": (np.int16, -1), "code2": (np.int16, -1),
    "conf_req": (bool, False), "conf_status": (np.int8, CF_NOT_REQUIRED),
}
_BINDING_FIELDS = {"loan": (np.int64, -1), "status": (np.int8, B_ACTIVE), "bound": (np.int64, 0),
                   "unbound": (np.int64, 0), "has_unbound": (bool, False)}



class Day:
    """One day's plan: the installments with their scenarios, then the attempts, bindings and
    settlement rows that make each scenario's outcome, all drawn from one seeded stream."""

    def __init__(self, d: dt.date, n: int, seed: int):
        self.d = d
        self.n = n
        self.rng = np.random.default_rng(np.random.PCG64([seed, d.toordinal(), n]))
        self.att = Columns(_ATTEMPT_FIELDS)
        self.bind = Columns(_BINDING_FIELDS)

    # ---- installments & scenarios -------------------------------------------------------
    def plan(self) -> None:
        rng, n = self.rng, self.n
        shares = np.array([s[1] or 0.0 for s in SCENARIOS])
        minc = 3 if n >= 1000 else (1 if n >= 100 else 0)
        counts = np.maximum(np.round(shares * n).astype(np.int64), minc)
        counts[0] = 0
        if counts.sum() > n:  # tiny days
            counts = np.floor(shares * n).astype(np.int64)
        counts[0] = n - counts.sum()
        scen = np.repeat(np.arange(len(SCENARIOS)), counts)
        rng.shuffle(scen)
        self.scen = scen
        self.members = {i: np.flatnonzero(scen == i) for i in range(len(SCENARIOS))}
        self.want_status = np.array([s[2] for s in SCENARIOS], dtype=np.int8)[scen]
        self.want_cause = np.array([s[3] for s in SCENARIOS], dtype=np.int8)[scen]

        # unique loan / borrower numbers: installments, loans with nothing due, throwaway (bad rows)
        self.n_extra_loans = max(1, n // 60)
        self.n_throw = 64 + n // 1000
        total = n + self.n_extra_loans + self.n_throw
        pool = np.cumsum(draw_ints(rng, 1, 19, total)) + int(draw_ints(rng, 0, 999, 1)[0])
        pool = pool[rng.permutation(total)]
        self.loan = pool[:n].copy()
        self.extra_loans = pool[n:n + self.n_extra_loans]
        self.throw_loans = pool[n + self.n_extra_loans:]
        self.borrower = (np.cumsum(draw_ints(rng, 1, 9, n)) + 10**7)[rng.permutation(n)]
        self.inst_no = draw_ints(rng, 1, 60, n)
        due = np.exp(rng.normal(np.log(3500.0), 0.45, n)).clip(300, 30000)
        fen = (due * 100).astype(np.int64)
        self.due = np.maximum(np.where(rng.random(n) < 0.3, fen // 100 * 100, fen), 30000)
        self.pgw = draw_choice(rng, n, GW_SHARE).astype(np.int8)

        # loans with two installments due on D (only in scenarios that do not depend on bindings)
        self.twin_b = np.zeros(0, np.int64)
        if n >= 400:
            elig_names = (["paid_first_try", "paid_after_retry"]
                          + [s[0] for s in SCENARIOS if s[0].startswith("failed_")])
            elig = np.concatenate([self.members[SCENARIO[x]] for x in elig_names])
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
            created = sent_sec - draw_ints(self.rng, 60, 6 * HOUR, k)
        self.att.add(k, inst=inst, gw=gw, kind=kind, sent=True, sent_sec=sent_sec, created_sec=created,
                     amount=amount, succ_amt=succ_amt, code=code, code2=code2, conf_req=req, conf_status=st)

    def _chain(self, idx, r, *, gw, kind, sent_sec, amount, succ_amt=0, code=-1, code2=-1) -> None:
        """r[i] failed pre-attempts (slots 0..r-1), then the last attempt described by the kwargs."""
        rng = self.rng
        k = len(idx)
        if not k:
            return
        gw = np.broadcast_to(np.asarray(gw, np.int8), (k,))
        last_created = sent_sec - draw_ints(rng, 60, 6 * HOUR, k)
        tie = (r >= 1) & (rng.random(k) < 0.03)  # same sent_at as the last one, created earlier
        for slot in range(int(r.max(initial=0))):
            sel = r > slot
            m = int(sel.sum())
            pgw = np.where(rng.random(m) < 0.85, gw[sel], other_gateway(rng, gw[sel])).astype(np.int8)
            pkind = np.where(rng.random(m) < 0.9, K_FAIL1, K_NOROW)
            pcode = np.where(pkind == K_FAIL1, prefail_codes(rng, pgw), -1)
            psent = slot_time(rng, slot, m)
            is_tie = tie[sel] & (r[sel] == slot + 1)
            psent = np.where(is_tie, sent_sec[sel], psent)
            pcreated = np.where(is_tie, last_created[sel] - draw_ints(rng, 1, 600, m),
                                psent - draw_ints(rng, 60, 6 * HOUR, m))
            self._add_sent(idx[sel], pgw, pkind, psent, self.due[idx[sel]], code=pcode, created=pcreated)
        self._add_sent(idx, gw, kind, sent_sec, amount, succ_amt=succ_amt, code=code, code2=code2,
                       created=last_created)

    def _extra_unsent(self, idx) -> None:
        """A created-but-unsent, unconfirmed instruction next to sent ones (rule 1 still decides)."""
        k = len(idx)
        self.att.add(k, inst=idx, gw=self.pgw[idx], kind=K_UNSENT, sent=False,
                     created_sec=draw_ints(self.rng, 0, 5 * HOUR, k), amount=self.due[idx],
                     conf_req=True, conf_status=CF_PENDING)

    def attempts(self) -> None:
        rng, M, due, pgw = self.rng, self.members, self.due, self.pgw

        idx = M[SCENARIO["paid_first_try"]]
        k = len(idx)
        self._chain(idx, np.zeros(k, np.int64), gw=pgw[idx], kind=K_SUCC, sent_sec=slot_time(rng, 0, k),
                    amount=due[idx], succ_amt=due[idx])

        idx = M[SCENARIO["paid_after_retry"]]
        k = len(idx)
        r = np.where(rng.random(k) < 0.75, 1, 2)
        sent = np.where(r == 1, slot_time(rng, 1, k), slot_time(rng, 2, k))
        self._chain(idx, r, gw=pgw[idx], kind=K_SUCC, sent_sec=sent, amount=due[idx], succ_amt=due[idx])

        idx = M[SCENARIO["paid_split_debit"]]
        k = len(idx)
        a = (due[idx] * (0.3 + 0.4 * rng.random(k))).astype(np.int64)
        self._add_sent(idx, pgw[idx], K_SUCC, slot_time(rng, 0, k), a, succ_amt=a)
        self._add_sent(idx, pgw[idx], K_SUCC, slot_time(rng, 1, k), due[idx] - a, succ_amt=due[idx] - a)

        idx = M[SCENARIO["overpaid_duplicate_debit"]]
        k = len(idx)
        self._add_sent(idx, pgw[idx], K_SUCC2, slot_time(rng, 0, k), due[idx], succ_amt=due[idx])

        idx = M[SCENARIO["overpaid_double_collection"]]
        k = len(idx)
        self._add_sent(idx, pgw[idx], K_SUCC, slot_time(rng, 0, k), due[idx], succ_amt=due[idx])
        g2 = np.where(rng.random(k) < 0.5, pgw[idx], other_gateway(rng, pgw[idx])).astype(np.int8)
        self._add_sent(idx, g2, K_SUCC, slot_time(rng, 1, k), due[idx], succ_amt=due[idx])

        # a partial SUCCESS and a failed attempt, in either order
        idx = M[SCENARIO["partial_then_failed"]]
        k = len(idx)
        variants = [(C_IB, K_FAIL1), (C_AF, K_FAIL1), (C_OD, K_FAIL1), (C_CU, K_FAIL1), (C_UNC, K_FAIL1),
                    (C_GO, K_FAIL1), (C_NSR, K_NOROW), (C_GO, K_NOROW)]
        v = draw_choice(rng, k, (0.55, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05))
        vc = np.array([x[0] for x in variants])[v]
        vk = np.array([x[1] for x in variants])[v]
        self.want_cause[idx] = vc
        part = (due[idx] * (0.1 + 0.8 * rng.random(k))).astype(np.int64).clip(1)
        gw = pgw[idx]
        code = np.where(vk == K_FAIL1, pick_codes(rng, np.where(vk == K_FAIL1, vc, C_IB), gw), -1)
        incident = (vk == K_NOROW) & (vc == C_GO)
        ws, we = incident_window(gw)
        fail_order_first = (rng.random(k) < 0.3) & (vk == K_FAIL1)
        t0, t1 = slot_time(rng, 0, k), slot_time(rng, 1, k)
        t1 = np.where(incident, draw_ints(rng, ws, we, k), t1)
        a_ = ~fail_order_first
        self._add_sent(idx[a_], gw[a_], K_SUCC, t0[a_], due[idx][a_], succ_amt=part[a_])
        self._add_sent(idx[a_], gw[a_], vk[a_], t1[a_], due[idx][a_] - part[a_], code=code[a_])
        b_ = fail_order_first
        self._add_sent(idx[b_], gw[b_], K_FAIL1, t0[b_], due[idx][b_], code=code[b_])
        self._add_sent(idx[b_], gw[b_], K_SUCC, t1[b_], due[idx][b_], succ_amt=part[b_])

        # rule 4: every sent attempt succeeded, yet settled < amount_due
        idx = M[SCENARIO["partial_all_succeeded"]]
        k = len(idx)
        two = rng.random(k) < 0.2
        part = (due[idx] * (0.1 + 0.6 * rng.random(k))).astype(np.int64).clip(1)
        part2 = ((due[idx] - part) * (0.1 + 0.8 * rng.random(k))).astype(np.int64).clip(1)
        one = ~two
        self._add_sent(idx[one], pgw[idx][one], K_SUCC, slot_time(rng, 0, int(one.sum())), due[idx][one],
                       succ_amt=part[one])
        i2 = idx[two]
        self._add_sent(i2, pgw[i2], K_SUCC, slot_time(rng, 0, len(i2)), part[two], succ_amt=part[two])
        self._add_sent(i2, pgw[i2], K_SUCC, slot_time(rng, 1, len(i2)), part2[two], succ_amt=part2[two])

        # failed by a response code
        for name in ("failed_insufficient_balance", "failed_account_frozen", "failed_account_closed",
                     "failed_card_unbound", "failed_instruction_not_confirmed", "failed_gateway_outage_code",
                     "failed_other_decline", "failed_unknown_code"):
            idx = M[SCENARIO[name]]
            k = len(idx)
            cause = SCENARIOS[SCENARIO[name]][3]
            gw = pgw[idx]
            if cause == C_INC:  # no iso20022 code means "not confirmed"
                gw = np.where(gw == 1, np.where(rng.random(k) < 0.5, 0, 2), gw).astype(np.int8)
            r = draw_choice(rng, k, (0.7, 0.2, 0.1))
            multi = rng.random(k) < 0.05  # two FAILED rows; the later one decides
            code = pick_codes(rng, cause, gw)
            code2 = np.where(multi, prefail_codes(rng, gw), -1)
            sent = np.choose(r, [slot_time(rng, j, k) for j in range(3)])
            self._chain(idx, r, gw=gw, kind=np.where(multi, K_FAIL2, K_FAIL1), sent_sec=sent,
                        amount=due[idx], code=code, code2=code2)
            self._extra_unsent(idx[rng.random(k) < 0.03])

        # sent, no settlement row, inside an incident window of its gateway
        idx = M[SCENARIO["sent_no_row_in_incident"]]
        k = len(idx)
        gw = pgw[idx]
        ws, we = incident_window(gw)
        b = rng.random(k)
        sent = np.where(b < 0.1, ws, np.where(b < 0.2, we, draw_ints(rng, ws, we, k)))
        self._chain(idx, (rng.random(k) < 0.2).astype(np.int64), gw=gw, kind=K_NOROW, sent_sec=sent,
                    amount=due[idx])

        # sent, no settlement row, no incident of its gateway (some inside another gateway's window)
        idx = M[SCENARIO["sent_no_row"]]
        k = len(idx)
        gw = pgw[idx]
        r = draw_choice(rng, k, (0.7, 0.2, 0.1))
        sent = np.choose(r, [slot_time(rng, j, k) for j in range(3)])
        ows, owe = incident_window(other_gateway(rng, gw))
        move = (r <= 1) & (rng.random(k) < 0.15)
        sent = np.where(move, draw_ints(rng, ows, owe, k), sent)
        self._chain(idx, r, gw=gw, kind=K_NOROW, sent_sec=sent, amount=due[idx])

        # rule 2: instructions created but none sent
        self.r2_T = np.zeros(self.n, np.int64)
        self.r2_early = np.full(self.n, np.iinfo(np.int64).min)
        for name in ("unsent_not_confirmed", "unsent_card_unbound", "unsent_not_instructed"):
            idx = M[SCENARIO[name]]
            k = len(idx)
            T = draw_ints(rng, 1 * HOUR, 5 * HOUR, k)
            two = rng.random(k) < 0.15
            early = T - draw_ints(rng, 1800, 3 * HOUR, k)
            self.r2_T[idx] = T
            self.r2_early[idx[two]] = early[two]
            creq_l = rng.random(k) < 0.5
            cst_l = np.where(creq_l, CF_CONFIRMED, CF_NOT_REQUIRED)
            creq_e = rng.random(k) < 0.5
            cst_e = np.where(creq_e, CF_CONFIRMED, CF_NOT_REQUIRED)
            if name == "unsent_not_confirmed":
                bad = np.array([CF_PENDING, CF_EXPIRED, CF_FAILED])[draw_ints(rng, 0, 2, k)]
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
        seq[order] = np.cumsum(draw_ints(rng, 1, 29, len(order))) + 10**9
        A["seq"] = seq
        self.A = A

    # ---- bindings ------------------------------------------------------------------------
    def _ended_status(self, k):
        return np.array([B_UNBOUND, B_REVOKED, B_EXPIRED])[draw_ints(self.rng, 0, 2, k)]

    def _add_ended(self, loans, end, bound=None):
        k = len(loans)
        if bound is None:
            bound = end - draw_ints(self.rng, DAY, 700 * DAY, k)
        self.bind.add(k, loan=loans, status=self._ended_status(k), bound=bound, unbound=end, has_unbound=True)

    def _add_active(self, loans, bound):
        self.bind.add(len(loans), loan=loans, status=B_ACTIVE, bound=bound)

    def _add_history(self, loans, before, p):
        """With probability p, 1-2 older ended bindings before time `before`."""
        rng = self.rng
        sel = rng.random(len(loans)) < p
        loans, before = loans[sel], np.asarray(before)[sel] if np.ndim(before) else np.full(sel.sum(), before)
        h = np.where(rng.random(len(loans)) < 0.75, 1, 2)
        end = before - draw_ints(rng, HOUR, 200 * DAY, len(loans))
        for j in range(2):
            m = h > j
            bound = end - draw_ints(rng, DAY, 700 * DAY, len(loans))
            self._add_ended(loans[m], end[m], bound[m])
            end = bound - draw_ints(rng, HOUR, 30 * DAY, len(loans))

    def _normal(self, loans):
        k = len(loans)
        bound = -draw_ints(self.rng, DAY, 1500 * DAY, k)
        self._add_active(loans, bound)
        self._add_history(loans, bound, 0.15)

    def bindings(self) -> None:
        rng, M, n = self.rng, self.members, self.n
        r23 = {SCENARIO[x] for x in ("unsent_not_confirmed", "unsent_card_unbound", "unsent_not_instructed",
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
        self._add_ended(ex[closed], -draw_ints(rng, HOUR, 300 * DAY, int(closed.sum())))

        # rule 3: at D 00:00:00
        idx = M[SCENARIO["no_instruction_card_unbound"]]
        v = draw_choice(rng, len(idx), (0.25, 0.45, 0.10, 0.20))
        L = self.loan[idx]
        # v0: never bound
        m = v == 1  # everything ended before D
        end = -draw_ints(rng, HOUR, 300 * DAY, int(m.sum()))
        self._add_ended(L[m], end)
        self._add_history(L[m], end - 800 * DAY, 0.3)
        m = v == 2  # ended exactly at D 00:00:00 (not active: unbound_at must be > t)
        self._add_ended(L[m], np.zeros(int(m.sum()), np.int64))
        m = v == 3  # ended before D, re-bound during D (after midnight)
        self._add_ended(L[m], -draw_ints(rng, HOUR, 300 * DAY, int(m.sum())))
        self._add_active(L[m], draw_ints(rng, HOUR, 20 * HOUR, int(m.sum())))

        idx = M[SCENARIO["no_instruction_not_instructed"]]
        v = draw_choice(rng, len(idx), (0.6, 0.1, 0.3))
        L = self.loan[idx]
        self._normal(L[v == 0])
        m = v == 1  # bound exactly at D 00:00:00 (active: bound_at <= t)
        self._add_active(L[m], np.zeros(int(m.sum()), np.int64))
        self._add_history(L[m], np.zeros(int(m.sum()), np.int64), 0.5)
        m = v == 2  # UNBOUND/REVOKED/EXPIRED later on D: still active at midnight
        self._add_ended(L[m], draw_ints(rng, 1, 20 * HOUR, int(m.sum())))

        # rule 2: at created_at of the latest unsent instruction (T)
        idx = M[SCENARIO["unsent_not_confirmed"]]
        nob = rng.random(len(idx)) < 0.2
        self._normal(self.loan[idx[~nob]])
        self._add_ended(self.loan[idx[nob]], self.r2_T[idx[nob]] - draw_ints(rng, HOUR, 100 * DAY, int(nob.sum())))

        idx = M[SCENARIO["unsent_card_unbound"]]
        L, T, E = self.loan[idx], self.r2_T[idx], self.r2_early[idx]
        two = E > np.iinfo(np.int64).min
        v = np.where(two, 4, draw_choice(rng, len(idx), (0.4, 0.15, 0.15, 0.3)))
        m = v == 0
        self._add_ended(L[m], T[m] - draw_ints(rng, 60, 6 * HOUR, int(m.sum())))
        m = v == 1  # ended exactly at T
        self._add_ended(L[m], T[m])
        # v2: never bound
        m = v == 3  # ended, then re-bound after T
        self._add_ended(L[m], T[m] - draw_ints(rng, 60, 100 * DAY, int(m.sum())))
        self._add_active(L[m], T[m] + draw_ints(rng, 60, 10 * HOUR, int(m.sum())))
        m = v == 4  # active when the earlier instruction was created, not at the latest
        self._add_ended(L[m], draw_ints(rng, E[m] + 1, T[m], int(m.sum())),
                        E[m] - draw_ints(rng, DAY, 700 * DAY, int(m.sum())))

        idx = M[SCENARIO["unsent_not_instructed"]]
        L, T = self.loan[idx], self.r2_T[idx]
        v = draw_choice(rng, len(idx), (0.6, 0.2, 0.2))
        self._normal(L[v == 0])
        m = v == 1  # bound on D after midnight, at or before T (rule 3's midnight would say unbound)
        bnd = np.where(rng.random(int(m.sum())) < 0.2, T[m], draw_ints(rng, 1, T[m], int(m.sum())))
        self._add_active(L[m], bnd)
        self._add_history(L[m], np.zeros(int(m.sum()), np.int64), 0.5)
        m = v == 2  # ended after T
        self._add_ended(L[m], T[m] + draw_ints(rng, 1, 10 * HOUR, int(m.sum())))

        B = self.bind.build()
        order = np.lexsort((rng.random(len(B["loan"])), B["bound"]))
        seq = np.empty(len(order), np.int64)
        seq[order] = np.cumsum(draw_ints(rng, 1, 7, len(order))) + 10**6
        B["seq"] = seq
        self.B = B

    # ---- settlement rows -----------------------------------------------------------------
    def settlements(self) -> None:
        rng, A = self.rng, self.A
        nrows = ROWS_OF_KIND[A["kind"]]
        att = np.repeat(np.arange(len(nrows)), nrows)
        first = np.ones(len(att), bool)
        first[1:] = att[1:] != att[:-1]
        sub = (~first).astype(np.int64)
        kind = A["kind"][att]
        success = (kind == K_SUCC) | (kind == K_SUCC2)
        gw = A["gw"][att]
        base = A["sent_sec"] + draw_ints(rng, 1, 900, len(nrows))
        tt = base[att] + sub * draw_ints(rng, 60, 3600, len(att))
        code = np.where(success, np.where(GW_SCHEME_INDEX[gw] == 0, CODE_INDEX["00"], CODE_INDEX["ACSC"]),
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
                    "txn_sec": draw_ints(rng, 6 * HOUR, 22 * HOUR, k),
                    "code": (np.full(k, CODE_INDEX[SUCCESS_CODE[SCHEMES[GW_SCHEME_INDEX[g]]]]) if succ
                             else prefail_codes(rng, gg).astype(np.int64)),
                    "amount": draw_ints(rng, 30000, 900000, k),
                    "seq": 9 * 10**11 + g * 10**10 + int(succ) * 10**9 + np.cumsum(draw_ints(rng, 1, 999, k)),
                    "orphan": np.ones(k, bool)})
        for key in self.R:
            self.R[key] = np.concatenate([self.R[key]] + [p[key] for p in parts])
