"""CONTRACT 7, borrower notices: which borrowers to message, on which channel, with what text,
and how a rerun of D merges with the notices already in the outbox. Pure and vectorised.

Nothing here reads the clock: the moment a notice is made ("now") is an argument. The outbox
rules (docs/notices.md):

- Only causes the borrower can act on get a notice (NOTICE_CAUSES), and only for installments
  not collected in full (`unpaid`, `partially_paid`): never for `gateway_outage`,
  `not_instructed`, `no_settlement_record`, `settlement_pending`, `unclassified`; nor for
  `other_decline`, whose codes ("do not honour", "restricted card", ...) do not tell the
  borrower what to do: ops reads the code first and may map it to a borrower-side cause with
  --reason-codes, which then gets a notice.
- Each installment's template is its cause's, unless the retry plan says otherwise: a retry on
  a card rebound after the failure is told `retry_on_new_card` (with the new card), a card that
  lacked money but gets no automatic debit any more (the attempts' limit) `no_automatic_retry`.
- One notice per borrower and D: its installments' outstanding amounts add up; its template is
  that of the installment most in need of the borrower's action (TEMPLATE_KEYS order), and its
  card that installment's.
- A rerun never touches a notice the messaging system has taken (state not `new`): what such a
  notice covers is never noticed again for D. A notice still `new` stays as it is when the
  rerun would make the same notice (same content_key), and is `cancelled` (replaced by the new
  one, if any) otherwise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import Future
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from recon.contract import MAX_AMOUNT_FEN, RootCause, Status
from recon.errors import InputRefused
from recon.ids import isin
from recon.formatting import fmt_yuan
from recon.frames import (arrow_strings, join_texts, sorted_ranks, text_chunks, text_series,
                          yuan_text)
from recon.notice_templates import (NO_AUTOMATIC_RETRY, NOTICE_CAUSES, RETRY_ON_NEW_CARD,
                                    TEMPLATE_KEYS, NoticePolicy, NoticeTemplates)
from recon.protect import mask_cards

NOTICE_STATUSES = [Status.UNPAID, Status.PARTIALLY_PAID]
NEW, CANCELLED = "new", "cancelled"
UNKNOWN_CARD = "您绑定的银行卡"

NOTICES_COLUMNS = ["notice_id", "business_date", "borrower_id", "state", "channel",
                   "template_key", "send_after", "amount", "card_last4", "installments",
                   "message", "content_key", "created_run_id", "created_at", "cancelled_run_id",
                   "cancelled_at"]
# The columns recon writes itself (contract.EXCEPTIONS_OWN): not searched for card numbers
# again. The text is masked once, as it is rendered; `state` is the messaging system's.
NOTICES_OWN = frozenset({"business_date", "channel", "template_key", "send_after", "amount",
                         "card_last4", "message", "created_at", "cancelled_at"})
# The columns a new notice is stored with (the rest are the messaging system's or a later run's).
STORED_COLUMNS = ["notice_id", "business_date", "borrower_id", "content_key", "channel",
                  "template_key", "message", "amount", "card_last4", "installments",
                  "send_after", "state", "created_at", "created_run_id"]


# --- what to notice -----------------------------------------------------------------------------

def notice_items(outcomes: pd.DataFrame, plan: pd.DataFrame | None = None,
                 bindings: pd.DataFrame | None = None) -> pd.DataFrame:
    """The installments of D a borrower should hear about, one row each: borrower_id, item
    (`loan_id/installment_no/root_cause`), root_cause, template_key, amount (outstanding fen),
    card_no_masked, loan_id, installment_no.

    `plan`: D's retry plan (RETRY_PLAN_COLUMNS) and `bindings` D's: the template and card of an
    installment follow what the plan does about it (planned_templates)."""
    causes = [cause.value for cause in NOTICE_CAUSES]
    wanted = (outcomes["status"].isin([status.value for status in NOTICE_STATUSES])
              & outcomes["root_cause"].isin(causes)
              & (outcomes["amount_outstanding"] > 0))
    rows = outcomes[wanted]
    items = pd.DataFrame({
        "borrower_id": rows["borrower_id"].astype("str"),
        "loan_id": rows["loan_id"].astype("str"),
        "installment_no": rows["installment_no"].astype("int64"),
        "root_cause": rows["root_cause"].astype("str"),
        "item": (item_loan_ids(rows["loan_id"].astype("str")) + "/"
                 + rows["installment_no"].astype("str") + "/" + rows["root_cause"].astype("str")),
        "amount": rows["amount_outstanding"].astype("int64"),
        "card_no_masked": rows["card_no_masked"].fillna("").astype("str"),
    }).reset_index(drop=True)
    items.insert(4, "template_key", items["root_cause"])
    return items if plan is None else planned_templates(items, plan, bindings)


def planned_templates(items: pd.DataFrame, plan: pd.DataFrame,
                      bindings: pd.DataFrame | None) -> pd.DataFrame:
    """`items` with the template and card of what the retry plan does where the cause's own
    template would promise otherwise: a retry on a rebound card (the new card's digits), or no
    automatic debit any more for a card that lacked the money. Only those few plan rows are
    looked up."""
    installment = (plan["subject"] == "installment").to_numpy(bool)
    debit = plan["action"].isin(["retry", "retry_other_gateway"]).to_numpy(bool)
    rebound = installment & debit & (plan["binding_id"].fillna("") != "").to_numpy(bool)
    gave_up = installment & (plan["root_cause"] == RootCause.INSUFFICIENT_BALANCE.value).to_numpy(
        bool) & plan["action"].isin(["none", "wait_for_borrower"]).to_numpy(bool)
    special = plan.loc[rebound | gave_up, ["loan_id", "installment_no", "binding_id"]]
    if special.empty or items.empty:
        return items
    special = special.assign(
        installment_no=special["installment_no"].astype("int64"),
        template_key=np.where(rebound[rebound | gave_up], RETRY_ON_NEW_CARD, NO_AUTOMATIC_RETRY))
    special["card_no_masked"] = ""
    wanted = set(special["binding_id"].dropna()) - {""}
    if bindings is not None and wanted:
        # Only the few new bindings are looked up, not the day's million.
        named = bindings.loc[isin(bindings["binding_id"], wanted), ["binding_id", "card_no_masked"]]
        card_of = named.drop_duplicates("binding_id", keep="last").set_index("binding_id")[
            "card_no_masked"]
        if len(card_of):
            special["card_no_masked"] = special["binding_id"].map(card_of).fillna("").astype(
                "str")
    # Only the items of the loans concerned are matched.
    candidates = np.flatnonzero(isin(items["loan_id"], set(special["loan_id"])))
    if not candidates.size:
        return items
    found = special.drop_duplicates(["loan_id", "installment_no"]).set_index(
        ["loan_id", "installment_no"]).reindex(
        pd.MultiIndex.from_frame(items.iloc[candidates][["loan_id", "installment_no"]]))
    hit = found["template_key"].notna().to_numpy()
    at = candidates[hit]
    if not at.size:
        return items
    keys = found["template_key"].to_numpy()[hit]
    cards = found["card_no_masked"].fillna("").to_numpy()[hit]
    items = items.copy()
    items.loc[at, "template_key"] = keys
    new_card = (keys == RETRY_ON_NEW_CARD) & (cards != "")
    items.loc[at[new_card], "card_no_masked"] = cards[new_card]
    return items


def item_loan_ids(loan_ids: pd.Series) -> pd.Series:
    """Loan ids as a notice's `installments` item writes them: `%` as `%25` and `;` (the items'
    separator) as `%3B`, so that a loan id holding `;` (ids are any text) is one item, read back
    as written; other ids byte for byte."""
    text = arrow_strings(loan_ids)
    escaped = pc.replace_substring(pc.replace_substring(text, "%", "%25"), ";", "%3B")
    return text_series(escaped, loan_ids.index)


def not_yet_told(items: pd.DataFrame, taken: pd.DataFrame) -> pd.DataFrame:
    """`items` less those a taken notice of the same borrower already covers."""
    if taken.empty or items.empty:
        return items
    told = taken[["borrower_id", "installments"]].assign(
        item=taken["installments"].astype("str").str.split(";")).explode("item")
    told_keys = pd.MultiIndex.from_frame(told[["borrower_id", "item"]].astype("str"))
    keys = pd.MultiIndex.from_frame(items[["borrower_id", "item"]])
    return items[~keys.isin(told_keys)].reset_index(drop=True)


def earliest_send(now: dt.datetime, tz: ZoneInfo, policy: NoticePolicy) -> pd.Timestamp:
    """`now`, or the next moment inside the sending hours (local time in `tz`)."""
    # Floored in UTC (a local time may be ambiguous at a daylight-saving change); the window's
    # ends are wall-clock times of the local day, whatever its length.
    local = pd.Timestamp(now).tz_convert("UTC").floor("s").tz_convert(tz)
    opens, closes = (_wall_clock(local.date(), moment, tz)
                     for moment in (policy.send_from, policy.send_until))
    if local < opens:
        return opens
    if local >= closes:
        return _wall_clock(local.date() + dt.timedelta(days=1), policy.send_from, tz)
    return local


def _wall_clock(day: dt.date, moment: dt.time, tz: ZoneInfo) -> pd.Timestamp:
    """`moment` of `day` on the clocks of `tz`: of a time that occurs twice (clocks set back)
    the later, of one that does not occur (clocks set forward) the first moment after the gap,
    so a sending window never opens early."""
    return pd.Timestamp(dt.datetime.combine(day, moment)).tz_localize(
        tz, ambiguous=False, nonexistent="shift_forward")


def local_text(moments: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Stored timestamps (ISO text with an offset, in whatever zone the database gave them) as
    ISO 8601 in `tz`; '' stays ''."""
    present = moments != ""
    if not present.any():
        return moments
    local = pd.to_datetime(moments[present], utc=True, format="ISO8601").dt.tz_convert(tz)
    shown = moments.copy()
    shown[present] = [moment.isoformat() for moment in local]
    return shown


