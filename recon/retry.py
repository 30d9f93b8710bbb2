"""CONTRACT section 7: the retry plan, one next action per installment not fully collected.

Pure and vectorised: the outcomes of classify, the day's bindings, incidents and duplicate
debits, the attempts of earlier dates and the policy go in; the plan's rows come out. "Now" (the
moment the plan is made) is an argument, so a test decides what time it is.

Actions: `retry` (when, through which gateway and binding, for what amount),
`retry_other_gateway`, `query_gateway` (the outcome of an attempt is unknown: never debit again
before the gateway answers), `wait_for_file` (a settlement file has not arrived),
`wait_for_borrower` (a new binding or a confirmation is needed first), `refund` (overpaid, or a
duplicate debit: the amount to return) and `none`. Which applies, the first that does:

1. overpaid -> refund of settled - due;
2. an attempt whose gateway's file has not arrived (settlement_pending, or another attempt of the
   installment) -> wait_for_file;
3. an attempt with no settlement row in an arrived file and outside an incident
   (no_settlement_record, or another attempt) -> query_gateway;
4. the card was rebound after the failure (a binding active now that was bound after the failed
   attempt, the unsent instruction or the start of D) and the cause's policy retries on a new
   binding -> retry on that binding;
5. the root cause's policy: its action, with an attempt cap over the installment's life (D's
   sent attempts plus those stored for earlier dates): a debit past the cap becomes `none`.
   gateway_outage's `retry_other_gateway` falls back to `retry` on the same gateway after the
   incident when no other gateway's file arrived clean.

Each duplicate debit (an extra SUCCESS row of one instruction) is one `refund` row of its own,
subject `duplicate_debit`, with its instruction_id, gateway_txn_id and amount.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from recon.contract import RETRY_PLAN_COLUMNS, RootCause, SettlementExceptionKind, Status
from recon.formatting import fmt_yuan
from recon.frames import sorted_ranks, text_series
from recon.ids import isin, nanos
from recon.retry_policy import RetryPolicy
from recon.retry_reasons import format_local, reasons

R = RootCause
DEBITS = ("retry", "retry_other_gateway")
REBIND_MAX_ATTEMPTS = 3  # a rebinding retry of a cause without max_attempts


# --- the plan -----------------------------------------------------------------------------------

def _local_ns(moments_ns: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """UTC nanoseconds -> the same instants as naive local wall-clock nanoseconds."""
    utc = pd.to_datetime(moments_ns, utc=True)
    return utc.tz_convert(tz).tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)


def _utc_ns(local_ns: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    local = pd.to_datetime(local_ns).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC").to_numpy("datetime64[ns]").view(np.int64) \
        if hasattr(local, "to_numpy") else np.asarray(local).view(np.int64)


DAY_NS = 86_400 * 1_000_000_000


def _clock_ns(clock: dt.time) -> int:
    return ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 1_000_000_000


def earliest(after_ns: np.ndarray, at: np.ndarray, window: tuple[dt.time, dt.time],
             tz: ZoneInfo) -> np.ndarray:
    """Per row, the first moment not before `after_ns` (UTC ns) when a debit may go: the next
    time the local clock reads `at` (ns into the day; -1 for none), else the next moment inside
    the daily debit window."""
    local = _local_ns(after_ns, tz)
    midnight = local - local % DAY_NS
    into_day = local - midnight
    start, end = _clock_ns(window[0]), _clock_ns(window[1])
    windowed = np.where(into_day < start, midnight + start,
                        np.where(into_day > end, midnight + DAY_NS + start, local))
    at_clock = np.where(into_day <= at, midnight + at, midnight + DAY_NS + at)
    return _utc_ns(np.where(at >= 0, at_clock, windowed), tz)


def rebound_bindings(outcomes: pd.DataFrame, bindings: pd.DataFrame, loan_of_binding: np.ndarray,
                     failed_at_ns: np.ndarray, now_ns: int) -> np.ndarray:
    """Per outcome row, the binding row the card was rebound to after `failed_at_ns` (a binding
    of the loan active now and bound after that moment; the latest bound if several), or -1."""
    found = np.full(len(outcomes), -1, dtype=np.int64)
    if not len(bindings) or not len(outcomes):
        return found
    bound = nanos(bindings["bound_at"])
    unbound = nanos(bindings["unbound_at"])
    open_ = bindings["unbound_at"].isna().to_numpy()
    active_now = (bound <= now_ns) & (open_ | (unbound > now_ns)) & (loan_of_binding >= 0)
    rows = np.flatnonzero(active_now)
    if not rows.size:
        return found
    candidates = pd.DataFrame({"loan": loan_of_binding[rows], "binding": rows,
                               "bound": bound[rows]})
    probe = pd.DataFrame({"loan": outcomes["loan_code"].to_numpy(np.int64),
                          "row": np.arange(len(outcomes)), "failed": failed_at_ns})
    joined = probe.merge(candidates, on="loan", how="inner")
    joined = joined[joined["bound"] > joined["failed"]].sort_values(["row", "bound", "binding"])
    latest = joined.drop_duplicates("row", keep="last")
    found[latest["row"].to_numpy()] = latest["binding"].to_numpy()
    return found


def incident_ends(gateways: pd.Series, sent_at: pd.Series, incidents: pd.DataFrame) -> np.ndarray:
    """Per attempt, the end (UTC ns) of the latest-ending incident of its gateway covering
    `sent_at`; the smallest int64 where none does."""
    ends = np.full(len(gateways), np.iinfo(np.int64).min, dtype=np.int64)
    if incidents.empty or gateways.empty:
        return ends
    key = gateways.str.upper().to_numpy(object)
    sent = nanos(sent_at)
    for incident in incidents.itertuples(index=False):
        covered = ((key == str(incident.gateway).upper()) & (sent >= incident.started_at.value)
                   & (sent <= incident.ended_at.value))
        ends = np.where(covered, np.maximum(ends, incident.ended_at.value), ends)
    return ends


# The outcome columns the plan reads (only these are copied for the rows not paid).
PLAN_INPUTS = ["loan_id", "installment_no", "borrower_id", "loan_code", "status", "root_cause",
               "amount_due", "amount_settled", "days_past_due", "attempts",
               "attempts_awaiting_file", "attempts_unanswered", "attempts_pending", "gateway",
               "deciding_gateway", "rule",
               "deciding_sent_at", "latest_created_at"]


def plan_retries(outcomes: pd.DataFrame, *, bindings: pd.DataFrame, loan_of_binding: np.ndarray,
                 incidents: pd.DataFrame, duplicates: pd.DataFrame, instructions: pd.DataFrame,
                 earlier_attempts: pd.DataFrame, clean_gateways: list[str],
                 policy: RetryPolicy, business_date: dt.date, now: dt.datetime,
                 tz: ZoneInfo) -> pd.DataFrame:
    """The plan's rows as text (RETRY_PLAN_COLUMNS), installments first, then duplicate debits.

    `outcomes`: classify's. `duplicates`: settlement exception rows of kind duplicate_debit
    (amount in fen). `earlier_attempts`: loan_id, installment_no, attempts stored for dates
    before D. `clean_gateways`: gateways whose file of D arrived and that show no outage,
    preferred first. `now`: an aware datetime, when the plan is made.
    """
    now_ns = pd.Timestamp(now).tz_convert("UTC").value
    rows = outcomes.loc[(outcomes["status"] != Status.PAID.value).to_numpy(), PLAN_INPUTS]
    n = len(rows)
    # Text columns stay Arrow-backed: compared column-wise, never turned into Python objects.
    status, cause = rows["status"], rows["root_cause"]
    # Policy per row, through the handful of causes (no per-row Python).
    causes = {cause_.value: policy.causes[cause_] for cause_ in RootCause}

    cause_code, cause_names = pd.factorize(cause)
    cause_names = [str(name) for name in cause_names]

    def by_cause(values: dict, default, dtype):
        """A per-cause value for every row, through the handful of causes."""
        if not n:
            return np.zeros(0, dtype=dtype)
        # Looked up once per distinct cause, then spread by integer code.
        per_code = np.array([values.get(name, default) for name in cause_names] + [default],
                            dtype=dtype)
        return per_code[cause_code]

    action = by_cause({name: entry.action for name, entry in causes.items()}, "none", object)
    at = by_cause({name: _clock_ns(entry.at) for name, entry in causes.items()
                   if entry.at is not None}, -1, np.int64)
    delay_ns = by_cause({name: int(entry.delay_hours * 3600e9) for name, entry in causes.items()},
                        0, np.int64)
    cap_value = by_cause({name: entry.max_attempts for name, entry in causes.items()
                          if entry.max_attempts is not None}, -1, np.int64)
    on_rebind = by_cause({name: entry.retry_on_rebind for name, entry in causes.items()},
                         False, bool)

    attempts_today = rows["attempts"].to_numpy(np.int64)
    earlier = _earlier(rows, earlier_attempts)
    attempts = attempts_today + earlier
    capped = (cap_value >= 1) & (attempts >= cap_value)

    # The moment of the failure a rebinding must come after: the deciding attempt, else the
    # newest unsent instruction, else the start of D.
    day_start = pd.Timestamp(dt.datetime.combine(business_date, dt.time(0)), tz=tz).value
    deciding_ns = nanos(rows["deciding_sent_at"])
    created_ns = nanos(rows["latest_created_at"])
    has_deciding = rows["deciding_sent_at"].notna().to_numpy()
    has_created = rows["latest_created_at"].notna().to_numpy()
    failed_at = np.where(has_deciding, deciding_ns, np.where(has_created, created_ns, day_start))
    rebound = rebound_bindings(rows, bindings, loan_of_binding, failed_at, now_ns)
    rebind_cap = np.where(cap_value >= 1, cap_value, REBIND_MAX_ATTEMPTS)

    overpaid = (status == Status.OVERPAID.value).to_numpy(bool)
    # Duplicate debits are refunded row by row (below); an overpaid installment's own refund is
    # what its duplicates do not already return.
    # The duplicate debits with their installments, looked up once for both uses below.
    extra = _duplicate_debits(duplicates, instructions)
    duplicated = _duplicated_per_installment(rows, extra)
    due, settled = rows["amount_due"].to_numpy(np.int64), rows["amount_settled"].to_numpy(np.int64)
    refund_left = np.maximum(settled - due - duplicated, 0)
    covered = overpaid & (refund_left == 0)
    # No debit while any attempt's outcome is unknown: its file has not arrived, or its latest
    # row is PENDING (in flight: it may still succeed), the deciding attempt or another.
    in_flight = rows["attempts_pending"].to_numpy(np.int64) > 0
    missing_file = (rows["attempts_awaiting_file"].to_numpy(np.int64) > 0) | (
        (cause == R.SETTLEMENT_PENDING.value).to_numpy(bool) & ~in_flight)
    awaiting = missing_file | in_flight
    unanswered = (cause == R.NO_SETTLEMENT_RECORD.value).to_numpy(bool) | (
        rows["attempts_unanswered"].to_numpy(np.int64) > 0)
    rebind_retry = (rebound >= 0) & on_rebind & (attempts < rebind_cap)
    gateway = rows["deciding_gateway"].where(rows["deciding_gateway"] != "", rows["gateway"])
    other = _other_gateway(gateway, clean_gateways)
    outage_retry = (action == "retry_other_gateway") & (other == "")
    is_debit = _one_of(action, DEBITS)

    choice = np.select(
        [covered, overpaid, awaiting & ~overpaid, unanswered & ~overpaid, rebind_retry,
         is_debit & capped],
        ["none", "refund", "wait_for_file", "query_gateway", "retry", "none"],
        default=np.where(outage_retry, "retry", action).astype(str)).astype(object)
    step = np.select([covered, overpaid, missing_file, in_flight, unanswered, rebind_retry,
                      is_debit & capped],
                     ["duplicates", "refund", "file", "pending", "query", "rebind", "cap"],
                     default="policy")

    # Earliest time: debits in the debit window (or at the cause's clock time), after the
    # incident for a retry on the gateway of an outage; queries and refunds now.
    incident_end = incident_ends(rows["deciding_gateway"], rows["deciding_sent_at"], incidents)
    after = np.full(n, now_ns, dtype=np.int64)
    after = np.where(outage_retry & (step == "policy"), np.maximum(after, incident_end), after)
    after = after + np.where(step == "policy", delay_ns, 0)
    debit = _one_of(choice, DEBITS)
    when = earliest(after, np.where(step == "policy", at, -1), policy.debit_window, tz) \
        if n else np.zeros(0, dtype=np.int64)
    when = np.where(debit, when, now_ns)
    timed = debit | _one_of(choice, ("query_gateway", "refund"))

    planned_gateway = pd.Series(other, index=rows.index, dtype="str").where(
        choice == "retry_other_gateway",
        gateway.where(~_one_of(choice, ("wait_for_borrower", "none")), ""))
    if clean_gateways:
        # A debit of an installment no attempt or instruction names a gateway for (nothing was
        # instructed, or it is retried on a new binding) goes through the preferred clean one.
        planned_gateway = planned_gateway.where(~(debit & (planned_gateway == "").to_numpy(bool)),
                                                clean_gateways[0])
    binding_id = pd.Series("", index=rows.index, dtype="str")
    rebinds = np.flatnonzero(rebind_retry & (step == "rebind"))
    if len(bindings) and rebinds.size:
        binding_id.iloc[rebinds] = bindings["binding_id"].iloc[rebound[rebinds]].to_numpy()
    amount = np.where(overpaid, refund_left, due - settled)
    has_amount = debit | (choice == "refund")
    shown_cap = np.where(debit | (step == "cap"),
                         np.where(step == "rebind", rebind_cap, cap_value),
                         -1)
    reason = reasons(rows, choice, step, gateway, other, attempts, shown_cap, incident_end,
                      binding_id, amount, tz)
    plan = pd.DataFrame({
        "business_date": business_date.isoformat(),
        "subject": "installment",
        "loan_id": rows["loan_id"],
        "installment_no": rows["installment_no"].astype("str"),
        "borrower_id": rows["borrower_id"],
        "status": status,
        "root_cause": cause,
        "days_past_due": rows["days_past_due"].astype("str"),
        "action": pd.Series(choice, index=rows.index, dtype="str"),
        "not_before": pd.Series(format_local(when, timed, tz), index=rows.index, dtype="str"),
        "gateway": planned_gateway,
        "binding_id": binding_id,
        "amount": fmt_yuan(pd.Series(amount, index=rows.index, dtype="int64")).where(
            has_amount, ""),
        "attempts": pd.Series(attempts, index=rows.index).astype("str"),
        "max_attempts": pd.Series(shown_cap, index=rows.index).astype("str").where(
            shown_cap >= 1, ""),
        "instruction_id": "",
        "gateway_txn_id": "",
        "reason": text_series(reason, rows.index),
    })
    # Sorted by integer codes: the action's rank among the plan's actions, the loan id's rank
    # among its ids (sorting the text itself costs a third of a second at 250k rows).
    order = np.lexsort((sorted_ranks(plan["installment_no"]), sorted_ranks(rows["loan_id"]),
                        sorted_ranks(plan["action"])))
    plan = plan.iloc[order]
    refunds = _duplicate_refunds(extra, outcomes, business_date, now_ns, tz)
    return pd.concat([plan, refunds], ignore_index=True)[RETRY_PLAN_COLUMNS]


def _one_of(values: np.ndarray, options) -> np.ndarray:
    """`np.isin` for a text array and a few options: compared one option at a time (isin sorts
    the Python strings of every row)."""
    return np.logical_or.reduce([values == option for option in options])


def _earlier(rows: pd.DataFrame, earlier_attempts: pd.DataFrame) -> np.ndarray:
    if earlier_attempts is None or earlier_attempts.empty or rows.empty:
        return np.zeros(len(rows), dtype=np.int64)
    totals = earlier_attempts.groupby(["loan_id", "installment_no"])["attempts"].sum()
    key = pd.MultiIndex.from_arrays([rows["loan_id"].astype(str),
                                     rows["installment_no"].astype(np.int64)])
    totals.index = pd.MultiIndex.from_arrays([totals.index.get_level_values(0).astype(str),
                                              totals.index.get_level_values(1).astype(np.int64)])
    return totals.reindex(key).fillna(0).to_numpy(np.int64)


def _other_gateway(gateways: pd.Series, clean: list[str]) -> np.ndarray:
    """Per row, the first clean gateway that is not the row's own ("" when there is none)."""
    other = np.full(len(gateways), "", dtype=object)
    upper = gateways.astype("str").str.upper()
    for candidate in reversed(clean):
        other = np.where((upper != candidate.upper()).to_numpy(bool), candidate, other)
    return other


