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
import tomllib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recon.contract import RETRY_PLAN_COLUMNS, RootCause, SettlementExceptionKind, Status
from recon.errors import UsageError
from recon.formatting import fmt_local, fmt_yuan
from recon.frames import arrow_strings, yuan_text
from recon.ids import isin, nanos

R = RootCause
Action = Literal["retry", "retry_other_gateway", "query_gateway", "wait_for_file",
                 "wait_for_borrower", "refund", "none"]
ACTIONS = ("retry", "retry_other_gateway", "query_gateway", "wait_for_file", "wait_for_borrower",
           "refund", "none")
DEBITS = ("retry", "retry_other_gateway")
REBIND_MAX_ATTEMPTS = 3  # a rebinding retry of a cause without max_attempts



# --- the policy ---------------------------------------------------------------------------------

def _clock(value) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        try:
            parsed = dt.time.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and len(value) == 5:
            return parsed
    raise ValueError("must be a local time of day HH:MM, e.g. \"09:00\"")


class CausePolicy(BaseModel):
    """What to do next about installments of one root cause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    at: dt.time | None = None
    """A debit's earliest time is the next time the local clock reads this (else the start of
    the debit window, or now when inside it)."""
    delay_hours: float = Field(default=0.0, ge=0.0, le=24 * 31)
    """Hours to wait first: after now, or for gateway_outage after the incident's end."""
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    """Most sent attempts over the installment's life; a debit past it becomes `none`."""
    retry_on_rebind: bool = False
    """Retry on the new binding when the card was rebound after the failure."""

    @field_validator("at", mode="before")
    @classmethod
    def _time_of_day(cls, value):
        return None if value is None else _clock(value)


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    debit_window: tuple[dt.time, dt.time] = (dt.time(9), dt.time(21))
    """Debits are planned inside this local time window (no debits, so no bank SMS, at night)."""
    causes: dict[RootCause, CausePolicy]

    @field_validator("debit_window", mode="before")
    @classmethod
    def _window(cls, value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError("must be two local times [\"HH:MM\", \"HH:MM\"]")
        start, end = (_clock(item) for item in value)
        if not start < end:
            raise ValueError("the window's start must be before its end")
        return start, end

    @field_validator("causes")
    @classmethod
    def _safe_actions(cls, causes: dict[RootCause, CausePolicy]):
        missing = [cause.value for cause in RootCause if cause not in causes]
        if missing:
            raise ValueError(f"causes: no policy for {', '.join(missing)}")
        for cause, allowed in ((R.NO_SETTLEMENT_RECORD, ("query_gateway",)),
                               (R.SETTLEMENT_PENDING, ("wait_for_file",))):
            if causes[cause].action not in allowed:
                raise ValueError(f"causes.{cause.value}.action: must be {allowed[0]}: the "
                                 f"outcome of the last attempt is not known, a new debit could "
                                 f"charge the borrower twice")
            if causes[cause].retry_on_rebind:
                raise ValueError(f"causes.{cause.value}.retry_on_rebind: must be false: the "
                                 f"outcome of the last attempt is not known")
        for cause, policy in causes.items():
            if policy.action == "refund":
                raise ValueError(f"causes.{cause.value}.action: refund is for overpaid "
                                 f"installments and duplicate debits only")
        return causes


DEFAULT_POLICY: dict = {
    "debit_window": ["09:00", "21:00"],
    "causes": {
        # Money may come in: try again the next morning, a few times at most.
        "insufficient_balance": {"action": "retry", "at": "09:00", "max_attempts": 3,
                                 "retry_on_rebind": True},
        # Judicial or bank freeze: debiting again fails and annoys; ops contact the borrower.
        "account_frozen": {"action": "none"},
        # The account is gone: only a new binding helps.
        "account_closed": {"action": "wait_for_borrower", "max_attempts": 3,
                           "retry_on_rebind": True},
        "card_unbound": {"action": "wait_for_borrower", "max_attempts": 3,
                         "retry_on_rebind": True},
        # Not the borrower's fault: through another gateway whose file arrived clean, else the
        # same one an hour after the incident ends.
        "gateway_outage": {"action": "retry_other_gateway", "delay_hours": 1,
                           "max_attempts": 4},
        "instruction_not_confirmed": {"action": "wait_for_borrower"},
        # Internal: the collections system did not send; send it in the debit window.
        "not_instructed": {"action": "retry", "max_attempts": 3},
        "no_settlement_record": {"action": "query_gateway"},
        "settlement_pending": {"action": "wait_for_file"},
        # A decline we have no specific rule for: one more try the next morning.
        "other_decline": {"action": "retry", "at": "09:00", "max_attempts": 2,
                          "retry_on_rebind": True},
        # A code we do not understand is not retried blindly: extend the code map first.
        "unclassified": {"action": "none"},
    },
}


def load_policy(path: Path | None) -> RetryPolicy:
    """The default policy, with the operator file's settings (TOML) on top, cause by cause and
    key by key. A mistake is a usage error (exit 2) naming the file, the key and the problem."""
    merged = {"debit_window": DEFAULT_POLICY["debit_window"],
              "causes": {cause: dict(policy) for cause, policy in
                         DEFAULT_POLICY["causes"].items()}}
    if path is not None:
        try:
            given = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"retry policy {path}: cannot read: {exc.strerror or exc}",
                             next_step="check --retry-policy / RECON_RETRY_POLICY") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"retry policy {path}: not valid TOML: {exc}",
                             next_step="fix the file (see README, Retry plan)") from None
        unknown = sorted(set(given) - {"debit_window", "causes"})
        if unknown:
            raise UsageError(f"retry policy {path}: {unknown[0]}: unknown key (expected "
                             f"debit_window or [causes.<root_cause>])",
                             next_step="fix the file (see README, Retry plan)")
        if "debit_window" in given:
            merged["debit_window"] = given["debit_window"]
        causes = given.get("causes", {})
        if not isinstance(causes, dict):
            raise UsageError(f"retry policy {path}: causes: must be a table of root causes",
                             next_step="fix the file (see README, Retry plan)")
        for cause, settings in causes.items():
            if cause not in merged["causes"]:
                raise UsageError(f"retry policy {path}: causes.{cause}: not a root cause",
                                 next_step="use one of " + ", ".join(merged["causes"]))
            if not isinstance(settings, dict):
                raise UsageError(f"retry policy {path}: causes.{cause}: must be a table",
                                 next_step="fix the file (see README, Retry plan)")
            merged["causes"][cause].update(settings)
    try:
        return RetryPolicy.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        problem = error["msg"].removeprefix("Value error, ")
        shown = problem if problem.startswith(where) else f"{where}: {problem}"
        source = path if path is not None else "(defaults)"
        raise UsageError(f"retry policy {source}: {shown}",
                         next_step="fix the file (see README, Retry plan)") from None


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


