"""`recon report`: the CSV tables and the HTML charts agree with SQL over the stored rows.

The stored rows come from the sample days as a new user would make them: run both fixture days,
then rerun 2026-11-28 after BAOFU's late settlement file arrives.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from recon.cli import main
from tests.conftest import FIXTURES
from tests.e2e.test_operations import BAOFU_ROWS, add_settlement_file

DAYS = ["2026-11-27", "2026-11-28"]
CHROMIUM = Path("/usr/bin/chromium")
FEN = "CAST(replace({}, '.', '') AS INTEGER)"
DUE, SETTLED = FEN.format("amount_due"), FEN.format("amount_settled")
COLLECTED = "status IN ('paid', 'overpaid')"


def invoke(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(result.output) from result.exception
    return result


def make_stored_results(work: Path, database_url: str) -> Path:
    inbox = work / "inbox"
    shutil.copytree(FIXTURES / "inbox", inbox)
    common = ["--inbox", inbox, "--out", work / "out", "--db", database_url]
    invoke("run", "--from", DAYS[0], "--to", DAYS[1], *common)
    add_settlement_file(inbox / DAYS[1], "BAOFU", BAOFU_ROWS)
    invoke("run", "--date", DAYS[1], *common)
    result = invoke("report", "--from", "2026-11-26", "--to", DAYS[1], "--db", database_url,
                    "--out", work / "out")
    assert result.exit_code == 0, result.output
    return work / "out" / f"report_2026-11-26_{DAYS[1]}"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    work = tmp_path_factory.mktemp("report")
    folder = make_stored_results(work, f"sqlite:///{work / 'recon.db'}")
    connection = sqlite3.connect(work / "recon.db")
    yield folder, connection
    connection.close()


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def fen(text: str) -> int:
    return int(Decimal(text) * 100)


def assert_rate(text: str, part: int, whole: int) -> None:
    assert abs(float(text) - part / whole) <= 0.00005 + 1e-12, (text, part, whole)


# --- the CSV tables equal SQL aggregates over installment_outcomes -----------------------------

def test_by_day_equals_sql_over_the_stored_rows(stored):
    folder, connection = stored
    expected = {row[0]: row[1:] for row in connection.execute(f"""
        SELECT business_date, count(*), sum({COLLECTED}), sum(NOT {COLLECTED}), sum({DUE}),
               sum(CASE WHEN {DUE} > {SETTLED} THEN {DUE} - {SETTLED} ELSE 0 END),
               sum(CASE WHEN {SETTLED} > {DUE} THEN {SETTLED} - {DUE} ELSE 0 END),
               min(run_id)
        FROM installment_outcomes GROUP BY business_date""")}
    outcome_of = dict(connection.execute("SELECT run_id, outcome FROM recon_runs"))
    rows = read_csv(folder / "by_day.csv")
    assert [row["business_date"] for row in rows] == DAYS
    for row in rows:
        installments, collected, not_collected, due, outstanding, overpaid, run_id = \
            expected[row["business_date"]]
        assert (int(row["installments"]), int(row["collected"]), int(row["not_collected"])) == \
            (installments, collected, not_collected)
        assert (fen(row["amount_due"]), fen(row["amount_outstanding"]),
                fen(row["amount_overpaid"])) == (due, outstanding, overpaid)
        assert_rate(row["failure_rate"], not_collected, installments)
        assert (row["run_id"], row["run_outcome"]) == (run_id, outcome_of[run_id])


def test_by_gateway_equals_sql_over_the_stored_rows(stored):
    folder, connection = stored
    expected = {(day, gateway): rest for day, gateway, *rest in connection.execute(f"""
        SELECT business_date, upper(coalesce(gateway, '')), count(*), sum({COLLECTED}),
               sum(NOT {COLLECTED}), sum({DUE}),
               sum(CASE WHEN {DUE} > {SETTLED} THEN {DUE} - {SETTLED} ELSE 0 END)
        FROM installment_outcomes GROUP BY 1, 2""")}
    rows = read_csv(folder / "by_gateway.csv")
    assert {(row["business_date"], row["gateway"]) for row in rows} == set(expected)
    for row in rows:
        installments, collected, not_collected, due, outstanding = \
            expected[(row["business_date"], row["gateway"])]
        assert (int(row["installments"]), int(row["collected"]), int(row["not_collected"]),
                fen(row["amount_due"]), fen(row["amount_outstanding"])) == \
            (installments, collected, not_collected, due, outstanding)
        assert_rate(row["failure_rate"], not_collected, installments)


def test_by_root_cause_equals_sql_over_the_stored_rows(stored):
    folder, connection = stored
    day_total = dict(connection.execute(
        "SELECT business_date, count(*) FROM installment_outcomes GROUP BY 1"))
    expected = {(day, gateway, cause): (count, due, outstanding)
                for day, gateway, cause, count, due, outstanding in connection.execute(f"""
        SELECT business_date, upper(coalesce(gateway, '')), root_cause, count(*), sum({DUE}),
               sum({DUE} - {SETTLED})
        FROM installment_outcomes WHERE root_cause IS NOT NULL GROUP BY 1, 2, 3""")}
    rows = read_csv(folder / "by_root_cause.csv")
    assert {(row["business_date"], row["gateway"], row["root_cause"]) for row in rows} == \
        set(expected)
    for row in rows:
        count, due, outstanding = expected[(row["business_date"], row["gateway"],
                                            row["root_cause"])]
        assert (int(row["installments"]), fen(row["amount_due"]),
                fen(row["amount_outstanding"])) == (count, due, outstanding)
        assert_rate(row["rate_of_day"], count, day_total[row["business_date"]])
    assert {row["root_cause_zh"] for row in rows if row["root_cause"] == "settlement_pending"} \
        == {"回盘文件未到"}


def test_by_days_past_due_matches_sql_over_the_stored_rows(stored):
    folder, connection = stored
    expected = {(day, count, collected, outstanding) for day, count, collected, outstanding in
                connection.execute(f"""
        SELECT business_date, count(*), sum(CASE WHEN {COLLECTED} THEN 1 ELSE 0 END),
               sum(CASE WHEN {COLLECTED} THEN 0 ELSE {DUE} - {SETTLED} END)
        FROM installment_outcomes GROUP BY 1""")}
    rows = read_csv(folder / "by_days_past_due.csv")
    # The sample days have no overdue installment: one bucket, 0, per day.
    assert {row["days_past_due"] for row in rows} == {"0"}
    assert {(row["business_date"], int(row["installments"]), int(row["collected"]),
             fen(row["amount_outstanding"])) for row in rows} == expected
    assert all(int(row["installments"]) == int(row["collected"]) + int(row["not_collected"])
               for row in rows)


def test_retry_plan_by_day_matches_the_stored_plans(stored):
    folder, connection = stored
    expected = {(day, action, count, amount or 0) for day, action, count, amount in
                connection.execute("""
        SELECT business_date, action, count(*), CAST(round(sum(amount) * 100) AS INTEGER)
        FROM retry_plan GROUP BY 1, 2""")}
    rows = read_csv(folder / "retry_plan_by_day.csv")
    assert {(row["business_date"], row["action"], int(row["rows"]), fen(row["amount"]))
            for row in rows} == expected
    assert {row["action"] for row in rows} >= {"retry", "refund", "wait_for_borrower"}
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "Retry plan per day" in page and "by days past due" in page


def test_csv_files_open_in_excel_with_chinese_intact(stored):
    folder, _ = stored
    for name in ("by_day.csv", "by_gateway.csv", "by_root_cause.csv"):
        assert (folder / name).read_bytes().startswith(b"\xef\xbb\xbf"), name


# --- the HTML charts carry the stored numbers ---------------------------------------------------

class ChartData(HTMLParser):
    """Every element with a class, with its data-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, str, dict]] = []
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href"):
            if name in attributes:
                self.links.append(attributes[name])
        if "class" in attributes:
            self.elements.append((tag, attributes["class"], {
                key[5:]: value for key, value in attributes.items() if key.startswith("data-")}))

    def of(self, tag: str, kind: str) -> list[dict]:
        return [data for t, c, data in self.elements if (t, c) == (tag, kind)]


