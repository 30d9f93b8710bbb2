"""Does what `recon run` stored for a generated day agree with the generator's truth?

    python -m tests.bench.truth --db URL --day-dir bench-data/inbox-1000000/2026-11-27

Compares, for the day's date, every installment's (status, root_cause) in the database with
`_truth.csv`, the settlement exceptions with `_truth_settlement_exceptions.csv` and the rejected
rows (file, line) with `_truth_rejects.csv`. Prints one line per comparison, with up to five
disagreements, and exits 1 if any disagree. `make bench` runs it (in its own process, so the
bench process stays small) after each timed run into PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from recon.db.engine import connect
from recon.sources.stored import read_outcomes


def _agreement(name: str, truth: pd.DataFrame, stored: pd.DataFrame, key: list[str]) -> bool:
    merged = truth.merge(stored, on=key, how="outer", suffixes=("_truth", "_recon"),
                         indicator=True)
    compared = [column for column in truth.columns if column not in key]
    differs = merged["_merge"] != "both"
    for column in compared:
        differs |= merged[f"{column}_truth"] != merged[f"{column}_recon"]
    print(f"against {name}: {len(merged) - int(differs.sum()):,} of {len(merged):,} "
          f"{'+'.join(key)} agree ({len(truth):,} in the truth, {len(stored):,} stored)")
    if differs.any():
        print(merged[differs].head(5).to_string(index=False))
    return not differs.any()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--day-dir", type=Path, required=True)
    options = parser.parse_args(argv)
    day = options.day_dir.name
    text = {"dtype": str, "keep_default_na": False}

    truth = pd.read_csv(options.day_dir / "_truth.csv", **text,
                        usecols=["loan_id", "installment_no", "status", "root_cause"])
    truth["installment_no"] = truth["installment_no"].astype("int64")
    database = connect(options.db)
    try:
        stored, _ = read_outcomes(database, day, block_bytes=16 << 20)
        with database.engine.connect() as connection:
            exceptions = pd.read_sql(sa.text(
                "SELECT gateway_txn_id, kind FROM settlement_exceptions WHERE business_date = :d"),
                connection, params={"d": day})
            rejects = pd.read_sql(sa.text(
                "SELECT file, line FROM input_rejects WHERE business_date = :d "
                "AND line IS NOT NULL"), connection, params={"d": day})
    finally:
        database.dispose()
    stored = stored.astype({"loan_id": str, "status": str, "root_cause": str})
    agree = _agreement("_truth.csv", truth, stored, ["loan_id", "installment_no"])

    truth_exceptions = pd.read_csv(options.day_dir / "_truth_settlement_exceptions.csv", **text,
                                   usecols=["gateway_txn_id", "kind"])
    agree &= _agreement("_truth_settlement_exceptions.csv", truth_exceptions.assign(listed=True),
                        exceptions.astype(str).assign(listed=True), ["gateway_txn_id", "kind"])

    truth_rejects = pd.read_csv(options.day_dir / "_truth_rejects.csv", **text,
                                usecols=["file", "line"])
    agree &= _agreement("_truth_rejects.csv", truth_rejects.assign(listed=True),
                        rejects.astype(str).assign(listed=True), ["file", "line"])
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