def yuan_grouped(fen: pd.Series) -> pd.Series:
    """Integer fen -> `1,234.50元`."""
    grouped = yuan_text(fen.to_numpy(np.int64), thousands=True).cast(pa.large_string())
    return text_series(join_texts(grouped, "元"), fen.index)


def chinese_day(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def card_last_four(masked: pd.Series) -> pd.Series:
    """The last four digits of a masked card number, '' when it has none."""
    found = pc.extract_regex(arrow_strings(masked.fillna("").astype("str")),
                             r"(?P<last4>[0-9]{4})\s*$")
    return text_series(pc.fill_null(pc.struct_field(found, [0]), ""), masked.index)


def compose(items: pd.DataFrame, templates: NoticeTemplates, business_date: dt.date,
            now: dt.datetime, tz: ZoneInfo, repeat_borrowers=()) -> pd.DataFrame:
    """One notice per borrower from `items` (notice_items): borrower_id, channel, template_key,
    message, amount (fen), card_last4, installments, content_key, send_after (local ISO).

    `repeat_borrowers`: borrowers on the watchlist for repeated borrower-side failures.
    """
    columns = ["borrower_id", "channel", "template_key", "message", "amount", "card_last4",
               "installments", "content_key", "send_after"]
    if items.empty:
        return pd.DataFrame({column: pd.Series([], dtype="str") for column in columns}).astype(
            {"amount": "int64"})
    priority = {key: rank for rank, key in enumerate(TEMPLATE_KEYS)}
    # Sorted on integer ranks of the texts (sorting 200k texts twice costs most of a second):
    # by borrower, then the cause that names the notice, then loan and installment; each
    # borrower's items listed by loan and installment.
    borrower = sorted_ranks(items["borrower_id"])
    loan = sorted_ranks(items["loan_id"])
    number = items["installment_no"].to_numpy(np.int64)
    rank = items["template_key"].map(priority).to_numpy(np.int64)
    order = np.lexsort((number, loan, rank, borrower))
    ordered = items.iloc[order]
    in_order = items.iloc[np.lexsort((rank, number, loan, borrower))]
    starts = np.flatnonzero(np.diff(borrower[order], prepend=-1))  # each borrower's first row
    sizes = np.diff(np.append(starts, len(items)))
    first = ordered.iloc[starts].reset_index(drop=True)
    amounts = np.add.reduceat(ordered["amount"].to_numpy(np.int64), starts)
    _refuse_unstorable_totals(amounts, first, in_order, sizes)
    notices = pd.DataFrame({
        "borrower_id": first["borrower_id"],
        "template_key": first["template_key"],
        "card_last4": card_last_four(first["card_no_masked"]),
        "amount": amounts,
        "count": sizes,
        "installments": joined_per_group(in_order["item"], sizes, first.index),
    })
    policy = templates.policy
    template_channel = notices["template_key"].map(
        {key: template.channel for key, template in templates.templates.items()})
    call = (template_channel == "call") | (notices["amount"] >= policy.call_at_fen)
    if policy.call_on_repeated_failure:
        call |= notices["borrower_id"].isin(list(repeat_borrowers))
    notices["channel"] = np.where(call, "call", "sms")
    send_after = earliest_send(now, tz, policy)
    notices["send_after"] = send_after.isoformat()
    notices["message"] = render(notices, templates, business_date, send_after.date())
    notices["content_key"] = content_keys(notices, templates)
    notices["amount"] = notices["amount"].astype("int64")
    return notices[columns]


def _refuse_unstorable_totals(amounts: np.ndarray, first: pd.DataFrame, in_order: pd.DataFrame,
                              sizes: np.ndarray) -> None:
    """A borrower's notice totalling more than NUMERIC(14,2) holds refuses the date, on every
    database (as an installment settled that much does, run_report.refuse_unstorable_settled):
    each installment fits, but a borrower's outstanding ones can add up past 999,999,999,999.99,
    which PostgreSQL would refuse mid-write and SQLite would store. No borrower owes that much:
    the installments are wrong, and a person must look at them."""
    over = np.flatnonzero(amounts > MAX_AMOUNT_FEN)
    if not over.size:
        return
    at = int(over[0])
    start = int(np.sum(sizes[:at]))
    items = in_order["item"].iloc[start:start + min(int(sizes[at]), 5)].tolist()
    others = f" (and {over.size - 1} more borrower(s))" if over.size > 1 else ""
    raise InputRefused(
        f"borrower {first['borrower_id'].iloc[at]}'s installments not collected add up to "
        f"{fmt_yuan(pd.Series([int(amounts[at])]))[0]}, more than NUMERIC(14,2) holds "
        f"(999999999999.99) for their notice{others}; installments: {', '.join(items)}"
        + (" ..." if sizes[at] > 5 else ""),
        next_step="check those installments with loan servicing, then rerun the date")


def joined_per_group(values: pd.Series, sizes: np.ndarray, index: pd.Index) -> pd.Series:
    """`values` (sorted by group) joined with ';' per group of `sizes` rows, in Arrow: a
    Python join per borrower takes seconds at 100k borrowers."""
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.string()))
    return pd.Series(pc.binary_join(lists, ";").to_pandas().to_numpy(), index=index, dtype="str")


