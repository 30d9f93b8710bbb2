"""Native settlement formats read through profiles: each layout rule, each value rule, each proof
of completeness, and hostile XML refused with a reason (never a hang, a traceback or a file read)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import zipfile
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from recon import validate as v
from recon.arrival import NotArrived
from recon.config import Settings
from recon.profiles import Profile
from recon.sources.native import check_sample, parse
from recon.sources.native.completeness import prove
from recon.errors import InputRefused
from recon.sources.native.text import NativeFileError

D = dt.date(2026, 11, 27)
CONTEXT = v.RuleContext(D, ZoneInfo("Asia/Shanghai"))
SETTINGS = Settings(timezone="Asia/Shanghai")


def profile(**fields) -> Profile:
    base = {"gateway": "GW", "format": "delimited", "completeness": {"method": "marker"}}
    base.update(fields)
    return Profile.model_validate(base)


def read(prof: Profile, data: bytes, name: str = "f.txt", tmp_path=None):
    path = (tmp_path / name) if tmp_path else __import__("pathlib").Path(name)
    return parse(prof, path, data, CONTEXT, SETTINGS)


COLUMNS = {"gateway_txn_id": "txn", "instruction_id": "order", "amount": "amt",
           "status": "st", "response_code": "code", "txn_time": "time"}


# --- delimited ----------------------------------------------------------------------------------

def test_wechat_style_backtick_fields_header_and_summary_lines():
    data = ("交易时间,商户订单号,微信订单号,交易状态,金额,返回码\n"
            "`2026-11-27 10:00:01,`I1,`W1,`SUCCESS,`¥1234.50,`00\n"
            "`2026-11-27 10:00:02,`I2,`W2,`FAIL,`12.00元,`51\n"
            "总交易单数,总金额\n`2,`1234.50\n").encode()
    prof = profile(layout={"field_prefix": "`"},
                   columns={"gateway_txn_id": "微信订单号", "instruction_id": "商户订单号",
                            "amount": "金额", "status": "交易状态", "response_code": "返回码",
                            "txn_time": "交易时间"},
                   status={"map": {"SUCCESS": "SUCCESS", "FAIL": "FAILED"}},
                   completeness={"method": "summary", "pattern":
                                 r"总交易单数,总金额\n`(?P<count>\d+),`(?P<total>[\d.]+)"})
    prof = prof.model_copy(update={"layout": prof.layout.model_copy(
        update={"trailer_lines": 2})})
    parsed = read(prof, data)
    valid = parsed.validated.valid
    assert valid["instruction_id"].tolist() == ["I1", "I2"]
    assert valid["amount"].tolist() == [123450, 1200]
    assert valid["status"].tolist() == ["SUCCESS", "FAILED"]
    assert parsed.validated.rows_rejected == 0
    assert "complete: 2 records totalling 1234.50" in prove(
        prof, __import__("pathlib").Path("f.txt"), "", parsed.facts, D).verdict


def test_header_on_line_n_comments_trailing_delimiter_and_no_quoting():
    data = ("对账单 2026-11-27\n# generated\n流水|订单|金额|状态|时间|\n"
            'T1|I1|1,000|成功|20261127080000|\n# a comment in the middle\n'
            'T2|"I2|250|交易失败|20261127090000|\n').encode("gbk")
    prof = profile(encoding="gbk",
                   layout={"delimiter": "|", "quote": "", "header_line": 3, "comment": "#",
                           "trailing_delimiter": True},
                   columns={"gateway_txn_id": "流水", "instruction_id": "订单", "amount": "金额",
                            "status": "状态", "txn_time": "时间"},
                   values={"amount_unit": "fen", "time_format": "yyyyMMddHHmmss"},
                   status={"contains": {"成功": "SUCCESS", "失败": "FAILED"}})
    valid = read(prof, data).validated.valid
    assert valid["instruction_id"].tolist() == ["I1", '"I2']  # no quoting: a quote is text
    assert valid["amount"].tolist() == [1000, 250]  # fen with a grouping comma
    assert valid["line"].tolist() == [4, 6]
    assert valid["txn_time"].iloc[0] == pd.Timestamp("2026-11-27 00:00:00", tz="UTC")


def test_columns_by_position_without_header_and_a_joined_date_and_time():
    data = b"I1;T1;20261127;101500;S;12.5\nI2;T2;20261127;235959;F;3\n"
    prof = profile(layout={"delimiter": ";", "header_line": 0},
                   columns={"instruction_id": 1, "gateway_txn_id": 2, "txn_time": [3, 4],
                            "status": 5, "amount": 6},
                   values={"time_format": "yyyyMMdd HHmmss", "timezone": "UTC"},
                   status={"map": {"S": "SUCCESS", "F": "FAILED"}})
    valid = read(prof, data).validated.valid
    assert valid["amount"].tolist() == [1250, 300]
    assert valid["txn_time"].tolist() == [pd.Timestamp("2026-11-27 10:15:00", tz="UTC"),
                                          pd.Timestamp("2026-11-27 23:59:59", tz="UTC")]


def test_bad_native_values_are_rejected_with_line_column_value_and_reason():
    data = ("txn,order,amt,st,time\nT1,I1,12.50,S,20261127080000\nT2,I2,1250,S,20261127080000\n"
            "T3,I3,100,MAYBE,20261127080000\nT4,I4,100,S,20260230080000\nT5,I5,1,2,3\n").encode()
    prof = profile(columns={k: c for k, c in COLUMNS.items() if k != "response_code"},
                   values={"amount_unit": "fen", "time_format": "yyyyMMddHHmmss"},
                   status={"map": {"S": "SUCCESS"}})
    rejects = read(prof, data).validated.rejects
    got = list(zip(rejects["line"], rejects["column"], rejects["value"]))
    assert got == [(2, "amount", "12.50"), (4, "status", "MAYBE"), (5, "txn_time", "20260230080000"),
                   (6, "status", "2")]
    assert "in fen" in rejects["reason"].iloc[0]


def test_a_record_with_the_wrong_number_of_fields_is_rejected_not_fatal():
    data = b"txn|order|amt|st|time\nT1|I1|1.00|S|2026-11-27 08:00:00\nT2|I2|1.00\n"
    prof = profile(layout={"delimiter": "|"},
                   columns={k: c for k, c in COLUMNS.items() if k != "response_code"},
                   status={"constant": "SUCCESS"}, lists="success_only")
    validated = read(prof, data).validated
    assert validated.rows_used == 1
    assert validated.rejects.iloc[0]["line"] == 3
    assert "expected 5 fields, found 3" in validated.rejects.iloc[0]["reason"]


def test_a_header_without_a_named_column_is_refused_with_the_header_it_has():
    prof = profile(columns={**COLUMNS, "amount": "金额"})
    with pytest.raises(NativeFileError, match=r"line 1: no column '金额' \(columns.amount\)"):
        read(prof, b"txn,order,amt,st,code,time\n")


@pytest.mark.parametrize("wrap", ["gzip", "zip"])
def test_files_may_come_inside_gzip_or_zip(wrap):
    inner = b"txn,order,amt,st,time\nT1,I1,1.00,SUCCESS,2026-11-27 08:00:00\n"
    if wrap == "gzip":
        data = gzip.compress(inner)
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("readme.md", "ignored")
            archive.writestr("day/settle.csv", inner)
        data = buffer.getvalue()
    prof = profile(member="*.csv", columns={k: c for k, c in COLUMNS.items()
                                            if k != "response_code"},
                   status={"map": {"SUCCESS": "SUCCESS"}})
    parsed = read(prof, data, "f.gz" if wrap == "gzip" else "f.zip")
    assert parsed.validated.rows_used == 1
    assert "!" in parsed.display


def test_a_gzip_bomb_stops_at_the_size_limit():
    bomb = gzip.compress(b"0" * 5_000_000)
    prof = profile(columns=COLUMNS)
    small = Settings(max_file_bytes=1_000_000)
    with pytest.raises(NativeFileError, match="inflates to more than"):
        parse(prof, __import__("pathlib").Path("b.gz"), bomb, CONTEXT, small)


# --- fixed width --------------------------------------------------------------------------------

def fixed_profile(**extra) -> Profile:
    fields = [{"name": "txn", "width": 6}, {"name": "order", "width": 6},
              {"name": "amt", "width": 8}, {"name": "st", "width": 1},
              {"name": "msg", "width": 8}, {"name": "time", "width": 14}]
    return profile(format="fixed_width", encoding="gbk",
                   layout={"fields": fields, **extra.pop("layout", {})},
                   columns={"gateway_txn_id": "txn", "instruction_id": "order", "amount": "amt",
                            "status": "st", "response_msg": "msg", "txn_time": "time"},
                   values={"amount_unit": "fen", "time_format": "yyyyMMddHHmmss"},
                   status={"map": {"0": "SUCCESS", "1": "FAILED"}}, **extra)


def record(txn, order, amount, status, message, time) -> bytes:
    msg = message.encode("gbk")
    return (txn.ljust(6) + order.ljust(6) + amount.rjust(8) + status).encode() + \
        msg + b" " * (8 - len(msg)) + time.encode()


def test_fixed_width_fields_are_cut_in_bytes_of_the_encoding():
    data = b"\n".join([record("T1", "I1", "12345", "0", "成功", "20261127080000"),
                       record("T2", "I2", "5", "1", "余额不足", "20261127090000")]) + b"\n"
    valid = read(fixed_profile(), data).validated.valid
    assert valid["response_msg"].tolist() == ["成功", "余额不足"]  # 4 and 8 bytes of GBK
    assert valid["amount"].tolist() == [12345, 5]
    assert valid["instruction_id"].tolist() == ["I1", "I2"]


def test_fixed_width_record_too_long_or_cut_character_is_rejected_by_line():
    good = record("T1", "I1", "1", "0", "ok", "20261127080000")
    long = good + b"EXTRA"
    cut = record("T3", "I3", "1", "0", "abcdefg", "20261127080000")[:-15] + "中".encode("gbk")[:1] \
        + b"20261127080000"
    validated = read(fixed_profile(), b"\n".join([good, long, cut]) + b"\n").validated
    assert validated.rows_used == 1
    reasons = dict(zip(validated.rejects["line"], validated.rejects["reason"]))
    assert "bytes, the layout's fields take" in reasons[2]
    assert "not valid in the file's encoding" in reasons[3]


def test_fixed_width_separator_byte_between_fields():
    fields = [{"name": "txn", "width": 3}, {"name": "order", "width": 3},
              {"name": "amt", "width": 4}, {"name": "st", "width": 1},
              {"name": "time", "width": 14}]
    prof = profile(format="fixed_width", layout={"fields": fields, "separator": "|"},
                   columns={"gateway_txn_id": "txn", "instruction_id": "order", "amount": "amt",
                            "status": "st", "txn_time": "time"},
                   values={"amount_unit": "fen", "time_format": "yyyyMMddHHmmss"},
                   status={"map": {"0": "SUCCESS"}})
    data = b"T01|I01|0100|0|20261127080000\nT02 I02|0100|0|20261127080000\n"
    validated = read(prof, data).validated
    assert validated.valid["gateway_txn_id"].tolist() == ["T01"]
    assert "no separator '|' at byte 4" in validated.rejects.iloc[0]["reason"]


# --- proofs of completeness ---------------------------------------------------------------------

def marker_case(tmp_path, content: bytes | None, pattern: str = ""):
    data = b"txn,order,amt,st,time\nT1,I1,1.50,SUCCESS,2026-11-27 08:00:00\n" \
           b"T2,I2,2.00,FAILED,2026-11-27 08:00:00\n"
    (tmp_path / "f.txt").write_bytes(data)
    if content is not None:
        (tmp_path / "f.txt.done").write_bytes(content)
    prof = profile(columns={k: c for k, c in COLUMNS.items() if k != "response_code"},
                   status={"map": {"SUCCESS": "SUCCESS", "FAILED": "FAILED"}},
                   completeness={"method": "marker", "file": "{name}.done", "pattern": pattern})
    return check_sample(prof, tmp_path / "f.txt", D, SETTINGS)


@pytest.mark.parametrize("content, complete, said", [
    (b"", True, "holds no counts"), (b"2|1.50\n", True, "2 records totalling 1.50"),
    (b"records=2\namount_total=1.50\n", True, "totalling 1.50"),
    (b"3|1.50", False, "declares 3"), (b"2|3.50", False, "declares 3.50"),
    (None, False, "f.txt.done (marker file) is missing"),
], ids=["empty", "count-total", "key-value", "count-off", "total-off", "missing"])
def test_marker_file_empty_or_with_count_and_total(tmp_path, content, complete, said):
    result = marker_case(tmp_path, content)
    assert result.complete is complete
    assert said in result.verdict


def test_a_ctl_beside_a_native_file_checks_gateway_date_count_and_total(tmp_path):
    data = b"txn,order,amt,st,time\nT1,I1,1.50,SUCCESS,2026-11-27 08:00:00\n"
    (tmp_path / "f.txt").write_bytes(data)
    prof = profile(columns={k: c for k, c in COLUMNS.items() if k != "response_code"},
                   status={"map": {"SUCCESS": "SUCCESS"}}, completeness={"method": "ctl"})
    (tmp_path / "f.ctl").write_bytes(b"gateway=GW\nbusiness_date=2026-11-26\nrecords=1\n"
                                     b"amount_total=1.50\n")
    assert "is for business date '2026-11-26'" in check_sample(prof, tmp_path / "f.txt", D,
                                                                 SETTINGS).verdict
    (tmp_path / "f.ctl").write_bytes(b"gateway=GW\nbusiness_date=2026-11-27\nrecords=1\n"
                                     b"amount_total=1.50\n")
    assert check_sample(prof, tmp_path / "f.txt", D, SETTINGS).complete


# --- ISO 20022 ----------------------------------------------------------------------------------

def pain002(version: str, body: str, group: str = "", counts: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:'
            f'xsd:pain.002.001.{version}"><CstmrPmtStsRpt><GrpHdr><MsgId>M</MsgId><CreDtTm>'
            f'2026-11-27T20:00:00+08:00</CreDtTm></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>O'
            f'</OrgnlMsgId>{group}{counts}</OrgnlGrpInfAndSts>{body}</CstmrPmtStsRpt>'
            f'</Document>').encode()


def tx(end_to_end: str, status: str = "", reason: str = "", instr: str = "") -> str:
    return (f"<TxInfAndSts><StsId>S{end_to_end}</StsId>"
            + (f"<OrgnlInstrId>{instr}</OrgnlInstrId>" if instr else "")
            + f"<OrgnlEndToEndId>{end_to_end}</OrgnlEndToEndId>"
            + (f"<TxSts>{status}</TxSts>" if status else "")
            + (f"<StsRsnInf><Rsn><Cd>{reason}</Cd></Rsn></StsRsnInf>" if reason else "")
            + '<OrgnlTxRef><Amt><InstdAmt Ccy="CNY">10.00</InstdAmt></Amt></OrgnlTxRef>'
            "</TxInfAndSts>")


XML_PROFILE = profile(format="pain.002", completeness={"method": "message"},
                      codes={"scheme": "iso20022"})


@pytest.mark.parametrize("version", ["03", "10"])
def test_pain002_status_and_reason_inherit_transaction_then_payment_then_group(version):
    body = ("<OrgnlPmtInfAndSts><OrgnlPmtInfId>P1</OrgnlPmtInfId><PmtInfSts>RJCT</PmtInfSts>"
            "<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>" + tx("E1") + tx("E2", "ACSC")
            + tx("E3", "RJCT", "AM04") + "</OrgnlPmtInfAndSts>"
            "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P2</OrgnlPmtInfId>" + tx("E4")
            + tx("E5", "PDNG") + "</OrgnlPmtInfAndSts>")
    parsed = read(XML_PROFILE, pain002(version, body, "<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn>"
                                                      "<Cd>MS03</Cd></Rsn></StsRsnInf>"))
    valid = parsed.validated.valid.set_index("instruction_id")
    assert valid["status"].to_dict() == {"E1": "FAILED", "E2": "SUCCESS", "E3": "FAILED",
                                         "E4": "FAILED", "E5": "PENDING"}
    assert valid["response_code"].to_dict() == {"E1": "AC04", "E2": "", "E3": "AM04",
                                                "E4": "MS03", "E5": ""}
    assert valid["txn_time"].iloc[0] == pd.Timestamp("2026-11-27 12:00:00", tz="UTC")
    assert not parsed.facts.message_counts  # no NbOfTxsPerSts: completeness cannot be proven


def test_pain002_instruction_id_from_orgnl_instr_id_when_the_profile_says_so():
    prof = XML_PROFILE.model_copy(update={"columns": {"instruction_id": "OrgnlInstrId"}})
    body = "<OrgnlPmtInfAndSts>" + tx("E1", "ACSC", instr="I-1") + "</OrgnlPmtInfAndSts>"
    assert read(prof, pain002("10", body)).validated.valid["instruction_id"].tolist() == ["I-1"]


def test_pain002_counts_per_status_prove_or_refuse_the_file():
    body = "<OrgnlPmtInfAndSts>" + tx("E1", "ACSC") + tx("E2", "RJCT", "AM04") + \
        "</OrgnlPmtInfAndSts>"
    counts = ("<NbOfTxsPerSts><DtldNbOfTxs>1</DtldNbOfTxs><DtldSts>ACSC</DtldSts>"
              "<DtldCtrlSum>10.00</DtldCtrlSum></NbOfTxsPerSts><NbOfTxsPerSts><DtldNbOfTxs>"
              "{n}</DtldNbOfTxs><DtldSts>RJCT</DtldSts></NbOfTxsPerSts>")
    path = __import__("pathlib").Path("p.xml")
    good = read(XML_PROFILE, pain002("10", body, counts=counts.format(n=1)))
    assert prove(XML_PROFILE, path, "", good.facts, D).verdict.startswith("complete")
    bad = read(XML_PROFILE, pain002("10", body, counts=counts.format(n=2)))
    refusal = prove(XML_PROFILE, path, "", bad.facts, D)
    assert isinstance(refusal, NotArrived)
    assert re.search("NbOfTxsPerSts RJCT .group. says 2 transaction", refusal.reason)


def test_a_bad_xml_transaction_is_rejected_with_its_element_path():
    body = ("<OrgnlPmtInfAndSts>" + tx("E1", "ACSC") + tx("E2", "WHAT") + "</OrgnlPmtInfAndSts>")
    rejects = read(XML_PROFILE, pain002("10", body)).validated.rejects
    assert rejects["column"].tolist() == ["status"]
    assert rejects["reason"].iloc[0].endswith(
        "(at /Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[2])")


def camt054(entries: str, summary: str = "") -> bytes:
    return ('<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
            "<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>N</MsgId><CreDtTm>2026-11-27T20:00:00"
            f"</CreDtTm></GrpHdr><Ntfctn><Id>1</Id>{summary}{entries}</Ntfctn>"
            "</BkToCstmrDbtCdtNtfctn></Document>").encode()


def entry(ref: str, side: str = "DBIT", returned: str = "", status: str = "BOOK") -> str:
    rtr = f"<RtrInf><Rsn><Cd>{returned}</Cd></Rsn><AddtlInf>退票</AddtlInf></RtrInf>" \
        if returned else ""
    return (f'<Ntry><Amt Ccy="CNY">5.00</Amt><CdtDbtInd>{side}</CdtDbtInd><Sts><Cd>{status}'
            f"</Cd></Sts><BookgDt><Dt>2026-11-27</Dt></BookgDt><NtryDtls><TxDtls><Refs>"
            f"<AcctSvcrRef>A{ref}</AcctSvcrRef><EndToEndId>{ref}</EndToEndId></Refs>{rtr}"
            "</TxDtls></NtryDtls></Ntry>")


def test_camt054_debit_entries_booked_or_returned_and_credits_skipped():
    prof = XML_PROFILE.model_copy(update={"format": "camt.054"})
    summary = ("<TxsSummry><TtlDbtNtries><NbOfNtries>3</NbOfNtries><Sum>15.00</Sum>"
               "</TtlDbtNtries></TxsSummry>")
    parsed = read(prof, camt054(entry("E1") + entry("E2", returned="AC04") + entry("C1", "CRDT")
                                + entry("E3", status="PDNG"), summary))
    valid = parsed.validated.valid.set_index("instruction_id")
    assert valid["status"].to_dict() == {"E1": "SUCCESS", "E2": "FAILED", "E3": "PENDING"}
    assert valid.loc["E2", "response_code"] == "AC04"
    assert valid.loc["E2", "response_msg"] == "退票"
    assert prove(prof, __import__("pathlib").Path("c.xml"), "", parsed.facts,
                 D).verdict.startswith("complete")


HOSTILE = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b"<Document><a>&x;</a></Document>",
    "laughs": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b '
              b'"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
              b"<Document>&c;</Document>",
    "parameter-entity": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % p SYSTEM '
                        b'"http://127.0.0.1:9/x.dtd"> %p;]><Document/>',
    "deep": b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.'
            b'001.10">' + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Document>",
    "truncated": pain002("10", "<OrgnlPmtInfAndSts>" + tx("E1", "ACSC"))[:-40],
    "not-xml": b"\x00\x01binary",
    "other-message": camt054(entry("E1")),
    "utf16": '<?xml version="1.0" encoding="UTF-16"?><Document/>'.encode("utf-16"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_xml_is_refused_with_a_reason(name):
    with pytest.raises(NativeFileError) as caught:
        read(XML_PROFILE, HOSTILE[name], "h.xml")
    assert "h.xml" in str(caught.value)
    assert "root:" not in str(caught.value)


@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=2000), noise=st.binary(max_size=40),
       at=st.integers(min_value=0, max_value=2000))
def test_damaged_xml_never_escapes_as_anything_but_a_refusal_or_rows(cut, noise, at):
    body = "<OrgnlPmtInfAndSts>" + tx("E1", "ACSC") + tx("E2", "RJCT", "AM04") + \
        "</OrgnlPmtInfAndSts>"
    document = pain002("03", body)
    damaged = document[:at] + noise + document[at:]
    damaged = damaged[:max(cut, 1)] if cut < len(damaged) else damaged
    try:
        parsed = read(XML_PROFILE, damaged, "f.xml")
    except NativeFileError:
        return
    assert parsed.validated.rows_read <= 3


def test_a_success_only_file_without_a_status_column_is_all_success():
    prof = profile(lists="success_only",
                   columns={k: c for k, c in COLUMNS.items() if k not in ("status",
                                                                          "response_code")})
    valid = read(prof, b"txn,order,amt,time\nT1,I1,1.00,2026-11-27 08:00:00\n").validated.valid
    assert valid["status"].tolist() == ["SUCCESS"]


TEXT_PROFILES = {
    "delimited": profile(encoding="gbk", layout={"delimiter": "|", "quote": "", "header_line": 2,
                                                 "trailer_lines": 1, "field_prefix": "`"},
                         columns={k: c for k, c in COLUMNS.items()},
                         values={"amount_unit": "fen", "time_format": "yyyyMMddHHmmss"},
                         status={"contains": {"成功": "SUCCESS"}}),
    "fixed_width": fixed_profile(layout={"separator": "", "trailer_lines": 1}),
}


@hypothesis_settings(max_examples=120, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(TEXT_PROFILES)),
       data=st.one_of(st.binary(max_size=400),
                      st.lists(st.sampled_from([b"txn|order|amt|st|code|time", b"T1|I1|100|\xb3\xc9"
                                                b"\xb9\xa6|00|20261127080000", b"`x|`y", b"",
                                                b"\xff\xfe", b"|||||||", b'"', b"\r",
                                                record("T1", "I1", "1", "0", "ok",
                                                       "20261127080000")]),
                               max_size=8).map(b"\n".join)))
def test_broken_text_files_are_rows_rejects_or_a_refusal_never_a_crash(kind, data):
    try:
        parsed = read(TEXT_PROFILES[kind], data)
    except (NativeFileError, InputRefused):
        return
    validated = parsed.validated
    # every record is used, collapsed as an exact duplicate, or rejected: once
    assert validated.rows_used + validated.duplicates_collapsed + validated.rows_rejected \
        == validated.rows_read == parsed.raw.records