def _duplicate_debits(duplicates: pd.DataFrame, instructions: pd.DataFrame) -> pd.DataFrame:
    """The duplicate_debit rows with the loan_id and installment_no of their instruction."""
    if duplicates is None or not len(duplicates):
        return pd.DataFrame(columns=list(duplicates.columns if duplicates is not None else [])
                            + ["loan_id", "installment_no"])
    extra = duplicates[duplicates["kind"] == SettlementExceptionKind.DUPLICATE_DEBIT.value]
    # Only the few instructions debited twice are looked up, not the day's million.
    mine = instructions[isin(instructions["instruction_id"], set(extra["instruction_id"]))]
    of = mine.drop_duplicates("instruction_id").set_index("instruction_id")[
        ["loan_id", "installment_no"]]
    return extra.join(of, on="instruction_id")


def _duplicated_per_installment(rows: pd.DataFrame, extra: pd.DataFrame) -> np.ndarray:
    """Per row, the fen its duplicate debits (`extra`: _duplicate_debits) took, refunded by
    their own plan rows."""
    if not len(extra) or not len(rows):
        return np.zeros(len(rows), dtype=np.int64)
    totals = extra.groupby(["loan_id", "installment_no"])["amount"].sum()
    duplicated = np.zeros(len(rows), dtype=np.int64)
    # Only the rows of loans debited twice are looked up, not every row of the plan.
    concerned = np.flatnonzero(isin(rows["loan_id"], set(extra["loan_id"].dropna())))
    if concerned.size:
        some = rows.iloc[concerned]
        key = pd.MultiIndex.from_arrays([some["loan_id"], some["installment_no"]])
        duplicated[concerned] = totals.reindex(key).fillna(0).to_numpy(np.int64)
    return duplicated