def render(notices: pd.DataFrame, templates: NoticeTemplates, business_date: dt.date,
           send_day: dt.date) -> pd.Series:
    """Each notice's text from its template, placeholders filled column-wise in Arrow (no
    per-row loop, no pandas string concatenation)."""
    last4 = arrow_strings(notices["card_last4"])
    card = pc.if_else(pc.equal(last4, ""), pa.scalar(UNKNOWN_CARD, pa.large_string()),
                      join_texts("尾号", last4, "的银行卡"))
    values = {"amount": arrow_strings(yuan_grouped(notices["amount"])), "card": card,
              "card_last4": last4, "business_date": chinese_day(business_date),
              "installments": pc.cast(pa.array(notices["count"].to_numpy(np.int64)),
                                      pa.large_string())}
    keys = arrow_strings(notices["template_key"])
    message = pa.nulls(len(notices), pa.large_string())
    for key, template in templates.templates.items():
        rows = pc.equal(keys, key)
        if not pc.any(rows).as_py():
            continue
        due_by = chinese_day(send_day + dt.timedelta(days=template.act_within_days))
        parts = [piece for literal, name in template.parts()
                 for piece in (literal, due_by if name == "due_by" else values.get(name, ""))]
        message = pc.if_else(rows, join_texts(*parts), message)
    text = text_series(pc.fill_null(message, ""), notices.index)
    # The templates are checked to hold no card number and only last four digits go in; this
    # is the last line of defence all the same.
    return mask_cards(text)


