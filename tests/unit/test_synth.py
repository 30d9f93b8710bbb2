"""tests/synth: the synthetic inbox day and its ground truth."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from recon.contract import RootCause, Status
from tests.code_tables import DEFAULT_MAPS
from tests.synth import GATEWAY_SCHEME, GATEWAYS, generate_day

D = dt.date(2026, 11, 27)
N = 3000
INPUTS = ["installments.csv", "bindings.csv", "instructions.csv", "gateway_incidents.csv"]
AMOUNT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    out = tmp_path_factory.mktemp("inbox")
    summary = generate_day(D, N, out, seed=7)
    return summary, out / D.isoformat()


@pytest.fixture(scope="module")
def day_missing(tmp_path_factory):
    out = tmp_path_factory.mktemp("inbox_missing")
    summary = generate_day(D, N, out, seed=7, missing_gateway="LIANLIAN")
    return summary, out / D.isoformat()


# ---- helpers --------------------------------------------------------------------------------

def read_ctl(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="ascii").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            k, v = line.split("=", 1)
            out[k.strip().lower()] = v.strip()
    return out


def read_csv(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
    text = path.read_bytes().decode(encoding)
    text = text.removeprefix("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return [h.strip().lower() for h in rows[0]], rows[1:]


def records(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    header, rows = read_csv(path, encoding)
    return [{h: v.strip() for h, v in zip(header, r)} for r in rows]


def fen(amount: str) -> int:
    return int(Decimal(amount) * 100)


def ts(value: str) -> dt.datetime:
    """Local 'YYYY-MM-DD HH:MM:SS' or ISO 8601 with +08:00 -> naive local time."""
    value = value.replace("T", " ")
    return dt.datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")


def load_valid(day_dir: Path, name: str, encoding: str = "utf-8") -> list[dict[str, str]]:
    """Rows of an input file without the planted bad rows, exact duplicates collapsed."""
    bad = {int(r["record"]) for r in records(day_dir / "_truth_rejects.csv") if r["file"] == name}
    out, seen = [], set()
    for i, r in enumerate(records(day_dir / name, encoding), start=1):
        key = tuple(sorted(r.items()))
        if i not in bad and key not in seen:
            seen.add(key)
            out.append(r)
    return out


# ---- files and control files -------------------------------------------------------------------

def test_files_exist_and_summary_adds_up(day):
    summary, d = day
    for name in INPUTS + ["_truth.csv", "_truth_settlement_exceptions.csv", "_truth_rejects.csv"]:
        assert (d / name).is_file(), name
    for gw in GATEWAYS:
        assert (d / f"settlement_{gw}.csv").is_file() and (d / f"settlement_{gw}.ctl").is_file()
    assert len(GATEWAYS) == 3 and {GATEWAY_SCHEME[g] for g in GATEWAYS} == {"iso8583", "iso20022"}
    assert summary.installments == N
    for name, n_rows in summary.rows.items():
        enc = read_ctl(d / name.replace(".csv", ".ctl")).get("encoding", "utf-8") if name.startswith("settlement_") else "utf-8"
        assert len(read_csv(d / name, enc)[1]) == n_rows, name
        assert summary.bad_rows[name] <= 0.005 * n_rows, name
    assert len(records(d / "_truth.csv")) == N
    # about 1.1 instructions and ~1 settlement row per installment
    assert 1.0 < summary.rows["instructions.csv"] / N < 1.25
    assert 0.9 < sum(v for k, v in summary.rows.items() if k.startswith("settlement_")) / N < 1.25


def test_ctl_agrees_with_csv_bytes(day):
    _, d = day
    for gw in GATEWAYS:
        ctl = read_ctl(d / f"settlement_{gw}.ctl")
        raw = (d / f"settlement_{gw}.csv").read_bytes()
        assert ctl["gateway"] == gw and ctl["business_date"] == D.isoformat()
        assert ctl["scheme"] == GATEWAY_SCHEME[gw]
        assert ctl["sha256"] == hashlib.sha256(raw).hexdigest()
        header, rows = read_csv(d / f"settlement_{gw}.csv", ctl.get("encoding", "utf-8"))
        assert int(ctl["records"]) == len(rows)
        st, am = header.index("status"), header.index("amount")
        total = sum(Decimal(r[am].strip()) for r in rows
                    if r[st].strip().upper() == "SUCCESS" and AMOUNT.match(r[am].strip()))
        assert ctl["amount_total"] == f"{total:.2f}"
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}", ctl["amount_total"])


# ---- truth ------------------------------------------------------------------------------------

def test_every_status_and_root_cause_appears(day, day_missing):
    truth = records(day[1] / "_truth.csv")
    assert {r["status"] for r in truth} == {s.value for s in Status} - {"pending"}
    assert {r["root_cause"] for r in truth} - {""} == {c.value for c in RootCause} - {"settlement_pending"}
    assert all((r["root_cause"] == "") == (r["status"] in ("paid", "overpaid")) for r in truth)
    truth_m = records(day_missing[1] / "_truth.csv")
    assert {r["status"] for r in truth_m} == {s.value for s in Status}
    assert {r["root_cause"] for r in truth_m} - {""} == {c.value for c in RootCause}
    assert day[0].root_cause_counts == {k: v for k, v in
                                        _count(truth, "root_cause").items()}
    paid_first = day[0].scenario_counts["paid_first_try"] / N
    assert 0.65 < paid_first < 0.75


def _count(rows, col):
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r[col]] += 1
    return dict(out)


def test_ids_keep_leading_zeros(day):
    _, d = day
    inst = records(d / "installments.csv")
    loans = [r["loan_id"] for r in inst if r["loan_id"]]
    assert all(len(x) == 10 and x.isdigit() for x in loans)
    assert sum(x.startswith("000") for x in loans) > 0.9 * len(loans)
    truth = records(d / "_truth.csv")
    assert {(r["loan_id"], r["installment_no"]) for r in truth} == {
        (r["loan_id"], r["installment_no"]) for r in load_valid(d, "installments.csv")}
    ins = load_valid(d, "instructions.csv")
    assert all(len(r["instruction_id"]) == 20 and r["instruction_id"].isdigit() for r in ins)
    binds = load_valid(d, "bindings.csv")
    assert all(len(r["binding_id"]) == 16 and r["binding_id"].startswith("0") for r in binds)
    up = records(d / "settlement_UNIONPAY.csv", "gb18030")
    assert all(r["gateway_txn_id"] == "" or r["gateway_txn_id"].startswith("0") for r in up)


def test_deterministic_for_a_seed(tmp_path, day):
    _, d = day
    generate_day(D, N, tmp_path / "a", seed=7)
    other = generate_day(D, N, tmp_path / "b", seed=8)
    for p in sorted(d.iterdir()):
        assert (tmp_path / "a" / D.isoformat() / p.name).read_bytes() == p.read_bytes(), p.name
    assert (other.day_dir / "instructions.csv").read_bytes() != (d / "instructions.csv").read_bytes()


def test_missing_gateway_changes_only_that_gateway(day, day_missing):
    (_, d), (summary, m) = day, day_missing
    assert not (m / "settlement_LIANLIAN.csv").exists() and not (m / "settlement_LIANLIAN.ctl").exists()
    for name in INPUTS + ["settlement_UNIONPAY.csv", "settlement_CNAPS_DD.csv", "settlement_CNAPS_DD.ctl"]:
        assert (m / name).read_bytes() == (d / name).read_bytes(), name
    before = {(r["loan_id"], r["installment_no"]): r for r in records(d / "_truth.csv")}
    pending = [r for r in records(m / "_truth.csv") if r["status"] == "pending"]
    assert pending and all(r["root_cause"] == "settlement_pending" for r in pending)
    assert all(before[(r["loan_id"], r["installment_no"])]["status"] != "pending" for r in pending)
    assert summary.missing_gateway == "LIANLIAN"


def test_bad_rows_are_where_the_truth_says(day):
    summary, d = day
    rej = records(d / "_truth_rejects.csv")
    assert {name: n for name, n in _count(rej, "file").items()} == {k: v for k, v in summary.bad_rows.items() if v}
    for r in rej:
        enc = "gb18030" if r["file"] == "settlement_UNIONPAY.csv" else "utf-8"
        text = (d / r["file"]).read_bytes().decode(enc).removeprefix("\ufeff")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in next(reader)]
        for i, row in enumerate(reader, start=1):
            if i == int(r["record"]):
                start_line = reader.line_num - sum(v.count("\n") for v in row)
                break
        assert start_line == int(r["line"]), r
        cells = [row[header.index(c)].strip() for c in r["column"].split("/")]  # loan_id/installment_no
        assert "/".join(cells) == r["value"], r


def test_no_bad_rows_when_disabled(tmp_path):
    s = generate_day(D, 500, tmp_path, seed=1, bad_rows=False, format_variations=False)
    assert not any(s.bad_rows.values()) and not any(s.duplicate_rows.values())
    assert len(records(s.day_dir / "_truth_rejects.csv")) == 0
    header, _ = read_csv(s.day_dir / "settlement_UNIONPAY.csv")
    assert header == ["gateway_txn_id", "instruction_id", "amount", "status", "response_code", "response_msg", "txn_time"]


# ---- the truth follows from the files (section 3, evaluated independently) --------------------


def evaluate(d: Path) -> tuple[dict, set]:
    inst = load_valid(d, "installments.csv")
    ins = load_valid(d, "instructions.csv")
    binds = defaultdict(list)
    for b in load_valid(d, "bindings.csv"):
        binds[b["loan_id"]].append((ts(b["bound_at"]), ts(b["unbound_at"]) if b["unbound_at"] else None))
    incidents = [(r["gateway"].upper(), ts(r["started_at"]), ts(r["ended_at"]))
                 for r in records(d / "gateway_incidents.csv")]
    arrived = set()
    succ, fail = defaultdict(list), defaultdict(list)
    for gw in GATEWAYS:
        if not (d / f"settlement_{gw}.ctl").exists():
            continue
        ctl = read_ctl(d / f"settlement_{gw}.ctl")
        arrived.add(gw)
        for r in load_valid(d, f"settlement_{gw}.csv", ctl.get("encoding", "utf-8")):
            r["_scheme"], r["_gw"] = ctl["scheme"], gw
            (succ if r["status"].upper() == "SUCCESS" else fail)[r["instruction_id"]].append(r)
    by_key = defaultdict(list)
    for i in ins:
        by_key[(i["loan_id"], i["installment_no"])].append(i)

    def active(loan, t):
        return any(b <= t and (u is None or u > t) for b, u in binds[loan])

    out = {}
    for r in inst:
        key = (r["loan_id"], r["installment_no"])
        mine = by_key[key]
        settled = sum(fen(s["amount"]) for i in mine for s in succ[i["instruction_id"]])
        sent = [i for i in mine if i["sent_at"]]
        not_ok = [i for i in sent if not succ[i["instruction_id"]]]
        if not_ok:
            dec = max(not_ok, key=lambda i: (ts(i["sent_at"]), i["instruction_id"]))
            rows = fail[dec["instruction_id"]]
            if dec["gateway"].upper() not in arrived:
                cause = "settlement_pending"
            elif rows:
                last = max(rows, key=lambda s: (ts(s["txn_time"]), s["gateway_txn_id"]))
                cause = DEFAULT_MAPS[last["_scheme"]].get(last["response_code"].strip().upper(), "unclassified")
            elif any(g == dec["gateway"].upper() and a <= ts(dec["sent_at"]) <= b for g, a, b in incidents):
                cause = "gateway_outage"
            else:
                cause = "no_settlement_record"
        elif mine and not sent:
            if any(i["confirm_required"].lower() == "true" and i["confirm_status"].upper() != "CONFIRMED" for i in mine):
                cause = "instruction_not_confirmed"
            else:
                latest = max(mine, key=lambda i: (ts(i["created_at"]), i["instruction_id"]))
                cause = "not_instructed" if active(r["loan_id"], ts(latest["created_at"])) else "card_unbound"
        elif not mine:
            midnight = dt.datetime.combine(D, dt.time())
            cause = "not_instructed" if active(r["loan_id"], midnight) else "card_unbound"
        else:
            cause = "unclassified"
        due = fen(r["amount_due"])
        status = ("overpaid" if settled > due else "paid" if settled == due else
                  "pending" if cause == "settlement_pending" else "partially_paid" if settled else "unpaid")
        out[key] = (status, "" if status in ("paid", "overpaid") else cause)
    ids = {i["instruction_id"] for i in ins}
    exceptions = set()
    for iid, rows in succ.items():
        rows = sorted(rows, key=lambda s: (ts(s["txn_time"]), s["gateway_txn_id"]))
        for k, s in enumerate(rows):
            if iid not in ids:
                exceptions.add((s["_gw"], s["gateway_txn_id"], "orphan_settlement"))
            elif k:
                exceptions.add((s["_gw"], s["gateway_txn_id"], "duplicate_debit"))
    return out, exceptions


@pytest.mark.parametrize("which", ["day", "day_missing"])
def test_truth_follows_from_the_files(which, request):
    _, d = request.getfixturevalue(which)
    expected, exceptions = evaluate(d)
    truth = {(r["loan_id"], r["installment_no"]): (r["status"], r["root_cause"]) for r in records(d / "_truth.csv")}
    assert truth.keys() == expected.keys()
    wrong = {k: (truth[k], expected[k]) for k in truth if truth[k] != expected[k]}
    assert not wrong, list(wrong.items())[:5]
    sx = {(r["gateway"], r["gateway_txn_id"], r["kind"]) for r in records(d / "_truth_settlement_exceptions.csv")}
    assert sx == exceptions
    assert {k for _, _, k in sx} == {"orphan_settlement", "duplicate_debit"}
