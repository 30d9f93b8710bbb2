"""The shipped example profiles read their sample files cleanly and prove them complete."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from recon.cli import main
from recon.profiles import load_profiles
from tests.conftest import FIXTURES, ROOT

EXAMPLES = ROOT / "profiles" / "examples"
SAMPLES = {
    "wechat.toml": EXAMPLES / "samples" / "wechat_20261127.csv",
    "allinpay_positions.toml": EXAMPLES / "samples" / "ALLIN_20261127.txt",
    "baofu_contract_marker.toml": EXAMPLES / "samples" / "settlement_BAOFU.csv",
    "bank_camt054.toml": EXAMPLES / "samples" / "camt054_ICBC_20261127.xml",
    "bank_pain002_v03.toml": EXAMPLES / "samples" / "pain002_CCB_20261127.xml",
    "unionpay_fixed_width.toml": FIXTURES / "native" / "inbox" / "2026-11-27" /
    "CUP_20261127.dat",
}


def test_every_example_profile_has_a_sample_and_the_folder_loads():
    assert {path.name for path in EXAMPLES.glob("*.toml")} == set(SAMPLES)
    assert len(load_profiles(EXAMPLES).by_gateway) == len(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_example_profile_reads_its_sample_and_proves_it_complete(name):
    result = CliRunner().invoke(main, ["gateways", "check", "--date", "2026-11-27", "--profile",
                                       str(EXAMPLES / name), str(SAMPLES[name])])
    assert "completeness: complete" in result.output, result.output
    # the fixed-width sample day carries planted bad rows (exit 3); the rest are clean
    assert result.exit_code == (3 if name.startswith("unionpay") else 0), result.output