def notice_ids(prefix: str, count: int) -> pd.Series:
    """`prefix` + 000001, 000002, ...: the new notices' ids, in order."""
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, count + 1)), pa.large_string()), 6, "0")
    return pd.Series(join_texts(prefix, numbers).to_pandas().to_numpy(), dtype="str")


def content_keys(notices: pd.DataFrame, templates: NoticeTemplates) -> pd.Series:
    """A digest of what a notice tells (not of when it may be sent): equal keys, same notice.

    Of its template's wording and deadline rule, not of its rendered text: the text's deadline
    counts from the first day it may be sent, so a rerun of D on a later day would make every
    open notice of D differ, and replace it, for nothing new to tell; a template corrected
    since does replace the open notices it words."""
    wording = notices["template_key"].map(
        {key: f"{template.text}|{template.act_within_days}"
         for key, template in templates.templates.items()}).fillna("").astype("str")
    text = join_texts(*(arrow_strings(notices[column].astype("str")) for column in
                        ("template_key", "channel", "amount", "card_last4", "installments")),
                      arrow_strings(wording), separator="|")
    return pd.Series(_sha256_prefixes(text), index=notices.index, dtype="str")


def _sha256_prefixes(texts: pa.Array | pa.ChunkedArray) -> list[str]:
    """The first 32 hex digits of each value's SHA-256 (of its UTF-8 bytes), hashed straight from
    Arrow's buffer: no Python string per value."""
    digests = []
    for offsets, data, _ in text_chunks(texts):
        data, bounds = memoryview(data), offsets.tolist()
        digests += [hashlib.sha256(data[start:end]).hexdigest()[:32]
                    for start, end in zip(bounds, bounds[1:])]
    return digests


