"""recon.actions: the gateways a retry may move to."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pandas as pd

from recon.actions import clean_gateways

TZ = ZoneInfo("Asia/Shanghai")


def inputs(settlements: list[tuple[str, str]], arrived: set[str], incidents=None):
    return SimpleNamespace(
        business_date=dt.date(2026, 11, 27), arrived_gateways=arrived,
        settlements=pd.DataFrame(settlements, columns=["gateway", "status"]),
        incidents=incidents if incidents is not None else pd.DataFrame(
            {"gateway": pd.Series([], dtype="str"),
             "ended_at": pd.Series([], dtype="datetime64[ns, UTC]")}))


def test_the_gateway_that_settled_most_debits_comes_first_whatever_the_case_of_its_rows():
    rows = [("UNIONPAY", "SUCCESS")] * 3 + [("lianlian", "SUCCESS")] * 2 \
        + [("LIANLIAN", "SUCCESS")] * 2 + [("UNIONPAY", "FAILED")] * 5
    assert clean_gateways(inputs(rows, {"UNIONPAY", "LIANLIAN", "CNAPS_DD"}), pd.DataFrame(),
                          TZ) == ["LIANLIAN", "UNIONPAY", "CNAPS_DD"]


def test_a_gateway_with_an_incident_or_a_suspected_outage_on_d_is_not_clean():
    incidents = pd.DataFrame({"gateway": ["unionpay"],
                              "ended_at": [pd.Timestamp("2026-11-27 10:00", tz=TZ)]})
    suspected = pd.DataFrame({"gateway": ["LIANLIAN"]})
    assert clean_gateways(inputs([], {"UNIONPAY", "LIANLIAN", "CNAPS_DD"}, incidents), suspected,
                          TZ) == ["CNAPS_DD"]