def _format_local(moments_ns: np.ndarray, present: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """UTC nanoseconds -> local `YYYY-MM-DD HH:MM:SS` where `present`, else ""."""
    text = np.full(len(moments_ns), "", dtype=object)
    if present.any():
        moments = pd.Series(pd.to_datetime(moments_ns[present], utc=True))
        text[present] = fmt_local(moments, tz).to_numpy(object)
    return text


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
               "attempts_awaiting_file", "attempts_unanswered", "gateway", "deciding_gateway",
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
    duplicated = _duplicated_per_installment(rows, duplicates, instructions)
    due, settled = rows["amount_due"].to_numpy(np.int64), rows["amount_settled"].to_numpy(np.int64)
    refund_left = np.maximum(settled - due - duplicated, 0)
    covered = overpaid & (refund_left == 0)
    awaiting = (cause == R.SETTLEMENT_PENDING.value).to_numpy(bool) | (
        rows["attempts_awaiting_file"].to_numpy(np.int64) > 0)
    unanswered = (cause == R.NO_SETTLEMENT_RECORD.value).to_numpy(bool) | (
        rows["attempts_unanswered"].to_numpy(np.int64) > 0)
    rebind_retry = (rebound >= 0) & on_rebind & (attempts < rebind_cap)
    gateway = rows["deciding_gateway"].where(rows["deciding_gateway"] != "", rows["gateway"])
    other = _other_gateway(gateway, clean_gateways)
    outage_retry = (action == "retry_other_gateway") & (other == "")
    is_debit = np.isin(action, DEBITS)

    choice = np.select(
        [covered, overpaid, awaiting & ~overpaid, unanswered & ~overpaid, rebind_retry,
         is_debit & capped],
        ["none", "refund", "wait_for_file", "query_gateway", "retry", "none"],
        default=np.where(outage_retry, "retry", action).astype(str)).astype(object)
    step = np.select([covered, overpaid, awaiting, unanswered, rebind_retry, is_debit & capped],
                     ["duplicates", "refund", "file", "query", "rebind", "cap"],
                     default="policy")

    # Earliest time: debits in the debit window (or at the cause's clock time), after the
    # incident for a retry on the gateway of an outage; queries and refunds now.
    incident_end = incident_ends(rows["deciding_gateway"], rows["deciding_sent_at"], incidents)
    after = np.full(n, now_ns, dtype=np.int64)
    after = np.where(outage_retry & (step == "policy"), np.maximum(after, incident_end), after)
    after = after + np.where(step == "policy", delay_ns, 0)
    debit = np.isin(choice, DEBITS)
    when = earliest(after, np.where(step == "policy", at, -1), policy.debit_window, tz) \
        if n else np.zeros(0, dtype=np.int64)
    when = np.where(debit, when, now_ns)
    timed = debit | np.isin(choice, ("query_gateway", "refund"))

    planned_gateway = pd.Series(other, index=rows.index, dtype="str").where(
        choice == "retry_other_gateway",
        gateway.where(~np.isin(choice, ("wait_for_borrower", "none")), ""))
    binding_id = pd.Series("", index=rows.index, dtype="str")
    rebinds = np.flatnonzero(rebind_retry & (step == "rebind"))
    if len(bindings) and rebinds.size:
        binding_id.iloc[rebinds] = bindings["binding_id"].iloc[rebound[rebinds]].to_numpy()
    amount = np.where(overpaid, refund_left, due - settled)
    has_amount = debit | (choice == "refund")
    shown_cap = np.where(debit | (step == "cap"),
                         np.where(step == "rebind", rebind_cap, cap_value),
                         -1)
    reason = _reasons(rows, choice, step, gateway, other, attempts, shown_cap, incident_end,
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
        "not_before": pd.Series(_format_local(when, timed, tz), index=rows.index, dtype="str"),
        "gateway": planned_gateway,
        "binding_id": binding_id,
        "amount": fmt_yuan(pd.Series(amount, index=rows.index, dtype="int64")).where(
            has_amount, ""),
        "attempts": pd.Series(attempts, index=rows.index).astype("str"),
        "max_attempts": pd.Series(shown_cap, index=rows.index).astype("str").where(
            shown_cap >= 1, ""),
        "instruction_id": "",
        "gateway_txn_id": "",
        "reason": _series(reason, rows.index),
    })
    # Sorted by integer codes: the action's rank among the plan's actions, the loan id's rank
    # among its ids (sorting the text itself costs a third of a second at 250k rows).
    order = np.lexsort((_ranks(plan["installment_no"]), _ranks(rows["loan_id"]),
                        _ranks(plan["action"])))
    plan = plan.iloc[order]
    refunds = _duplicate_refunds(duplicates, instructions, outcomes, business_date, now_ns, tz)
    return pd.concat([plan, refunds], ignore_index=True)[RETRY_PLAN_COLUMNS]