# --- the rerun merge ---------------------------------------------------------------------------

@dataclass
class OutboxChange:
    """What a run does to D's notices: cancel these, insert those; `notices` is D's outbox after."""

    cancel: list[str]
    insert: pd.DataFrame  # STORED_COLUMNS
    notices: pd.DataFrame  # NOTICES_COLUMNS, every notice of D after the change
    kept: int  # notices still `new` left as they were

    def channel_counts(self) -> dict[str, int]:
        live = self.notices[self.notices["state"] != CANCELLED]
        return {str(k): int(v) for k, v in live["channel"].value_counts().sort_index().items()}

    def counts(self) -> dict[str, int]:
        return {"added": len(self.insert), "cancelled": len(self.cancel), "kept": self.kept,
                "taken": int((~self.notices["state"].isin([NEW, CANCELLED])).sum())}


class Outbox:
    """D's notice merge, planned outside the database and applied inside D's transaction.

    `plan` is given D's stored notices (read under row locks) and returns the change; the
    database sink applies it. The result is kept for notices.csv.
    """

    def __init__(self, items: pd.DataFrame, templates: NoticeTemplates, business_date: dt.date,
                 now: dt.datetime, tz: ZoneInfo, run_id: str, repeat_borrowers=()) -> None:
        self.items, self.templates = items, templates
        self.business_date, self.now, self.tz = business_date, now, tz
        self.run_id, self.repeat_borrowers = run_id, repeat_borrowers
        self.change: OutboxChange | None = None
        self.ahead: Future | None = None

    def compose_ahead(self, executor) -> None:
        """Start composing the notices of every item on `executor` (a side thread, while the
        database write is under way), before D's stored notices are read: `plan` uses them as
        they are unless a notice the messaging system has taken already covers some item."""
        self.ahead = executor.submit(compose, self.items, self.templates, self.business_date,
                                     self.now, self.tz, self.repeat_borrowers)

    def plan(self, stored: pd.DataFrame) -> OutboxChange:
        composed = None
        if self.ahead is not None:
            try:
                composed = self.ahead.result()
            except Exception:  # noqa: BLE001 - composed again below, where it raises again
                composed = None
        self.change = plan_outbox(stored, self.items, self.templates, self.business_date,
                                  self.now, self.tz, self.run_id, self.repeat_borrowers,
                                  composed=composed)
        return self.change