def _duplicate_refunds(joined: pd.DataFrame, outcomes: pd.DataFrame, business_date: dt.date,
                       now_ns: int, tz: ZoneInfo) -> pd.DataFrame:
    """One refund row per duplicate debit (each extra SUCCESS row of an instruction; `joined`:
    _duplicate_debits).

    An installment's refunds never exceed what it was overpaid (settled - due): a duplicate
    debit that covered what it still owed (an instruction for part of the amount, debited
    twice) is refunded only beyond that, and not at all when the installment is not overpaid;
    its own plan row then collects nothing either (plan_retries: `duplicates`)."""
    if not len(joined):
        return pd.DataFrame(columns=RETRY_PLAN_COLUMNS)
    concerned = outcomes[isin(outcomes["loan_id"], set(joined["loan_id"].dropna()))]
    by_installment = concerned.set_index(["loan_id", "installment_no"])
    borrower = by_installment["borrower_id"]
    key = pd.MultiIndex.from_arrays([joined["loan_id"], joined["installment_no"]])
    when = format_local(np.full(len(joined), now_ns, dtype=np.int64),
                         np.ones(len(joined), dtype=bool), tz)
    taken = joined["amount"].astype("int64").to_numpy()
    overpaid = (by_installment["amount_settled"].astype("int64")
                - by_installment["amount_due"].astype("int64")).clip(lower=0)
    # An instruction of no installment of D: nothing to weigh the refund against.
    left = overpaid.reindex(key).fillna(np.iinfo(np.int64).max).to_numpy(np.int64)
    before = pd.Series(taken).groupby(pd.factorize(key)[0]).cumsum().to_numpy() - taken
    refund = np.clip(left - np.minimum(before, left), 0, taken)
    amount = fmt_yuan(pd.Series(refund, index=joined.index))
    debit_amount = fmt_yuan(pd.Series(taken, index=joined.index))
    whole, part = refund == taken, (refund > 0) & (refund < taken)
    debited = "instruction " + joined["instruction_id"] + " was debited again by " \
        + joined["gateway_txn_id"]
    reason = np.where(
        whole, debited + ": refund " + amount,
        np.where(part, debited + ": refund " + amount + " of its " + debit_amount
                 + "; the rest covers what the installment still owed",
                 debited + " (" + debit_amount + "): no refund, the installment still owed "
                 "at least that much"))
    return pd.DataFrame({
        "business_date": business_date.isoformat(),
        "subject": "duplicate_debit",
        "loan_id": joined["loan_id"].to_numpy(object),
        "installment_no": joined["installment_no"].astype("Int64").astype(str).to_numpy(object),
        "borrower_id": borrower.reindex(key).fillna("").to_numpy(object),
        "status": "",
        "root_cause": "",
        "days_past_due": "",
        "action": np.where(refund > 0, "refund", "none").astype(object),
        "not_before": np.where(refund > 0, when, "").astype(object),
        "gateway": np.where(refund > 0, joined["gateway"].to_numpy(object), "").astype(object),
        "binding_id": "",
        "amount": np.where(refund > 0, amount.to_numpy(object), "").astype(object),
        "attempts": "0",
        "max_attempts": "",
        "instruction_id": joined["instruction_id"].to_numpy(object),
        "gateway_txn_id": joined["gateway_txn_id"].to_numpy(object),
        "reason": np.asarray(reason, dtype=object),
    })