def _series(text: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    series = text.to_pandas()
    series.index = index
    return series


def _ranks(values: pd.Series) -> np.ndarray:
    """Each value's rank in the sorted distinct values (equal values, equal ranks)."""
    codes, distinct = pd.factorize(values, sort=True)
    return codes


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


def _join(*pieces) -> pa.Array:
    """Text pieces (Arrow strings of one length, or literals) joined row by row."""
    return pc.binary_join_element_wise(
        *(pa.scalar(piece, pa.large_string()) if isinstance(piece, str) else piece
          for piece in pieces), pa.scalar("", pa.large_string()))


def _reasons(rows, choice, step, gateway, other, attempts, cap, incident_end, binding_id, amount,
             tz) -> pa.ChunkedArray:
    """One plain sentence per row saying why this action. Each sentence is built, in Arrow, only
    for the rows it describes."""
    n = len(rows)
    if not n:
        return pa.chunked_array([], pa.large_string())
    cause = rows["root_cause"]
    columns = {
        "cause": arrow_strings(cause),
        "gw": arrow_strings(gateway),
        "other": pa.array(other, type=pa.large_string()),
        "binding": arrow_strings(binding_id),
        "yuan": yuan_text(np.abs(amount)).cast(pa.large_string()),
        "count": pc.cast(pa.array(attempts, type=pa.int64()), pa.large_string()),
        "limit": pc.cast(pa.array(np.where(cap >= 1, cap, 0), type=pa.int64()),
                         pa.large_string()),
    }
    ended = incident_end > np.iinfo(np.int64).min
    policy = step == "policy"

    def fixed(text: str):
        return lambda part: pa.array(np.full(len(part["rows"]), text, dtype=object),
                                     type=pa.large_string())

    def outage_on_same_gateway(part: dict) -> pa.Array:
        at = part["rows"]
        known = ended[at]
        when = pa.array(_format_local(incident_end[at], known, tz), type=pa.large_string())
        return _join(part["gw"], " had an outage and no other gateway's file arrived clean: "
                     "retry ", part["yuan"], " on ", part["gw"], " after the incident",
                     pc.if_else(pa.array(known), _join(" (ended ", when, ")"), ""))

    def is_cause(value: str) -> np.ndarray:
        return (cause == value).to_numpy(bool)

    sentences = [
        (step == "duplicates",
         fixed("overpaid by its duplicate debits only: refunded through their refund rows")),
        (step == "refund",
         lambda p: _join("settled more than due: refund ", p["yuan"], " to the borrower")),
        (step == "file", fixed("a settlement file of this installment's attempts has not "
                               "arrived: rerun D when it does, no debit before")),
        (step == "query",
         lambda p: _join("an attempt via ", p["gw"], " has no settlement record: ask ", p["gw"],
                         " for its result before any new debit, or the borrower may be charged "
                         "twice")),
        (step == "rebind",
         lambda p: _join("card rebound after the failed attempt (binding ", p["binding"],
                         "): retry ", p["yuan"], " on the new binding; ", p["count"],
                         " of at most ", p["limit"], " attempts made so far")),
        (step == "cap",
         lambda p: _join(p["cause"], ": ", p["count"], " attempts reached the limit of ",
                         p["limit"], "; no automatic debit, hand to collections")),
        (policy & (choice == "retry_other_gateway"),
         lambda p: _join(p["gw"], " had an outage: retry ", p["yuan"], " through ", p["other"],
                         ", whose file arrived clean")),
        (policy & (choice == "retry") & is_cause(R.GATEWAY_OUTAGE.value),
         outage_on_same_gateway),
        (policy & (choice == "retry") & is_cause(R.NOT_INSTRUCTED.value),
         lambda p: _join("internal: the collections system did not send a debit; send ",
                         p["yuan"])),
        (policy & (choice == "retry"),
         lambda p: _join(p["cause"], ": retry ", p["yuan"], "; ", p["count"], " of at most ",
                         p["limit"], " attempts made so far")),
        (policy & (choice == "wait_for_borrower") & is_cause(R.INSTRUCTION_NOT_CONFIRMED.value),
         fixed("the borrower must confirm the debit instruction first")),
        (policy & (choice == "wait_for_borrower"),
         lambda p: _join(p["cause"], ": the borrower must bind a valid card or account first")),
        (policy & (choice == "query_gateway"),
         lambda p: _join("ask ", p["gw"], " for the attempt's result before any new debit")),
        (policy & (choice == "wait_for_file"), fixed("wait for the settlement file, then rerun D")),
        (policy & (choice == "none") & is_cause(R.ACCOUNT_FROZEN.value),
         fixed("account frozen: no debit; contact the borrower and check for a judicial freeze")),
        (policy & (choice == "none") & is_cause(R.UNCLASSIFIED.value),
         fixed("cause not recognised: no automatic debit; investigate and extend the code map")),
        (policy & (choice == "none"),
         lambda p: _join(p["cause"], ": the policy plans no automatic action")),
    ]
    # Each sentence's texts for its rows, then all put back in row order with one take.
    pieces, positions = [], []
    filled = np.zeros(n, dtype=bool)
    for condition, sentence in sentences:
        taken = np.flatnonzero(np.asarray(condition, dtype=bool) & ~filled)
        if taken.size:
            index = pa.array(taken)
            part = {name: column.take(index) for name, column in columns.items()}
            part["rows"] = taken
            pieces.append(sentence(part))
            positions.append(taken)
            filled[taken] = True
    rest = np.flatnonzero(~filled)
    pieces.append(pa.array(np.full(rest.size, "", dtype=object), type=pa.large_string()))
    positions.append(rest)
    order = np.argsort(np.concatenate(positions), kind="stable")
    return pa.chunked_array(pieces, pa.large_string()).take(pa.array(order))


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


def _duplicated_per_installment(rows: pd.DataFrame, duplicates: pd.DataFrame,
                                instructions: pd.DataFrame) -> np.ndarray:
    """Per row, the fen its duplicate debits took (refunded by their own plan rows)."""
    extra = _duplicate_debits(duplicates, instructions)
    if not len(extra) or not len(rows):
        return np.zeros(len(rows), dtype=np.int64)
    totals = extra.groupby(["loan_id", "installment_no"])["amount"].sum()
    key = pd.MultiIndex.from_arrays([rows["loan_id"], rows["installment_no"]])
    return totals.reindex(key).fillna(0).to_numpy(np.int64)


def _duplicate_refunds(duplicates: pd.DataFrame, instructions: pd.DataFrame,
                       outcomes: pd.DataFrame, business_date: dt.date, now_ns: int,
                       tz: ZoneInfo) -> pd.DataFrame:
    """One refund row per duplicate debit (each extra SUCCESS row of an instruction)."""
    joined = _duplicate_debits(duplicates, instructions)
    if not len(joined):
        return pd.DataFrame(columns=RETRY_PLAN_COLUMNS)
    concerned = outcomes[isin(outcomes["loan_id"], set(joined["loan_id"].dropna()))]
    borrower = concerned.set_index(["loan_id", "installment_no"])["borrower_id"]
    key = pd.MultiIndex.from_arrays([joined["loan_id"], joined["installment_no"]])
    when = _format_local(np.full(len(joined), now_ns, dtype=np.int64),
                         np.ones(len(joined), dtype=bool), tz)
    amount = fmt_yuan(joined["amount"].astype("int64"))
    return pd.DataFrame({
        "business_date": business_date.isoformat(),
        "subject": "duplicate_debit",
        "loan_id": joined["loan_id"].to_numpy(object),
        "installment_no": joined["installment_no"].astype("Int64").astype(str).to_numpy(object),
        "borrower_id": borrower.reindex(key).fillna("").to_numpy(object),
        "status": "",
        "root_cause": "",
        "days_past_due": "",
        "action": "refund",
        "not_before": when,
        "gateway": joined["gateway"].to_numpy(object),
        "binding_id": "",
        "amount": amount.to_numpy(object),
        "attempts": "0",
        "max_attempts": "",
        "instruction_id": joined["instruction_id"].to_numpy(object),
        "gateway_txn_id": joined["gateway_txn_id"].to_numpy(object),
        "reason": ("instruction " + joined["instruction_id"] + " was debited again by "
                   + joined["gateway_txn_id"] + ": refund " + amount).to_numpy(object),
    })
