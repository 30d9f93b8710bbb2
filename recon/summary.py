"""The short human summary printed at the end of each date's run."""

from __future__ import annotations

from recon.classify import fmt_yuan
from recon.contract import ExitCode

import pandas as pd


def yuan(fen: int) -> str:
    return fmt_yuan(pd.Series([fen])).iloc[0]


def render_summary(report) -> str:
    day = report.business_date.isoformat()
    lines = [f"recon {day}: {report.outcome} (exit {report.exit_code}), run {report.run_id}"]
    if report.exit_code == ExitCode.INPUT_REFUSED:
        return "\n".join(lines)
    total = sum(report.status_counts.values())
    statuses = ", ".join(f"{name} {count:,}" for name, count in
                         sorted(report.status_counts.items(), key=lambda item: -item[1]))
    lines.append(f"  installments {total:,}: {statuses}")
    if report.cause_counts:
        causes = ", ".join(f"{name} {count:,}" for name, count in
                           sorted(report.cause_counts.items(), key=lambda item: -item[1]))
        lines.append(f"  root causes: {causes}")
    lines.append(f"  amount due {yuan(report.amount_due_fen)}, outstanding "
                 f"{yuan(report.amount_outstanding_fen)} CNY")
    if report.settlement_exceptions:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(report.settlement_exceptions.items()))
        lines.append(f"  settlement exceptions: {kinds}")
    lines.append(f"  rows rejected {report.rows_rejected:,}, duplicates collapsed "
                 f"{report.duplicates_collapsed:,}")
    for entry in report.not_arrived:
        lines.append(f"  NOT ARRIVED {entry}")
    if report.out_dir:
        lines.append(f"  reports in {report.out_dir}")
    return "\n".join(lines)
