"""Properties of CONTRACT section 2.6 over generated files: nothing is lost, nothing is invented.

1. Every data record of a file is accounted for exactly once: used, collapsed as an exact
   duplicate, or rejected with its own line number; rows_read = used + collapsed + rejected.
2. Adding invalid rows around valid ones changes nothing about the valid rows' outcomes.

Files are built as bytes and go through the real reader (recon.sources.csvfile) and row rules
(recon.validate), then recon.classify; no disk, no database.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon import filerules
from recon import validate as v
from recon.classify import classify
from recon.codes import CodeMap
from recon.config import Settings
from recon.sources.csvfile import read_csv
from recon.arrival import gateway_key

D = dt.date(2026, 11, 27)
TZ = ZoneInfo("Asia/Shanghai")
CONTEXT = v.RuleContext(D, TZ)
MAX_FIELD_CHARS = 40
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
# Each example of the outcome property reads eight files and classifies twice (about a second).
OUTCOME_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=10)
# RECON_CSV_BLOCK_BYTES, as a run reads it: `make test` runs these properties a second time with
# blocks small enough that every generated file comes back in several chunks.
BLOCK_BYTES = Settings().csv_block_bytes


@dataclass(frozen=True)
class Record:
    """One record as written: its bytes, and what the contract says must become of it."""

    data: bytes
    fate: str  # "used", "collapsed", "rejected", or "blank" (a blank line is no record)


def csv_line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def build_file(columns: list[str], records: list[Record]) -> tuple[bytes, dict[int, str]]:
    """The file's bytes, and the fate of the record starting on each physical line."""
    data = csv_line(columns)
    fates: dict[int, str] = {}
    line = 2
    for record in records:
        if record.fate != "blank":
            fates[line] = record.fate
        line += record.data.count(b"\n")
        data += record.data
    return data, fates


def read(name: str, data: bytes, spec: v.FileSpec) -> v.Validated:
    raw = read_csv(None, name, data=data, max_bytes=1 << 24, max_field_chars=MAX_FIELD_CHARS,
                   max_columns=64, block_bytes=BLOCK_BYTES)
    return filerules.validate(raw, spec, CONTEXT)


# --- breaking a valid row -------------------------------------------------------------------

# Per file, a column and a value that breaks its rule whatever the rest of the row holds.
RULE_BREAKERS = {
    "installments.csv": [("loan_id", ""), ("installment_no", "0"), ("due_date", "2026-11-28"),
                         ("amount_due", "-1.00"), ("amount_due", "1.005"), ("currency", "USD")],
    "bindings.csv": [("binding_id", ""), ("status", "GONE"), ("bound_at", "yesterday")],
    "instructions.csv": [("instruction_id", ""), ("amount", "0"), ("created_at", "2026-13-01"),
                         ("confirm_required", "maybe"), ("sent_at", "soon")],
    "settlement": [("gateway_txn_id", ""), ("amount", "abc"), ("status", "REVERSED"),
                   ("txn_time", "")],
}


def broken_record(draw, name: str, columns: list[str], template: dict[str, str]) -> Record:
    """A record that must be rejected: a broken rule, a wrong field count, bad bytes, a huge field."""
    kind = draw(st.sampled_from(["rule", "rule", "extra_field", "missing_field", "bad_bytes",
                                 "huge_field"]))
    values = [template[column] for column in columns]
    if kind == "rule":
        column, bad = draw(st.sampled_from(RULE_BREAKERS[name]))
        values[columns.index(column)] = bad
        return Record(csv_line(values), "rejected")
    if kind == "extra_field":
        return Record(csv_line(values + ["extra"]), "rejected")
    if kind == "missing_field":
        return Record(csv_line(values[:-1]), "rejected")
    if kind == "bad_bytes":
        line = csv_line(values)
        return Record(line[:1] + b"\xff\xfe" + line[1:], "rejected")
    values[draw(st.integers(0, len(values) - 1))] = "x" * (MAX_FIELD_CHARS + 1)
    return Record(csv_line(values), "rejected")


# --- property 1: accounting -------------------------------------------------------------------

INSTALLMENT_COLUMNS = v.INSTALLMENTS.columns


