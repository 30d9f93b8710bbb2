"""Outage inference (recon.outages): windows where one gateway's technical failures cluster."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from recon.codes import DEFAULT_SCHEMES, CodeMap
from recon.contract import RootCause
from recon.outages import OutageRule, suspected_outages

TZ = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-27"
RULE = OutageRule(bucket_minutes=15, min_failures=3, min_rate=0.5)
SCHEME_OF = {"UNIONPAY": "iso8583", "CNAPS_DD": "iso20022"}


def local(clock: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY} {clock}", tz=TZ).tz_convert("UTC")


class Day:
    """A day's sent attempts and settlement rows, built one attempt at a time."""

    def __init__(self) -> None:
        self.instructions: list[dict] = []
        self.settlements: list[dict] = []

    def attempt(self, gateway: str, sent: str, *rows: tuple[str, str]) -> "Day":
        """rows: (status, response_code) of the settlement rows answering this attempt."""
        instruction_id = f"I{len(self.instructions):04d}"
        self.instructions.append({"instruction_id": instruction_id, "gateway": gateway,
                                  "sent_at": local(sent)})
        for number, (status, code) in enumerate(rows):
            self.settlements.append({
                "gateway_txn_id": f"T{instruction_id}{number}", "instruction_id": instruction_id,
                "status": status, "response_code": code, "txn_time": local(sent),
                "gateway": gateway, "scheme": SCHEME_OF.get(gateway.upper(), "iso8583")})
        return self

    def many(self, count: int, gateway: str, first: str, seconds: int, *rows) -> "Day":
        start = pd.Timestamp(f"{DAY} {first}")
        for n in range(count):
            self.attempt(gateway, (start + pd.Timedelta(seconds=seconds * n)).strftime("%H:%M:%S"),
                         *rows)
        return self

    def suspected(self, *, arrived=("UNIONPAY", "CNAPS_DD"), codes=None, incidents=None,
                  rule=RULE) -> pd.DataFrame:
        instructions = pd.DataFrame(self.instructions, columns=["instruction_id", "gateway",
                                                                "sent_at"])
        settlements = pd.DataFrame(self.settlements, columns=[
            "gateway_txn_id", "instruction_id", "status", "response_code", "txn_time", "gateway",
            "scheme"])
        if incidents is None:
            incidents = pd.DataFrame(columns=["gateway", "started_at", "ended_at", "description"])
        return suspected_outages(instructions, settlements, set(arrived), codes or CodeMap(),
                                 incidents, TZ, rule)


OK = ("SUCCESS", "00")


def test_attempts_without_any_settlement_record_clustering_in_a_bucket_are_one_window():
    day = Day().many(4, "UNIONPAY", "10:01:00", 60).many(2, "UNIONPAY", "10:10:00", 60, OK)
    [window] = day.suspected().to_dict("records")
    assert window == {
        "gateway": "UNIONPAY", "window_start": f"{DAY} 10:01:00", "window_end": f"{DAY} 10:04:00",
        "failures": 4, "attempts": 6, "failure_rate": 0.6667, "no_settlement_record": 4,
        "outage_code": 0, "known_incident": ""}


def test_fewer_failures_than_the_minimum_are_not_an_outage():
    assert Day().many(2, "UNIONPAY", "10:01:00", 60).suspected().empty


def test_failures_below_the_minimum_share_of_attempts_are_not_an_outage():
    day = Day().many(3, "UNIONPAY", "10:01:00", 60).many(4, "UNIONPAY", "10:05:00", 60, OK)
    assert day.suspected().empty


OUTAGE_CODES = [(scheme, code) for scheme, causes in DEFAULT_SCHEMES.items()
                for code in causes[RootCause.GATEWAY_OUTAGE]]


@pytest.mark.parametrize("scheme, code", OUTAGE_CODES, ids=lambda value: value)
def test_failed_rows_whose_code_maps_to_gateway_outage_are_technical_failures(scheme, code):
    gateway = "UNIONPAY" if scheme == "iso8583" else "CNAPS_DD"
    [window] = Day().many(3, gateway, "10:01:00", 60, ("FAILED", code)).suspected().to_dict(
        "records")
    assert (window["gateway"], window["failures"], window["outage_code"]) == (gateway, 3, 3)


