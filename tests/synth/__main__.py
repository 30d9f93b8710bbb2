"""python -m tests.synth --date D --installments N --out DIR: write a synthetic inbox day (run
from the repository root; `make bench` does)."""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
from collections.abc import Sequence

from tests.synth import GATEWAYS, generate_day


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.synth", description="Write a synthetic inbox day.")
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