def installment(number: int, amount: str = "100.00") -> dict[str, str]:
    return {"loan_id": f"L{number:04d}", "installment_no": "1", "borrower_id": f"B{number}",
            "due_date": D.isoformat(), "amount_due": amount, "currency": "CNY"}


@st.composite
def installments_file(draw):
    """installments.csv with unique valid rows, exact duplicates, conflicting keys and junk."""
    records: list[Record] = []
    loans = draw(st.integers(0, 8))
    for number in range(loans):
        row = installment(number)
        records.append(Record(csv_line([row[c] for c in INSTALLMENT_COLUMNS]), "used"))
        extra = draw(st.sampled_from(["none", "none", "duplicate", "conflict"]))
        if extra == "duplicate":
            padded = [f" {row[c]} " for c in INSTALLMENT_COLUMNS]  # values are trimmed
            records.append(Record(csv_line(padded), "collapsed"))
        elif extra == "conflict":
            records[-1] = Record(records[-1].data, "rejected")
            other = installment(number, "999.99")
            records.append(Record(csv_line([other[c] for c in INSTALLMENT_COLUMNS]), "rejected"))
    for _ in range(draw(st.integers(0, 6))):
        template = installment(draw(st.integers(0, 99)))
        records.insert(draw(st.integers(0, len(records))),
                       broken_record(draw, "installments.csv", INSTALLMENT_COLUMNS, template))
    for _ in range(draw(st.integers(0, 2))):
        records.insert(draw(st.integers(0, len(records))), Record(b"\n", "blank"))
    return records


@PROPERTY_SETTINGS
@given(installments_file())
def test_every_record_is_used_collapsed_or_rejected_exactly_once(records):
    data, fates = build_file(INSTALLMENT_COLUMNS, records)
    validated = read("installments.csv", data, v.INSTALLMENTS)

    assert validated.rows_read == len(fates)
    assert validated.rows_read == (validated.rows_used + validated.duplicates_collapsed
                                   + validated.rows_rejected)
    rejected_lines = validated.rejects["line"].astype(int).tolist()
    assert sorted(rejected_lines) == sorted(line for line, fate in fates.items()
                                            if fate == "rejected")
    assert sorted(validated.valid["line"].tolist()) == sorted(
        line for line, fate in fates.items() if fate == "used")
    assert validated.duplicates_collapsed == sum(fate == "collapsed" for fate in fates.values())
    assert (validated.rejects["file"] == "installments.csv").all()
    assert validated.rejects["reason"].str.len().gt(0).all()


# --- property 2: invalid rows change no valid outcome -------------------------------------------

GATEWAYS = ("UNIONPAY", "CNAPS_DD")
SCHEMES = {"UNIONPAY": "iso8583", "CNAPS_DD": "iso20022"}
FAIL_CODES = {"UNIONPAY": ["51", "62", "14", "05", "99"], "CNAPS_DD": ["AM04", "AC06", "XX99"]}


@st.composite
def day_world(draw):
    """A small valid day: installments, bindings, instructions and settlement rows that match."""
    files: dict[str, list[dict[str, str]]] = {name: [] for name in
                                              ("installments.csv", "bindings.csv",
                                               "instructions.csv", "settlement")}
    for number in range(draw(st.integers(1, 5))):
        due = draw(st.sampled_from(["100.00", "250.5"]))
        files["installments.csv"].append(installment(number, due))
        loan = f"L{number:04d}"
        if draw(st.booleans()):
            active = draw(st.booleans())
            files["bindings.csv"].append({
                "binding_id": f"BND{number}", "loan_id": loan, "account_token": f"tok{number}",
                "card_no_masked": "622202******1234", "bank_code": "ICBC",
                "status": "ACTIVE" if active else "UNBOUND",
                "bound_at": "2025-01-01 00:00:00",
                "unbound_at": "" if active else "2026-01-01 00:00:00"})
        for attempt in range(draw(st.integers(0, 2))):
            instruction_id = f"2026112700{number:04d}{attempt:04d}"
            gateway = draw(st.sampled_from(GATEWAYS))
            sent = draw(st.booleans())
            files["instructions.csv"].append({
                "instruction_id": instruction_id, "loan_id": loan, "installment_no": "1",
                "gateway": gateway, "amount": due, "created_at": "2026-11-27 06:00:00",
                "confirm_required": "false", "confirm_status": "NOT_REQUIRED",
                "sent_at": f"2026-11-27 0{8 + attempt}:00:00" if sent else ""})
            if sent:
                answer = draw(st.sampled_from(["none", "success", "failed"]))
                if answer != "none":
                    files["settlement"].append({
                        "gateway_txn_id": f"T{instruction_id}", "instruction_id": instruction_id,
                        "amount": due, "status": answer.upper(),
                        "response_code": "00" if answer == "success"
                        else draw(st.sampled_from(FAIL_CODES[gateway])),
                        "response_msg": "余额不足, \"retry\"", "txn_time": "2026-11-27 12:00:00"})
    return files


