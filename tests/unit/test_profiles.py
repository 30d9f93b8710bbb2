"""Gateway profiles: what a profile may say, and every mistake named by file, key and problem."""

from __future__ import annotations

import pytest

from recon.codes import CodeMap
from recon.contract import RootCause
from recon.errors import UsageError
from recon.profiles import load_profile, load_profiles, with_profile_codes
from recon.timetext import time_pattern

GOOD = '''
gateway = "ALIPAY"
format = "delimited"
files = "ALI_{D:%Y%m%d}.csv"
[layout]
delimiter = "|"
[columns]
gateway_txn_id = "流水号"
instruction_id = 2
amount = "金额"
status = "状态"
txn_time = ["日期", "时间"]
[completeness]
method = "marker"
'''


def write(tmp_path, text, name="gw.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_profile_loads(tmp_path):
    profile = load_profile(write(tmp_path, GOOD))
    assert profile.key == "ALIPAY"
    assert profile.columns["instruction_id"] == 2
    assert profile.scheme == "iso8583"


@pytest.mark.parametrize("change, key, problem", [
    (("delimiter = \"|\"", "delimter = \"|\""), "layout.delimter", "unknown key"),
    (("delimiter = \"|\"", "delimiter = \"||\""), "layout.delimiter", "exactly one character"),
    (('format = "delimited"', 'format = "excel"'), "format", "'contract'"),
    (('method = "marker"', 'method = "hope"'), "completeness.method", "'ctl'"),
    (('amount = "金额"', 'amount = "金额"\nbalance = "余额"'), "columns", "balance"),
    (('amount = "金额"\n', ''), "columns", "no source for amount"),
    (('[completeness]', '[values]\ntime_format = "yyyyMMddQQ"\n[completeness]'),
     "values.time_format", "unknown letter 'Q'"),
    (('[completeness]', '[values]\ntimezone = "Mars/Olympus"\n[completeness]'),
     "values.timezone", "unknown time zone"),
    (('gateway = "ALIPAY"\n', ''), "gateway", "required key is missing"),
], ids=["misspelt", "delimiter", "format", "method", "column", "missing", "time", "zone",
        "gateway"])
def test_a_profile_mistake_is_a_usage_error_naming_file_key_and_problem(tmp_path, change, key,
                                                                       problem):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(UsageError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert str(path) in message and f"key {key}" in message and problem in message, message


def test_broken_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, GOOD + "\n[layout\n")
    with pytest.raises(UsageError, match=r"gw\.toml: not valid TOML.*line"):
        load_profile(path)


def test_two_profiles_for_one_gateway_are_refused(tmp_path):
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD.replace('"ALIPAY"', '"alipay"'), "b.toml")
    with pytest.raises(UsageError, match="already has a profile"):
        load_profiles(tmp_path)


def test_a_scheme_of_its_own_needs_a_code_table(tmp_path):
    path = write(tmp_path, GOOD + '[codes]\nscheme = "alipay"\n')
    with pytest.raises(UsageError, match="key codes.scheme"):
        load_profile(path)


def test_a_code_table_makes_a_private_scheme_over_the_section_5_one(tmp_path):
    write(tmp_path, "scheme,response_code,root_cause\niso8583,Z1,account_frozen\n"
                    "iso8583,51,other_decline\n", "codes.csv")
    write(tmp_path, GOOD + '[codes]\nscheme = "iso8583"\ntable = "codes.csv"\n')
    profiles = load_profiles(tmp_path)
    codes = with_profile_codes(CodeMap(), profiles)
    private = profiles.get("alipay").scheme
    assert private == "iso8583@alipay"
    assert codes.cause_of(private, "z1") == RootCause.ACCOUNT_FROZEN
    assert codes.cause_of(private, "51") == RootCause.OTHER_DECLINE  # the table wins
    assert codes.cause_of(private, "62") == RootCause.ACCOUNT_FROZEN  # section 5 underneath
    assert codes.cause_of("iso8583", "51") == RootCause.INSUFFICIENT_BALANCE  # others untouched


def test_a_fixed_width_profile_needs_fields_and_names_only_its_fields(tmp_path):
    fixed = GOOD.replace('format = "delimited"', 'format = "fixed_width"').replace(
        'delimiter = "|"', 'fields = [{ name = "流水号", width = 20 }]').replace(
        "instruction_id = 2", 'instruction_id = "订单号"')
    with pytest.raises(UsageError, match="not one of layout.fields"):
        load_profile(write(tmp_path, fixed))


@pytest.mark.parametrize("given, strptime", [("yyyyMMddHHmmss", "%Y%m%d%H%M%S"),
                                             ("yyyy/MM/dd HH:mm:ss", "%Y/%m/%d %H:%M:%S"),
                                             ("%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M")])
def test_time_formats_read_as_strptime(given, strptime):
    assert time_pattern(given) == strptime
