"""Amounts each database must treat alike: a settled total past NUMERIC(14,2) refuses the date on
PostgreSQL and on SQLite (PostgreSQL would raise mid-write, SQLite would store it)."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from tests.integration.helpers import copy_day, query, recon_run

DAY = "2026-11-28"
LARGEST = "999999999999.99"


def test_installment_settled_past_numeric_14_2_refuses_the_date_on_every_database(
        database_url, tmp_path):
    folder = copy_day(DAY, tmp_path / "inbox")
    path = folder / "settlement_UNIONPAY.csv"
    data = path.read_bytes().replace(
        "UPD0104,20261128000001040002,1040.00,SUCCESS".encode(),
        f"UPD0104,20261128000001040002,{LARGEST},SUCCESS".encode())
    data += f"UPD0104B,20261128000001040002,{LARGEST},SUCCESS,00,ok,2026-11-28 09:05:00\n".encode()
    path.write_bytes(data)
    control = folder / "settlement_UNIONPAY.ctl"
    lines = [line for line in control.read_text().splitlines()
             if line.split("=")[0] not in ("records", "amount_total", "sha256")]
    total = sum(Decimal(row.split(",")[2]) for row in data.decode().splitlines()[1:]
                if row.split(",")[3] == "SUCCESS")
    lines += ["records=76", f"amount_total={total:.2f}",
              f"sha256={hashlib.sha256(data).hexdigest()}"]
    control.write_text("\n".join(lines) + "\n")

    result = recon_run(DAY, database_url, tmp_path, inbox=tmp_path / "inbox")

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(message) == 1, result.stderr
    for words in ("installment L0104/1", "1999999999999.98", "NUMERIC(14,2)",
                  "settlement_UNIONPAY.csv line(s) 3, 77"):
        assert words in message[0], message[0]
    assert query(database_url, "SELECT count(*) AS n FROM installment_outcomes")[0].n == 0
    run = query(database_url, "SELECT outcome, exit_code FROM recon_runs")[0]
    assert (run.outcome, run.exit_code) == ("refused", 3)
