"""What changed since the previous completed run of a date: the run diff. Pure and vectorised.

Both sides are frames of installment outcomes (`loan_id`, `installment_no`, `status`,
`root_cause`; a missing root cause is an empty string). An installment *changed* when its status
or its root cause differs, or when it is on one side only (`absent` on the other: its row was
rejected in one of the runs, say).

A transition is named `old -> new`, each side `status (root_cause)`; the root cause is left out
where the status says it all: `paid`/`overpaid` have none and `pending` is always
`settlement_pending`. So a late settlement file reads `pending -> paid: 1,518` and
`pending -> unpaid (insufficient_balance): 12`, and a confirmed incident reads
`unpaid (no_settlement_record) -> unpaid (gateway_outage): 40`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recon.contract import Status
from recon.ids import installment_keys, shared_codes

KEY = ["loan_id", "installment_no"]
ABSENT = "absent"
CHANGES_COLUMNS = ["business_date", "loan_id", "installment_no", "old_status", "old_root_cause",
                   "new_status", "new_root_cause"]
# The root cause is implied by these statuses, so transition names leave it out.
CAUSE_IMPLIED = {Status.PAID.value, Status.OVERPAID.value, Status.PENDING.value}


def _outcome_text(frame: pd.DataFrame) -> pd.Series:
    return frame["status"].astype("str") + "\x1f" + frame["root_cause"].fillna("").astype("str")


def outcome_changes(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Installments whose status or root cause differ between the runs, ordered by key.

    Columns: loan_id, installment_no, old_status, old_root_cause, new_status, new_root_cause
    (`absent` status and empty cause for a side the installment is missing from). With no
    previous outcomes (a date's first run) there is nothing to compare: no changes.
    Keys and outcomes are matched as integer codes: string joins cost seconds per million rows.
    """
    if previous.empty:
        return pd.DataFrame({column: pd.Series(dtype="int64" if column == "installment_no"
                                               else "str") for column in CHANGES_COLUMNS[1:]})
    (old_loan, new_loan), _ = shared_codes(previous["loan_id"], current["loan_id"])
    old_key = installment_keys(old_loan, previous["installment_no"].astype("int64"))
    new_key = installment_keys(new_loan, current["installment_no"].astype("int64"))
    (old_outcome, new_outcome), _ = shared_codes(_outcome_text(previous), _outcome_text(current))

    old_row_of_new = pd.Index(old_key).get_indexer(new_key)
    matched = old_row_of_new >= 0
    changed_new = np.flatnonzero(~matched)  # new installments
    both = np.flatnonzero(matched)
    differs = both[old_outcome[old_row_of_new[both]] != new_outcome[both]]
    gone = np.flatnonzero(pd.Index(new_key).get_indexer(old_key) < 0)

    def side(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
        picked = frame.iloc[rows]
        return pd.DataFrame({"loan_id": picked["loan_id"].astype("str").to_numpy(),
                             "installment_no": picked["installment_no"].astype("int64").to_numpy(),
                             "status": picked["status"].astype("str").to_numpy(),
                             "root_cause": picked["root_cause"].fillna("").astype("str")
                             .to_numpy()})

    def absent(keys: pd.DataFrame) -> pd.DataFrame:
        return keys.assign(status=ABSENT, root_cause="")

    new_side = side(current, np.concatenate([differs, changed_new]))
    old_side = pd.concat([side(previous, old_row_of_new[differs]),
                          absent(new_side.iloc[len(differs):][KEY])], ignore_index=True)
    gone_side = side(previous, gone)
    old_side = pd.concat([old_side, gone_side], ignore_index=True)
    new_side = pd.concat([new_side, absent(gone_side[KEY])], ignore_index=True)
    changes = pd.DataFrame({
        "loan_id": new_side["loan_id"], "installment_no": new_side["installment_no"],
        "old_status": old_side["status"], "old_root_cause": old_side["root_cause"],
        "new_status": new_side["status"], "new_root_cause": new_side["root_cause"],
    })
    return changes.sort_values(KEY, kind="stable").reset_index(drop=True)


def outcome_name(status: pd.Series, root_cause: pd.Series) -> pd.Series:
    """`status (root_cause)`, or just `status` where the status implies the cause."""
    with_cause = (root_cause != "") & ~status.isin(CAUSE_IMPLIED)
    return status.where(~with_cause, status + " (" + root_cause + ")")


def transition_counts(changes: pd.DataFrame) -> dict[str, int]:
    """`{"pending -> paid": 1518, ...}`, most frequent first (ties by name)."""
    if changes.empty:
        return {}
    names = (outcome_name(changes["old_status"], changes["old_root_cause"]) + " -> "
             + outcome_name(changes["new_status"], changes["new_root_cause"]))
    counts = names.value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {str(name): int(count) for name, count in ordered}
