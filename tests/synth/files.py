"""The files of one synthetic day: the inputs of CONTRACT section 2 (with the bad and resent
rows planted in them, and the format variations real files have), the settlement control files,
and the truth files recon never reads."""

from __future__ import annotations

import datetime as dt
import pathlib
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.contract import BINDING_STATUSES, CONFIRM_STATUSES
from tests.synth.arrays import (DAY, HOUR, decimal_strings, draw_ints, lookup, timestamp, timestamps,
                                yuan_strings, yuan_text, zero_padded)
from tests.synth.plan import Day
from tests.synth.vocabulary import (CARD_BINS, CAUSES, CODE_MESSAGES, CODES, GATEWAY_SCHEME, GATEWAYS,
                                    INCIDENTS, SCENARIOS, STATUSES)
from tests.synth.writing import InputFile, bad_row_count, csv_bytes, resent_rows, take_bad_kinds


class DayFiles:
    """Writes a planned day's files into day_dir, counting rows, bad rows and resent rows per
    file and collecting the reject truth. The bad rows' values come from the day's own random
    stream, in the order the files are written (installments, bindings, instructions,
    settlements), so a seed always gives the same bytes."""

    def __init__(self, g: Day, day_dir: pathlib.Path, seed: int, bad_rows: bool,
                 format_variations: bool) -> None:
        self.g = g
        self.day_dir = day_dir
        self.seed = seed
        self.bad_rows = bad_rows
        self.format_variations = format_variations
        self.rows: dict[str, int] = {}
        self.bad_counts: dict[str, int] = {}
        self.dup_counts: dict[str, int] = {}
        self.rejects: list[dict] = []
        self.loan_s = zero_padded(g.loan, 10)
        # loan ids no installment has, for the bad rows: each used once, across the files
        self.throw_s = [f"{x:010d}" for x in g.throw_loans]
        self.throw_i = iter(range(len(self.throw_s)))

    def emit(self, f: InputFile) -> str:
        # each file gets its own stream, so leaving one file out does not change the others
        g = self.g
        frng = np.random.default_rng(np.random.PCG64([self.seed, g.d.toordinal(), g.n,
                                                      zlib.crc32(f.name.encode())]))
        digest, records, rej = f.write(self.day_dir, frng)
        self.rows[f.name] = records
        self.bad_counts[f.name] = len(f.bad)
        self.dup_counts[f.name] = len(f.dups)
        self.rejects.extend(rej)
        return digest

    def installments(self) -> None:
        g, rng, D, n = self.g, self.g.rng, self.g.d, self.g.n
        ds = D.isoformat()
        bad_rows, format_variations = self.bad_rows, self.format_variations
        loan_s, throw_s, throw_i = self.loan_s, self.throw_s, self.throw_i
        o = np.lexsort((g.inst_no, g.loan))
        inst_cols = ["loan_id", "installment_no", "borrower_id", "due_date", "amount_due", "currency"]
        f = InputFile("installments.csv", inst_cols, {
            "loan_id": pc.take(loan_s, pa.array(o)), "installment_no": decimal_strings(g.inst_no[o]),
            "borrower_id": zero_padded(g.borrower[o], 12), "due_date": lookup([ds], np.zeros(n, np.int64)),
            "amount_due": yuan_strings(g.due[o]), "currency": lookup(["CNY"], np.zeros(n, np.int64))},
            bom=format_variations)
        if bad_rows:
            def irow(**kw):
                r = {"loan_id": throw_s[next(throw_i)], "installment_no": str(int(draw_ints(rng, 1, 60, 1)[0])),
                     "borrower_id": f"{int(draw_ints(rng, 1, 10**9, 1)[0]):012d}", "due_date": ds,
                     "amount_due": yuan_text(int(draw_ints(rng, 30000, 900000, 1)[0])), "currency": "CNY"}
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
            for k in take_bad_kinds(kinds, bad_row_count(n), rng):
                if isinstance(k, list):
                    r1 = irow()
                    r2 = r1 | {"amount_due": yuan_text(int(draw_ints(rng, 30000, 900000, 1)[0]) + 1)}
                    key = "loan_id/installment_no"
                    for r in (r1, r2):
                        r[key] = f"{r['loan_id']}/{r['installment_no']}"  # the value reported for the composite key
                        f.bad.append((r, key, "same key, different values"))
                else:
                    f.bad.append((irow(**k[1]), k[0], k[2]))
            f.dups = resent_rows(rng, n)
        self.emit(f)

    def bindings(self) -> None:
        g, rng, D = self.g, self.g.rng, self.g.d
        bad_rows, format_variations = self.bad_rows, self.format_variations
        throw_s, throw_i = self.throw_s, self.throw_i
        B = g.B
        nb = len(B["loan"])
        o = np.argsort(B["seq"])
        bin_ix = draw_ints(rng, 0, len(CARD_BINS) - 1, nb)
        card = pc.binary_join_element_wise(lookup([b[0] for b in CARD_BINS], bin_ix), "******",
                                           zero_padded(draw_ints(rng, 0, 9999, nb), 4), "")
        card = pc.if_else(pa.array(rng.random(nb) < 0.03), pa.scalar("", pa.string()), card)
        bank = pc.if_else(pa.array(rng.random(nb) < 0.05), pa.scalar("", pa.string()),
                          lookup([b[1] for b in CARD_BINS], bin_ix))
        bind_cols = ["binding_id", "loan_id", "account_token", "card_no_masked", "bank_code", "status",
                     "bound_at", "unbound_at"]
        opa = pa.array(o)
        bdata = {"binding_id": zero_padded(B["seq"][o], 16), "loan_id": zero_padded(B["loan"][o], 10),
                 "account_token": zero_padded(draw_ints(rng, 0, 10**17, nb), 18, "tok"),
                 "card_no_masked": pc.take(card, opa),
                 "bank_code": pc.take(bank, opa), "status": lookup(BINDING_STATUSES, B["status"][o]),
                 "bound_at": timestamps(D, B["bound"][o]),
                 "unbound_at": timestamps(D, B["unbound"][o], mask=~B["has_unbound"][o])}
        f = InputFile("bindings.csv", bind_cols, bdata,
                      header=(["loan_id", "binding_id", "status", "bound_at", "unbound_at",
                               "account_token", "card_no_masked", "bank_code"]
                              if format_variations else None),
                      bom=format_variations)
        if format_variations:
            f.columns = f.header
        if bad_rows:
            bseq = iter(range(int(B["seq"].max(initial=10**6)) + 1000, 10**16))

            def brow(**kw):
                r = {"binding_id": f"{next(bseq):016d}", "loan_id": throw_s[next(throw_i)],
                     "account_token": f"tok{int(draw_ints(rng, 0, 10**17, 1)[0]):018d}",
                     "card_no_masked": "622202******0042", "bank_code": "ICBC", "status": "ACTIVE",
                     "bound_at": timestamp(D, -400 * DAY + 3723), "unbound_at": ""}
                return r | kw
            kinds = [("status", {"status": "PENDING"}, "unknown binding status"),
                     ("unbound_at", {"status": "UNBOUND", "unbound_at": ""}, "unbound_at required unless ACTIVE"),
                     ("bound_at", {"bound_at": f"{D.year}-02-30 10:00:00"}, "invalid timestamp"),
                     ("account_token", {"account_token": ""}, "empty account_token"),
                     ("binding_id", {"binding_id": ""}, "empty binding_id"),
                     ("status", {"status": ""}, "empty status"),
                     ["dupkey"]]
            for k in take_bad_kinds(kinds, bad_row_count(nb), rng):
                if isinstance(k, list):
                    r1 = brow()
                    r2 = r1 | {"account_token": r1["account_token"] + "9"}
                    f.bad += [(r1, "binding_id", "same key, different values"),
                              (r2, "binding_id", "same key, different values")]
                else:
                    f.bad.append((brow(**k[1]), k[0], k[2]))
            f.dups = resent_rows(rng, nb)
        self.emit(f)

    def instructions(self) -> None:
        g, rng, D = self.g, self.g.rng, self.g.d
        ds, dprefix = D.isoformat(), D.strftime("%Y%m%d")
        bad_rows, format_variations = self.bad_rows, self.format_variations
        loan_s, throw_s, throw_i = self.loan_s, self.throw_s, self.throw_i
        A = g.A
        na = len(A["inst"])
        o = np.argsort(A["seq"])
        opa = pa.array(o)
        ai = A["inst"][o]
        conf_req = A["conf_req"][o]
        creq_s = lookup(["false", "true"], conf_req.astype(np.int64))
        if format_variations:  # booleans are case-insensitive
            creq_s = pc.if_else(pa.array(rng.random(na) < 0.01),
                                lookup(["FALSE", "True"], conf_req.astype(np.int64)), creq_s)
        ins_cols = ["instruction_id", "loan_id", "installment_no", "gateway", "amount", "created_at",
                    "confirm_required", "confirm_status", "sent_at"]
        idata = {"instruction_id": zero_padded(A["seq"][o], 12, dprefix), "loan_id": pc.take(loan_s, pa.array(ai)),
                 "installment_no": decimal_strings(g.inst_no[ai]), "gateway": lookup(GATEWAYS, A["gw"][o]),
                 "amount": yuan_strings(A["amount"][o]), "created_at": timestamps(D, A["created_sec"][o]),
                 "confirm_required": creq_s, "confirm_status": lookup(CONFIRM_STATUSES, A["conf_status"][o]),
                 "sent_at": timestamps(D, A["sent_sec"][o], mask=~A["sent"][o])}
        if format_variations:
            ins_cols = ins_cols + ["batch_no"]
            idata["batch_no"] = zero_padded(A["created_sec"][o] // 3600 + 100, 4, "B" + dprefix)
        f = InputFile("instructions.csv", ins_cols, idata)
        if bad_rows:
            iseq = iter(range(8 * 10**11, 9 * 10**11))

            def xrow(**kw):
                r = {"instruction_id": f"{dprefix}{next(iseq):012d}", "loan_id": throw_s[next(throw_i)],
                     "installment_no": "7", "gateway": GATEWAYS[int(draw_ints(rng, 0, 2, 1)[0])], "amount": "2345.60",
                     "created_at": timestamp(D, 5 * HOUR), "confirm_required": "false",
                     "confirm_status": "NOT_REQUIRED",
                     "sent_at": timestamp(D, 7 * HOUR), "batch_no": "B" + dprefix + "0000"}
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
            for k in take_bad_kinds(kinds, bad_row_count(na), rng):
                if isinstance(k, list):
                    r1 = xrow()
                    r2 = r1 | {"amount": "2345.61"}
                    f.bad += [(r1, "instruction_id", "same key, different values"),
                              (r2, "instruction_id", "same key, different values")]
                else:
                    f.bad.append((xrow(**k[1]), k[0], k[2]))
            f.dups = resent_rows(rng, na)
        self.emit(f)

    def settlements(self, missing: int | None) -> tuple[list[pd.DataFrame], int, int]:
        """The settlement files and their .ctl (not for the gateway `missing`); returns the
        settlement exceptions' truth rows, the orphans and the duplicate debits."""
        g, rng, D = self.g, self.g.rng, self.g.d
        ds, dprefix = D.isoformat(), D.strftime("%Y%m%d")
        bad_rows, format_variations = self.bad_rows, self.format_variations
        day_dir, rows = self.day_dir, self.rows
        R = g.R
        sx_rows: list[pd.DataFrame] = []
        n_orphans = n_dupdebits = 0
        for gi, gname in enumerate(GATEWAYS):
            scheme = GATEWAY_SCHEME[gname]
            sel = np.flatnonzero(R["gw"] == gi)
            sel = sel[np.lexsort((R["sub"][sel], R["seq"][sel], R["txn_sec"][sel]))]
            k = len(sel)
            tseq = np.cumsum(draw_ints(rng, 1, 4, k)) + 10**5
            if gname == "UNIONPAY":
                fmt_txn = lambda x: zero_padded(x, 12)  # noqa: E731
                txn_fmt1 = lambda x: f"{x:012d}"  # noqa: E731
            elif gname == "CNAPS_DD":
                fmt_txn = lambda x: zero_padded(x, 10, "CN" + dprefix)  # noqa: E731
                txn_fmt1 = lambda x: f"CN{dprefix}{x:010d}"  # noqa: E731
            else:
                fmt_txn = lambda x: zero_padded(x, 18, "LL")  # noqa: E731
                txn_fmt1 = lambda x: f"LL{x:018d}"  # noqa: E731
            txn_id = fmt_txn(tseq)
            code = R["code"][sel]
            code_s = lookup(CODES, code)
            msg = lookup(CODE_MESSAGES, code)
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
            status_s = lookup(["FAILED", "SUCCESS"], success.astype(np.int64))
            if format_variations and gname == "CNAPS_DD":  # statuses compare case-insensitively
                status_s = pc.if_else(pa.array(rng.random(k) < 0.01), pc.utf8_capitalize(status_s), status_s)
            sdata = {"gateway_txn_id": txn_id, "instruction_id": zero_padded(R["seq"][sel], 12, dprefix),
                     "amount": yuan_strings(R["amount"][sel]), "status": status_s,
                     "response_code": code_s, "response_msg": msg,
                     "txn_time": timestamps(D, R["txn_sec"][sel], iso=iso)}
            cols = ["gateway_txn_id", "instruction_id", "amount", "status", "response_code", "response_msg", "txn_time"]
            header = None
            if format_variations and gname == "CNAPS_DD":
                cols = ["txn_time", "gateway_txn_id", "instruction_id", "status", "response_code", "amount",
                        "response_msg"]
            if format_variations and gname == "LIANLIAN":
                cols = cols + ["channel_ref"]
                sdata["channel_ref"] = zero_padded(draw_ints(rng, 0, 10**11, k), 12, "R")
                header = [c.upper() for c in cols]
            f = InputFile(f"settlement_{gname}.csv", cols, sdata, header=header,
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
                         "txn_time": timestamp(D, 9 * HOUR + 14 * 60 + 3), "channel_ref": "R000000000000"}
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
                for kk in [] if clean else take_bad_kinds(kinds, bad_row_count(k), rng):
                    if isinstance(kk, list):
                        r1 = srow()
                        r2 = r1 | {"amount": "1500.01"}
                        f.bad += [(r1, "gateway_txn_id", "same key, different values"),
                                  (r2, "gateway_txn_id", "same key, different values")]
                    else:
                        f.bad.append((srow(**kk[1]), kk[0], kk[2]))
                s_ix, f_ix = np.flatnonzero(success & ~R["orphan"][sel]), np.flatnonzero(~success)
                f.dups = [int(s_ix[draw_ints(rng, 0, len(s_ix) - 1, 1)[0]])] if len(s_ix) else []
                f.dups += [int(f_ix[draw_ints(rng, 0, len(f_ix) - 1, 1)[0]])] if len(f_ix) else []
                f.dups = sorted(set(f.dups) | set(resent_rows(rng, k, np.flatnonzero(~(success & R["orphan"][sel])))))
            # control totals over every written data record (bad and duplicate rows included)
            amounts = R["amount"][sel]
            dups = np.asarray(f.dups, dtype=np.int64)
            total_fen = int(amounts[success].sum()) + int(amounts[dups][success[dups]].sum())
            records = k + len(f.bad) + len(f.dups)
            if gi == missing:
                continue
            digest = self.emit(f)
            assert rows[f.name] == records
            ctl = ["# settlement control file (written last)", f"gateway={gname}", f"business_date={ds}",
                   f"scheme={scheme}"]
            if f.encoding != "utf-8":
                ctl.append(f"encoding={f.encoding}")
            ctl += [f"records={records}", f"amount_total={yuan_text(total_fen)}",
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
        return sx_rows, n_orphans, n_dupdebits

    def incidents(self) -> None:
        D = self.g.d
        inc = [[GATEWAYS[gi], timestamp(D, s), timestamp(D, e), desc] for gi, s, e, desc in INCIDENTS]
        f = InputFile("gateway_incidents.csv", ["gateway", "started_at", "ended_at", "description"],
                      {c: pa.array([r[j] for r in inc], pa.string()) for j, c in
                       enumerate(["gateway", "started_at", "ended_at", "description"])})
        self.emit(f)

    def truth(self, status: np.ndarray, cause: np.ndarray, settled: np.ndarray,
              sx_rows: list[pd.DataFrame]) -> None:
        """_truth.csv, _truth_settlement_exceptions.csv and _truth_rejects.csv."""
        g, loan_s, day_dir, rejects = self.g, self.loan_s, self.day_dir, self.rejects
        o = np.lexsort((g.inst_no, g.loan))
        opa = pa.array(o)
        truth_cols = ["loan_id", "installment_no", "status", "root_cause", "amount_due", "amount_settled", "scenario"]
        body = csv_bytes(truth_cols, [
            pc.take(loan_s, opa), decimal_strings(g.inst_no[o]), lookup(STATUSES, status[o]), lookup(CAUSES, cause[o]),
            yuan_strings(g.due[o]), yuan_strings(settled[o]), lookup([s[0] for s in SCENARIOS], g.scen[o])])
        (day_dir / "_truth.csv").write_bytes(body)
        sx_cols = ["gateway", "gateway_txn_id", "instruction_id", "amount", "kind"]
        sx = pd.concat(sx_rows, ignore_index=True) if sx_rows else pd.DataFrame(columns=sx_cols)
        sx.to_csv(day_dir / "_truth_settlement_exceptions.csv", index=False, columns=sx_cols)
        rj_cols = ["file", "line", "record", "column", "value", "reason"]
        pd.DataFrame(rejects, columns=rj_cols).to_csv(day_dir / "_truth_rejects.csv", index=False)
