"""Turn a contract inbox day's settlement files into gateways' native formats (tests and bench).

Each row is carried over as it is: a value the contract rules take is written in the native
form (fen, yyyyMMddHHmmss local time, the gateway's status words); any other value is written
as the file had it, so the native day rejects the same rows and decides the same outcomes.

    python -m tests.native_days --inbox IN --date D --out OUT   # writes OUT/<D>/ and profiles

Formats (profiles in fixtures/native/profiles/):
  UNIONPAY  fixed-width GB18030 records, a header and a trailer record with count and total
  LIANLIAN  pipe-delimited GBK, amounts in fen, a summary line, gzip-wrapped
  CNAPS_DD  ISO 20022 pain.002.001.10 (or camt.054.001.08 with --camt), counts in the message
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recon.arrival import parse_control

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "fixtures" / "native" / "profiles"
TZ = ZoneInfo("Asia/Shanghai")
COMMON = ("installments.csv", "bindings.csv", "instructions.csv", "gateway_incidents.csv")


def read_settlement(day: Path, gateway: str) -> pd.DataFrame:
    control = parse_control((day / f"settlement_{gateway}.ctl").read_bytes())
    encoding = control.get("encoding") or "utf-8-sig"
    frame = pd.read_csv(day / f"settlement_{gateway}.csv", dtype=str, keep_default_na=False,
                        encoding=encoding)
    frame.columns = [name.strip().lower() for name in frame.columns]
    frame = frame.apply(lambda column: column.str.strip())
    frame["status"] = frame["status"].str.upper()  # the contract's statuses ignore case
    # a native record is one line: a line break inside a message becomes a space
    frame["response_msg"] = frame["response_msg"].str.replace(r"[\r\n]+", " ", regex=True)
    return frame


def fen_text(amount: pd.Series) -> pd.Series:
    """`1234.5` -> `123450`; an amount the contract would reject stays as it was."""
    ok = amount.str.fullmatch(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")
    whole = amount.str.split(".").str[0]
    cents = amount.str.split(".").str[1].fillna("").str.ljust(2, "0")
    fen = (whole + cents).str.lstrip("0").replace("", "0")
    return fen.where(ok, amount)


def compact_time(moment: pd.Series) -> pd.Series:
    """Contract timestamp -> local yyyyMMddHHmmss; anything else stays as it was."""
    plain = moment.str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}")
    offset = moment.str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                                  r"(?:Z|[+-][0-9]{2}:[0-9]{2})")
    out = moment.copy()
    out[plain] = moment[plain].str.replace(r"[-: T]", "", regex=True)
    if offset.any():
        local = pd.to_datetime(moment[offset], utc=True, format="ISO8601").dt.tz_convert(TZ)
        out[offset] = local.dt.strftime("%Y%m%d%H%M%S")
    return out


def iso_time(moment: pd.Series) -> pd.Series:
    """Contract timestamp -> xs:dateTime (local time with +08:00 when it had no offset)."""
    plain = moment.str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
    return moment.where(~plain, moment.str.replace(" ", "T") + "+08:00")


def _fixed(values: pd.Series, width: int, encoding: str, right: bool = False) -> np.ndarray:
    """Values as fixed-width byte fields (padded with spaces; cut at `width` bytes)."""
    codes, uniques = pd.factorize(values)
    encoded = []
    for value in uniques:
        raw = str(value).encode(encoding, errors="replace")[:width]
        while True:  # never cut a multi-byte character in two
            try:
                raw.decode(encoding)
                break
            except UnicodeDecodeError:
                raw = raw[:-1]
        encoded.append(raw.rjust(width) if right else raw.ljust(width))
    table = np.frombuffer(b"".join(encoded) or b" " * width, dtype=np.uint8).reshape(-1, width)
    return table[codes] if len(codes) else np.zeros((0, width), dtype=np.uint8)


UNIONPAY_FIELDS = [("txn_id", 24), ("order_no", 24), ("amount_fen", 14), ("status", 2),
                   ("resp_code", 4), ("txn_time", 14), ("resp_msg", 60)]


def write_unionpay(frame: pd.DataFrame, path: Path, business_date: dt.date) -> None:
    encoding = "gb18030"
    status = frame["status"].map({"SUCCESS": "00", "FAILED": "01"}).fillna(frame["status"])
    columns = [frame["gateway_txn_id"], frame["instruction_id"], fen_text(frame["amount"]),
               status, frame["response_code"], compact_time(frame["txn_time"]),
               frame["response_msg"]]
    blocks = []
    for (name, width), values in zip(UNIONPAY_FIELDS, columns):
        blocks.append(_fixed(values, width, encoding, right=name == "amount_fen"))
        blocks.append(np.full((len(frame), 1), ord("|"), dtype=np.uint8))
    blocks[-1] = np.full((len(frame), 1), 10, dtype=np.uint8)
    body = np.hstack(blocks).tobytes()
    fen = pd.to_numeric(fen_text(frame["amount"]), errors="coerce")
    success_fen = int(fen[(frame["status"] == "SUCCESS") & fen.gt(0)].sum())
    header = f"H{business_date:%Y%m%d}UNIONPAY回盘\n".encode(encoding)
    trailer = f"T{len(frame):010d}{success_fen:016d}\n".encode(encoding)
    path.write_bytes(header + body + trailer)


def write_lianlian(frame: pd.DataFrame, path: Path) -> None:
    status = frame["status"].map({"SUCCESS": "交易成功", "FAILED": "交易失败"}).fillna(
        frame["status"])
    table = pd.DataFrame({
        "商户订单号": frame["instruction_id"], "连连流水号": frame["gateway_txn_id"],
        "交易金额(分)": fen_text(frame["amount"]), "交易状态": status,
        "返回码": frame["response_code"], "返回信息": frame["response_msg"].str.replace("|", "/"),
        "交易时间": compact_time(frame["txn_time"]),
    })
    fen = pd.to_numeric(fen_text(frame["amount"]), errors="coerce")
    success_fen = int(fen[(frame["status"] == "SUCCESS") & fen.gt(0)].sum())
    lines = ["# 连连支付 代扣回盘文件", "|".join(table.columns)]
    body = pc.binary_join_element_wise(*[pa.array(table[c], type=pa.large_string())
                                         for c in table.columns],
                                        pa.scalar("|", pa.large_string()))
    text = "\n".join(lines) + "\n" + "\n".join(body.to_pylist()) + "\n"
    text += f"总笔数|{len(frame)}|成功金额(元)|{success_fen // 100:,}.{success_fen % 100:02d}\n"
    path.write_bytes(gzip.compress(text.encode("gbk", errors="replace"), mtime=0))


def _xml(values: pd.Series) -> pa.Array:
    array = pa.array(values, type=pa.large_string())
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        array = pc.replace_substring(array, raw, escaped)
    return array


def write_pain002(frame: pd.DataFrame, path: Path, business_date: dt.date) -> None:
    status = frame["status"].map({"SUCCESS": "ACSC", "FAILED": "RJCT"}).fillna(frame["status"])
    failed = status == "RJCT"
    reason = pd.Series("", index=frame.index, dtype="str")
    reason[failed] = ("<StsRsnInf><Rsn><Cd>" + frame["response_code"][failed] + "</Cd></Rsn>"
                      "<AddtlInf>" + pd.Series(_xml(frame["response_msg"][failed]).to_pylist(),
                                               index=frame.index[failed], dtype="str")
                      + "</AddtlInf></StsRsnInf>")
    pieces = [
        pa.array(["<TxInfAndSts><StsId>"] * len(frame)), _xml(frame["gateway_txn_id"]),
        pa.array(["</StsId><OrgnlEndToEndId>"] * len(frame)), _xml(frame["instruction_id"]),
        pa.array(["</OrgnlEndToEndId><TxSts>"] * len(frame)), _xml(status),
        pa.array(["</TxSts>"] * len(frame)), pa.array(reason, type=pa.large_string()),
        pa.array(["<AccptncDtTm>"] * len(frame)), _xml(iso_time(frame["txn_time"])),
        pa.array(['</AccptncDtTm><OrgnlTxRef><Amt><InstdAmt Ccy="CNY">'] * len(frame)),
        _xml(frame["amount"]),
        pa.array(["</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>"] * len(frame)),
    ]
    body = pc.binary_join_element_wise(*[piece.cast(pa.large_string()) for piece in pieces],
                                        pa.scalar("", pa.large_string()))
    counts = ""
    amounts = pd.to_numeric(frame["amount"], errors="coerce")
    for word in pd.unique(status):
        chosen = status == word
        total = amounts[chosen].sum()
        sum_text = ""
        if chosen.sum() and amounts[chosen].notna().all():
            fen = sum(int(round(float(a) * 100)) for a in frame["amount"][chosen])
            sum_text = f"<DtldCtrlSum>{fen // 100}.{fen % 100:02d}</DtldCtrlSum>"
        del total
        counts += (f"<NbOfTxsPerSts><DtldNbOfTxs>{int(chosen.sum())}</DtldNbOfTxs>"
                   f"<DtldSts>{word}</DtldSts>{sum_text}</NbOfTxsPerSts>")
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">'
            f'<CstmrPmtStsRpt><GrpHdr><MsgId>CNAPS-{business_date:%Y%m%d}</MsgId>'
            f'<CreDtTm>{business_date}T23:30:00+08:00</CreDtTm></GrpHdr>'
            f'<OrgnlGrpInfAndSts><OrgnlMsgId>DD-{business_date:%Y%m%d}</OrgnlMsgId>'
            f'<OrgnlMsgNmId>pain.008.001.08</OrgnlMsgNmId>'
            f'<OrgnlNbOfTxs>{len(frame)}</OrgnlNbOfTxs>{counts}</OrgnlGrpInfAndSts>'
            f'<OrgnlPmtInfAndSts><OrgnlPmtInfId>B1</OrgnlPmtInfId>\n')
    tail = "</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n"
    path.write_bytes(head.encode() + "\n".join(body.to_pylist()).encode() + b"\n" +
                     tail.encode())


def write_camt054(frame: pd.DataFrame, path: Path, business_date: dt.date) -> None:
    returned = frame["status"] == "FAILED"
    status = pd.Series("BOOK", index=frame.index, dtype="str").where(
        frame["status"].isin(["SUCCESS", "FAILED"]), frame["status"])
    rtr = pd.Series("", index=frame.index, dtype="str")
    rtr[returned] = ("<RtrInf><Rsn><Cd>" + frame["response_code"][returned] + "</Cd></Rsn>"
                     "<AddtlInf>" + pd.Series(_xml(frame["response_msg"][returned]).to_pylist(),
                                              index=frame.index[returned], dtype="str")
                     + "</AddtlInf></RtrInf>")
    n = len(frame)
    pieces = [
        pa.array(['<Ntry><Amt Ccy="CNY">'] * n), _xml(frame["amount"]),
        pa.array(["</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>"] * n), _xml(status),
        pa.array(["</Cd></Sts><BookgDt><DtTm>"] * n), _xml(iso_time(frame["txn_time"])),
        pa.array(["</DtTm></BookgDt><NtryDtls><TxDtls><Refs><AcctSvcrRef>"] * n),
        _xml(frame["gateway_txn_id"]),
        pa.array(["</AcctSvcrRef><EndToEndId>"] * n), _xml(frame["instruction_id"]),
        pa.array(["</EndToEndId></Refs>"] * n), pa.array(rtr, type=pa.large_string()),
        pa.array(["</TxDtls></NtryDtls></Ntry>"] * n),
    ]
    body = pc.binary_join_element_wise(*[piece.cast(pa.large_string()) for piece in pieces],
                                        pa.scalar("", pa.large_string()))
    total = sum(int(round(float(a) * 100)) for a in pd.to_numeric(frame["amount"],
                                                                   errors="coerce").fillna(0))
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
            f'<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>N-{business_date:%Y%m%d}</MsgId>'
            f'<CreDtTm>{business_date}T23:30:00+08:00</CreDtTm></GrpHdr><Ntfctn><Id>1</Id>'
            f'<TxsSummry><TtlDbtNtries><NbOfNtries>{n}</NbOfNtries>'
            f'<Sum>{total // 100}.{total % 100:02d}</Sum></TtlDbtNtries></TxsSummry>\n')
    tail = "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n"
    path.write_bytes(head.encode() + "\n".join(body.to_pylist()).encode() + b"\n" +
                     tail.encode())


def convert_day(inbox: Path, business_date: dt.date, out: Path, *, camt: bool = False) -> Path:
    """Write OUT/<D>/ with the day's other files and native settlement files; return it."""
    source = inbox / business_date.isoformat()
    target = out / business_date.isoformat()
    target.mkdir(parents=True, exist_ok=True)
    for name in COMMON:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    day = f"{business_date:%Y%m%d}"
    if (source / "settlement_UNIONPAY.ctl").is_file():
        write_unionpay(read_settlement(source, "UNIONPAY"), target / f"CUP_{day}.dat",
                       business_date)
    if (source / "settlement_LIANLIAN.ctl").is_file():
        write_lianlian(read_settlement(source, "LIANLIAN"), target / f"LL_{day}.txt.gz")
    if (source / "settlement_CNAPS_DD.ctl").is_file():
        frame = read_settlement(source, "CNAPS_DD")
        if camt:
            write_camt054(frame, target / f"camt054_{day}.xml", business_date)
        else:
            write_pain002(frame, target / f"pain002_{day}.xml", business_date)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--date", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--camt", action="store_true")
    args = parser.parse_args()
    print(convert_day(args.inbox, args.date, args.out, camt=args.camt))


if __name__ == "__main__":
    main()
