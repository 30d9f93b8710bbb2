"""Suspected gateway outages, inferred from the settlement files alone. Pure and vectorised.

Operations learn of most gateway outages from the settlement files the next morning. This module
finds them so they can be confirmed into `gateway_incidents.csv` and the date rerun (which turns
the affected `no_settlement_record` installments into `gateway_outage`).

The rule, per gateway whose settlement file has arrived:

1. Every sent attempt (an instruction with `sent_at`) of that gateway is one *attempt*. It is a
   *technical failure* when it has no SUCCESS row and either no settlement row at all (in any
   arrived file: the gateway never answered), or its latest FAILED row (by `txn_time`) carries a
   code its file's scheme maps to `gateway_outage` (`96`, `AB05`, ...; operator overrides count).
   Attempts of a gateway whose file has not arrived are not judged.
2. Attempts are put in fixed buckets of `bucket_minutes` (default 15) by their `sent_at` in local
   time, aligned on the clock (10:00, 10:15, ...): `sent_at` is what an incident window covers.
3. A bucket is suspect when it has at least `min_failures` (default 5) technical failures and
   they are at least `min_rate` (default 50%) of the bucket's attempts: a few lost records are
   routine, most of a quarter hour failing is not.
4. Suspect buckets of one gateway that follow each other are merged into one window.

Each window is reported with the `sent_at` of its first and last technical failure (inclusive,
so the row can be pasted as `started_at, ended_at` of `gateway_incidents.csv`), the failures and
attempts in its buckets, and the incident already listed in `gateway_incidents.csv` that
overlaps it, if any.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from recon.codes import CodeMap
from recon.contract import RootCause
from recon.ids import IdCodes, arrived_rows, encode_instruction_ids, latest_per_group, nanos

SUSPECTED_COLUMNS = ["business_date", "gateway", "window_start", "window_end", "failures",
                     "attempts", "failure_rate", "no_settlement_record", "outage_code",
                     "known_incident"]


@dataclass(frozen=True)
class OutageRule:
    """The detection parameters (see the module docstring)."""

    bucket_minutes: int = 15
    min_failures: int = 5
    min_rate: float = 0.5


DEFAULT_RULE = OutageRule()


def technical_failures(instructions: pd.DataFrame, settlements: pd.DataFrame,
                       arrived_gateways: set[str], codes: CodeMap,
                       ids: IdCodes | None = None) -> pd.DataFrame:
    """Sent attempts of arrived gateways with `no_record` and `outage_code` flags (step 1).

    Ids are matched as integer codes (classify's encode_ids, or `ids` if the caller has them):
    string joins cost seconds per million.
    """
    judged = (instructions["sent_at"].notna().to_numpy()
              & arrived_rows(instructions["gateway"], arrived_gateways))
    attempts = instructions.loc[judged, ["instruction_id", "gateway", "sent_at"]].reset_index(
        drop=True)
    attempts["gateway_key"] = attempts["gateway"].str.upper()

    if ids is None:
        instruction_code, settlement_code, n_ids = encode_instruction_ids(instructions,
                                                                          settlements)
    else:
        instruction_code, settlement_code = ids.instruction_code, ids.settlement_instruction_code
        n_ids = ids.instruction_ids
    attempt_code = instruction_code[judged]
    ids = max(n_ids, 1)
    is_success = (settlements["status"] == "SUCCESS").to_numpy(bool)
    is_failed = (settlements["status"] == "FAILED").to_numpy(bool)
    answered = np.zeros(ids, dtype=bool)
    answered[settlement_code] = True
    succeeded = np.zeros(ids, dtype=bool)
    succeeded[settlement_code[is_success]] = True
    latest_failed = latest_per_group(np.where(is_failed, settlement_code, -1),
                                     nanos(settlements["txn_time"]),
                                     settlements["gateway_txn_id"])
    failed = settlements[["scheme", "response_code"]].iloc[latest_failed]
    outage = (codes.causes_of(failed["scheme"], failed["response_code"])
              == RootCause.GATEWAY_OUTAGE.value).to_numpy(bool)
    outage_coded = np.zeros(ids, dtype=bool)
    outage_coded[settlement_code[latest_failed[outage]]] = True

    not_succeeded = ~succeeded[attempt_code]
    attempts["no_record"] = not_succeeded & ~answered[attempt_code]
    attempts["outage_code"] = not_succeeded & outage_coded[attempt_code]
    attempts["failed"] = attempts["no_record"] | attempts["outage_code"]
    return attempts


def suspected_outages(instructions: pd.DataFrame, settlements: pd.DataFrame,
                      arrived_gateways: set[str], codes: CodeMap, incidents: pd.DataFrame,
                      tz: ZoneInfo, rule: OutageRule = DEFAULT_RULE,
                      ids: IdCodes | None = None) -> pd.DataFrame:
    """Windows where one gateway's technical failures cluster, ordered by gateway and time.

    Columns: SUSPECTED_COLUMNS without business_date; times are local `YYYY-MM-DD HH:MM:SS`.
    """
    attempts = technical_failures(instructions, settlements, arrived_gateways, codes, ids)
    if attempts.empty or not attempts["failed"].any():
        return _empty()
    width = pd.Timedelta(minutes=rule.bucket_minutes)
    local = attempts["sent_at"].dt.tz_convert(tz).dt.tz_localize(None)
    attempts["bucket"] = local.dt.floor(width)
    attempts["failed_at"] = attempts["sent_at"].where(attempts["failed"])

    buckets = attempts.groupby(["gateway_key", "bucket"], as_index=False).agg(
        gateway=("gateway", "first"), attempts=("instruction_id", "size"),
        failures=("failed", "sum"), no_settlement_record=("no_record", "sum"),
        outage_code=("outage_code", "sum"), first_failure=("failed_at", "min"),
        last_failure=("failed_at", "max"))
    suspect = buckets[(buckets["failures"] >= rule.min_failures)
                      & (buckets["failures"] >= rule.min_rate * buckets["attempts"])]
    if suspect.empty:
        return _empty()

    suspect = suspect.sort_values(["gateway_key", "bucket"])
    starts_window = (suspect["gateway_key"] != suspect["gateway_key"].shift()) | (
        suspect["bucket"] - suspect["bucket"].shift() != width)
    windows = suspect.assign(window=starts_window.cumsum()).groupby("window", as_index=False).agg(
        gateway_key=("gateway_key", "first"), gateway=("gateway", "first"),
        started_at=("first_failure", "min"), ended_at=("last_failure", "max"),
        failures=("failures", "sum"), attempts=("attempts", "sum"),
        no_settlement_record=("no_settlement_record", "sum"), outage_code=("outage_code", "sum"))
    windows["known_incident"] = known_incident(windows, incidents)
    return pd.DataFrame({
        "gateway": windows["gateway"],
        "window_start": _local_text(windows["started_at"], tz),
        "window_end": _local_text(windows["ended_at"], tz),
        "failures": windows["failures"].astype("int64"),
        "attempts": windows["attempts"].astype("int64"),
        "failure_rate": (windows["failures"] / windows["attempts"]).round(4),
        "no_settlement_record": windows["no_settlement_record"].astype("int64"),
        "outage_code": windows["outage_code"].astype("int64"),
        "known_incident": windows["known_incident"],
    }).reset_index(drop=True)


def known_incident(windows: pd.DataFrame, incidents: pd.DataFrame) -> pd.Series:
    """Per window, the description of the first listed incident of its gateway overlapping it."""
    result = pd.Series("", index=windows.index, dtype="str")
    if incidents.empty:
        return result
    listed = incidents.assign(gateway_key=incidents["gateway"].str.upper())
    joined = windows.reset_index(names="row")[["row", "gateway_key", "started_at", "ended_at"]] \
        .merge(listed[["gateway_key", "started_at", "ended_at", "description"]],
               on="gateway_key", suffixes=("", "_incident"))
    overlaps = joined[(joined["started_at_incident"] <= joined["ended_at"])
                      & (joined["ended_at_incident"] >= joined["started_at"])]
    first = overlaps.sort_values(["row", "started_at_incident"]).drop_duplicates("row")
    description = first["description"].where(first["description"].str.len() > 0, "incident")
    result.loc[first["row"].to_numpy()] = description.to_numpy()
    return result


def _local_text(moments: pd.Series, tz: ZoneInfo) -> pd.Series:
    return moments.dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M:%S").astype("str")


def _empty() -> pd.DataFrame:
    return pd.DataFrame({
        "gateway": pd.Series(dtype="str"), "window_start": pd.Series(dtype="str"),
        "window_end": pd.Series(dtype="str"), "failures": pd.Series(dtype="int64"),
        "attempts": pd.Series(dtype="int64"), "failure_rate": pd.Series(dtype="float64"),
        "no_settlement_record": pd.Series(dtype="int64"),
        "outage_code": pd.Series(dtype="int64"), "known_incident": pd.Series(dtype="str"),
    })