def chart_data(page: str) -> ChartData:
    parser = ChartData()
    parser.feed(page)
    return parser


def stored_chart_numbers(connection):
    segments = {(day, cause): count for day, cause, count in connection.execute(
        "SELECT business_date, root_cause, count(*) FROM installment_outcomes "
        "WHERE root_cause IS NOT NULL GROUP BY 1, 2")}
    rates = {(day, gateway): (count, failing) for day, gateway, count, failing in
             connection.execute(f"""
        SELECT business_date, upper(gateway), count(*), sum(NOT {COLLECTED})
        FROM installment_outcomes WHERE coalesce(gateway, '') <> '' GROUP BY 1, 2""")}
    return segments, rates


def assert_charts_match(parser: ChartData, connection) -> None:
    segments, rates = stored_chart_numbers(connection)
    # matplotlib draws each bar, total and point as a group; the group carries the numbers.
    drawn = {(data["date"], data["root-cause"]): int(data["count"])
             for data in parser.of("g", "segment")}
    assert drawn == segments
    totals = {data["date"]: int(data["count"]) for data in parser.of("g", "total")}
    assert totals == {day: sum(count for (d, _), count in segments.items() if d == day)
                      for day in DAYS}
    points = {(data["gateway"], data["date"]): data for data in parser.of("g", "rate")}
    assert set(points) == {(gateway, day) for day, gateway in rates}
    for (day, gateway), (count, failing) in rates.items():
        point = points[(gateway, day)]
        assert (int(point["installments"]), int(point["not-collected"])) == (count, failing)
        assert_rate(point["rate"], failing, count)