SPECS = {"installments.csv": v.INSTALLMENTS, "bindings.csv": v.BINDINGS,
         "instructions.csv": v.INSTRUCTIONS, "settlement": v.SETTLEMENT}
OUTCOME_COLUMNS = ["loan_id", "installment_no", "borrower_id", "amount_due", "status",
                   "root_cause", "amount_settled", "amount_outstanding", "attempts", "gateway",
                   "response_code", "response_msg"]


def decide(files: dict[str, list[Record]]):
    """The valid rows of every file, and the outcomes and settlement exceptions decided on them."""
    frames = {}
    for name, records in files.items():
        data, _ = build_file(SPECS[name].columns, records)
        frames[name] = read(name, data, SPECS[name]).valid
    settlements = frames["settlement"].copy()
    # One file per gateway, as the inbox would have: the gateway of the instruction answered.
    gateway_of = dict(zip(frames["instructions.csv"]["instruction_id"],
                          frames["instructions.csv"]["gateway"]))
    settlements["gateway"] = settlements["instruction_id"].map(gateway_of).fillna("UNIONPAY")
    settlements["scheme"] = settlements["gateway"].map(SCHEMES)
    settlements["file"] = "settlement_" + settlements["gateway"] + ".csv"
    incidents = pd.DataFrame({"gateway": pd.Series(dtype="str"),
                              "started_at": pd.Series(dtype="datetime64[ns, UTC]"),
                              "ended_at": pd.Series(dtype="datetime64[ns, UTC]"),
                              "description": pd.Series(dtype="str"),
                              "line": pd.Series(dtype="int64")})
    decisions = classify(frames["installments.csv"], frames["bindings.csv"],
                         frames["instructions.csv"], settlements, incidents,
                         {gateway_key(gateway) for gateway in GATEWAYS}, CodeMap(), D, TZ)
    outcomes = decisions.outcomes[OUTCOME_COLUMNS].sort_values(["loan_id", "installment_no"])
    exceptions = decisions.settlement_exceptions[["gateway_txn_id", "instruction_id", "amount",
                                                  "kind"]].sort_values("gateway_txn_id")
    valid_rows = {name: frame.drop(columns="line").reset_index(drop=True)
                  for name, frame in frames.items()}
    return valid_rows, outcomes.reset_index(drop=True), exceptions.reset_index(drop=True)


@st.composite
def world_with_junk(draw):
    world = draw(day_world())
    clean = {name: [Record(csv_line([row[c] for c in SPECS[name].columns]), "used")
                    for row in rows] for name, rows in world.items()}
    dirty = {}
    for name, records in clean.items():
        records = list(records)
        columns = SPECS[name].columns
        for _ in range(draw(st.integers(0, 4))):
            # Junk reuses the keys of valid rows where it can: it must still change nothing.
            template = draw(st.sampled_from(world[name])) if world[name] else \
                dict.fromkeys(columns, "x")
            records.insert(draw(st.integers(0, len(records))),
                           broken_record(draw, name, columns, template))
        dirty[name] = records
    return clean, dirty


@OUTCOME_SETTINGS
@given(world_with_junk())
def test_invalid_rows_around_valid_ones_change_no_outcome(worlds):
    clean, dirty = worlds
    clean_rows, clean_outcomes, clean_exceptions = decide(clean)
    dirty_rows, dirty_outcomes, dirty_exceptions = decide(dirty)
    for name in SPECS:
        pd.testing.assert_frame_equal(dirty_rows[name], clean_rows[name], obj=name)
    pd.testing.assert_frame_equal(dirty_outcomes, clean_outcomes)
    pd.testing.assert_frame_equal(dirty_exceptions, clean_exceptions)