def plan_outbox(stored: pd.DataFrame, items: pd.DataFrame, templates: NoticeTemplates,
                business_date: dt.date, now: dt.datetime, tz: ZoneInfo, run_id: str,
                repeat_borrowers=(), composed: pd.DataFrame | None = None) -> OutboxChange:
    """Merge this run's notices into D's stored ones (columns NOTICES_COLUMNS, as text).

    `composed`: compose() of all `items` with the same arguments, if made already."""
    stored = stored.reindex(columns=NOTICES_COLUMNS).fillna("").astype("str")
    for column in ("send_after", "created_at", "cancelled_at"):
        stored[column] = local_text(stored[column], tz)
    taken = stored[~stored["state"].isin([NEW, CANCELLED])]
    untold = not_yet_told(items, taken)
    if composed is not None and len(untold) == len(items):
        candidates = composed  # no taken notice covers any item: the notices made ahead stand
    else:
        candidates = compose(untold, templates, business_date, now, tz, repeat_borrowers)
    open_ = stored[stored["state"] == NEW]
    if len(open_):
        open_keys = pd.MultiIndex.from_frame(open_[["borrower_id", "content_key"]])
        candidate_keys = pd.MultiIndex.from_frame(candidates[["borrower_id", "content_key"]])
        unchanged = candidate_keys.isin(open_keys)
        cancel = open_.loc[~open_keys.isin(candidate_keys), "notice_id"].tolist()
    else:  # D's first run, or all its notices taken or cancelled: nothing to compare
        unchanged, cancel = np.zeros(len(candidates), dtype=bool), []
    made_at = pd.Timestamp(now).tz_convert("UTC").floor("s").tz_convert(tz).isoformat()
    fresh = candidates[~unchanged].reset_index(drop=True)
    insert = fresh.assign(
        notice_id=notice_ids(f"{business_date:%Y%m%d}-{run_id}-", len(fresh)),
        business_date=business_date.isoformat(),
        amount=fmt_yuan(fresh["amount"]) if len(fresh) else pd.Series([], dtype="str"),
        state=NEW, created_at=made_at, created_run_id=run_id)[STORED_COLUMNS]
    after = stored.copy()
    withdrawn = after["notice_id"].isin(cancel)
    after.loc[withdrawn, "state"] = CANCELLED
    after.loc[withdrawn, "cancelled_run_id"] = run_id
    after.loc[withdrawn, "cancelled_at"] = made_at
    added = insert.reindex(columns=NOTICES_COLUMNS)
    added = added.astype({column: "str" for column in added.columns
                          if added[column].dtype != "str"}).fillna("")
    after = pd.concat([after, added], ignore_index=True) if len(after) else added
    # notices.csv's order, by integer ranks (sorting the three text columns costs 0.2 s at
    # 180k notices).
    order = np.lexsort([sorted_ranks(after[column])
                        for column in ("notice_id", "created_at", "borrower_id")])
    return OutboxChange(cancel=cancel, insert=insert,
                        notices=after.iloc[order].reset_index(drop=True),
                        kept=int(unchanged.sum()))