@pytest.mark.parametrize("code", ["51", "62", "05", "N7"],
                         ids=["insufficient_balance", "account_frozen", "other_decline",
                              "unclassified"])
def test_declines_that_are_not_gateway_outages_do_not_count(code):
    assert Day().many(5, "UNIONPAY", "10:01:00", 60, ("FAILED", code)).suspected().empty


def test_the_latest_failed_row_of_an_attempt_decides_its_code():
    day = Day()
    for minute in range(3):
        day.attempt("UNIONPAY", f"10:0{minute}:00", ("FAILED", "96"))
        day.settlements[-1]["txn_time"] = local("10:20:00")
        day.settlements.append({**day.settlements[-1], "gateway_txn_id": f"later{minute}",
                                "response_code": "51", "txn_time": local("10:30:00")})
    assert day.suspected().empty


def test_an_attempt_that_succeeded_is_no_failure_whatever_else_its_rows_say():
    day = Day().many(3, "UNIONPAY", "10:01:00", 60, ("FAILED", "96"), OK)
    assert day.suspected().empty


def test_an_operator_code_mapped_to_gateway_outage_counts():
    codes = CodeMap({("iso8583", "Q1"): RootCause.GATEWAY_OUTAGE})
    day = Day().many(3, "UNIONPAY", "10:01:00", 60, ("FAILED", " q1 "))
    assert len(day.suspected(codes=codes)) == 1
    assert day.suspected().empty


def test_attempts_of_a_gateway_whose_file_has_not_arrived_are_not_judged():
    day = Day().many(5, "BAOFU", "10:01:00", 60)
    assert day.suspected(arrived={"UNIONPAY"}).empty


def test_gateway_ids_are_matched_case_insensitively():
    day = Day().many(3, "UnionPay", "10:01:00", 60)
    assert day.suspected(arrived={"UNIONPAY"})["gateway"].tolist() == ["UnionPay"]


def test_buckets_are_aligned_on_the_local_clock():
    # 10:13..10:17 straddles 10:15: two buckets of 2-3 failures, neither reaching 4.
    day = Day().many(5, "UNIONPAY", "10:13:00", 60)
    assert day.suspected(rule=OutageRule(15, 4, 0.5)).empty
    assert len(day.suspected(rule=OutageRule(15, 2, 0.5))) == 1


def test_adjacent_suspect_buckets_merge_into_one_window():
    day = Day().many(3, "UNIONPAY", "10:10:00", 60).many(3, "UNIONPAY", "10:20:00", 60) \
        .many(3, "UNIONPAY", "10:31:00", 60)
    [window] = day.suspected().to_dict("records")
    assert (window["window_start"], window["window_end"]) == (f"{DAY} 10:10:00", f"{DAY} 10:33:00")
    assert (window["failures"], window["attempts"]) == (9, 9)


def test_suspect_buckets_with_a_quiet_bucket_between_are_two_windows():
    day = Day().many(3, "UNIONPAY", "10:00:00", 60).many(3, "UNIONPAY", "10:30:00", 60)
    assert day.suspected()["window_start"].tolist() == [f"{DAY} 10:00:00", f"{DAY} 10:30:00"]


def test_each_gateway_is_judged_on_its_own_attempts():
    day = Day().many(3, "UNIONPAY", "10:00:00", 60).many(10, "CNAPS_DD", "10:00:00", 60, OK)
    assert day.suspected()["gateway"].tolist() == ["UNIONPAY"]


def test_a_window_already_in_gateway_incidents_names_that_incident():
    incidents = pd.DataFrame({"gateway": ["unionpay", "UNIONPAY"],
                              "started_at": [local("09:00:00"), local("10:02:00")],
                              "ended_at": [local("09:30:00"), local("10:30:00")],
                              "description": ["earlier", "银联通道故障"]})
    day = Day().many(3, "UNIONPAY", "10:01:00", 60)
    assert day.suspected(incidents=incidents)["known_incident"].tolist() == ["银联通道故障"]


def test_a_day_without_failures_has_no_suspected_outage():
    assert Day().many(10, "UNIONPAY", "10:00:00", 30, OK).suspected().empty
    assert Day().suspected().empty