def test_the_charts_carry_the_stored_numbers(stored):
    folder, connection = stored
    assert_charts_match(chart_data((folder / "report.html").read_text(encoding="utf-8")),
                        connection)


def test_a_date_without_results_is_shown_as_such(stored):
    folder, _ = stored
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "No stored results for 1 date(s) of the range: 2026-11-26" in page
    assert "no run</text>" in page


def test_the_charts_are_the_same_from_one_report_to_the_next(stored, tmp_path):
    folder, connection = stored
    database = connection.execute("PRAGMA database_list").fetchone()[2]
    invoke("report", "--from", "2026-11-26", "--to", DAYS[1], "--db", f"sqlite:///{database}",
           "--out", tmp_path)
    again = (tmp_path / folder.name / "report.html").read_text(encoding="utf-8")
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 2
    assert page[page.index("<svg"):] == again[again.index("<svg"):]


def test_recon_run_does_not_load_the_chart_library():
    loaded = subprocess.run([sys.executable, "-c", "import sys, recon.cli; "
                             "print('matplotlib' in sys.modules)"], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_the_page_is_self_contained(stored):
    folder, _ = stored
    parser = chart_data((folder / "report.html").read_text(encoding="utf-8"))
    assert parser.links == []
    assert not {"script", "link", "img", "iframe", "object"} & set(parser.tags)
    page = (folder / "report.html").read_text(encoding="utf-8")
    for namespace in ('xmlns="http://www.w3.org/2000/svg"',
                      'xmlns:xlink="http://www.w3.org/1999/xlink"'):
        page = page.replace(namespace, "")
    assert page.count("http") == 0
    # The charts' clip paths are referred to within the page (url(#id)), nothing else is.
    assert "@import" not in page and page.count("url(") == page.count("url(#")


# --- it renders in a browser -------------------------------------------------------------------

def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("/usr/bin/chromium is missing (CI=true: .ci/run installs Debian's chromium)")
    pytest.skip("headless Chromium not installed: apt-get install -y chromium (Debian package), "
                "or run .ci/run, to check that the report renders")


def chromium(browser: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(browser), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", *args],
        capture_output=True, timeout=180)


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decoded pixels): a blank page has few."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    position, idat = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind == b"IDAT":
            idat += data[position + 8:position + 8 + length]
        position += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_the_page_renders_in_headless_chromium_with_the_stored_numbers(stored, tmp_path):
    browser = chromium_or_skip()
    folder, connection = stored
    url = (folder / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    taken = chromium(browser, tmp_path / "profile", f"--screenshot={shot}",
                     "--window-size=1200,900", url)
    assert shot.exists(), taken.stderr.decode(errors="replace")[-2000:]
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == (1200, 900)
    assert colours > 50  # bars, lines and text were painted

    dumped = chromium(browser, tmp_path / "profile", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    assert_charts_match(chart_data(dumped.stdout.decode("utf-8")), connection)


# --- usage ---------------------------------------------------------------------------------------

def test_a_database_without_results_is_a_usage_error(tmp_path):
    result = invoke("report", "--from", DAYS[0], "--to", DAYS[1], "--db",
                    f"sqlite:///{tmp_path / 'empty.db'}", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "holds no recon results" in result.stderr


def test_to_before_from_is_a_usage_error(tmp_path):
    result = invoke("report", "--from", DAYS[1], "--to", DAYS[0], "--db",
                    f"sqlite:///{tmp_path / 'recon.db'}")
    assert result.exit_code == 2


# --- PostgreSQL: NUMERIC amounts give the same report as SQLite's decimal text -------------------

@pytest.mark.postgres
def test_postgres_gives_the_same_report_and_run_diff_as_sqlite(stored, postgres_url, tmp_path):
    sqlite_folder, connection = stored
    postgres_folder = make_stored_results(tmp_path, postgres_url)
    for name in ("by_day.csv", "by_gateway.csv", "by_root_cause.csv"):
        ours, theirs = read_csv(postgres_folder / name), read_csv(sqlite_folder / name)
        for row in ours + theirs:
            row.pop("run_id", None)
        assert ours == theirs, name
    # The rerun of 2026-11-28 read the previous outcomes back through COPY.
    assert read_csv(tmp_path / "out" / DAYS[1] / "changes.csv") == \
        read_csv(sqlite_folder.parent / DAYS[1] / "changes.csv")
    assert len(read_csv(tmp_path / "out" / DAYS[1] / "changes.csv")) == 2


def test_a_date_with_no_installment_has_its_row_and_its_watchlist_counted(tmp_path):
    """A committed date with an empty installments.csv still has results (its watchlist)."""
    day = "2026-11-24"
    folder = tmp_path / "inbox" / day
    folder.mkdir(parents=True)
    (folder / "installments.csv").write_text(
        "loan_id,installment_no,borrower_id,due_date,amount_due,currency\n", encoding="utf-8")
    (folder / "bindings.csv").write_text(
        "binding_id,loan_id,account_token,card_no_masked,bank_code,status,bound_at,unbound_at\n"
        f"K1,L1,tok1,622202******1111,ICBC,UNBOUND,2025-01-01 00:00:00,{day} 10:00:00\n",
        encoding="utf-8")
    (folder / "instructions.csv").write_text(
        "instruction_id,loan_id,installment_no,gateway,amount,created_at,confirm_required,"
        "confirm_status,sent_at\n", encoding="utf-8")
    database = f"sqlite:///{tmp_path / 'recon.db'}"
    ran = invoke("run", "--date", day, "--inbox", tmp_path / "inbox", "--out", tmp_path / "out",
                 "--db", database)
    assert ran.exit_code == 0, ran.output
    result = invoke("report", "--from", day, "--to", day, "--db", database, "--out",
                    tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = tmp_path / "out" / f"report_{day}_{day}"
    [row] = read_csv(report / "by_day.csv")
    assert (row["business_date"], row["installments"], row["run_outcome"]) == (day, "0", "done")
    [actions] = read_csv(report / "actions_by_day.csv")
    assert (actions["watchlist_no_active_binding"], actions["watchlist_binding_ended"]) == \
        ("1", "1")
