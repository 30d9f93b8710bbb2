"""The borrower notice outbox against real databases (CONTRACT 7, docs/notices.md): what a rerun
of D does to notices already taken, stale and new, and the races with the messaging system.

The day (written by `write_day`): four borrowers. On the first run BAOFU's file has not arrived:
- B1 / L1: UNIONPAY 08:00 failed 51 (deciding); a BAOFU attempt at 07:00 -> notice;
  the late BAOFU file shows that attempt SUCCESS: paid -> the open notice is cancelled.
- B2 / L2: the same with code 14 (account_closed); the messaging system has taken (sent) its
  notice before the rerun -> untouched although L2 turned paid.
- B3 / L3: no instruction, no binding: card_unbound on both runs -> kept as it was.
- B4 / L4: only a BAOFU attempt: pending, no notice; the late file says FAILED 51 -> added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from recon import pipeline
from recon.config import Settings
from recon.errors import OutboxConflict
from recon.db.engine import connect, write_transaction
from recon.db.write import merge_notices
from tests.integration.helpers import HeldRun, engine_for

DAY = "2026-11-27"
D = dt.date.fromisoformat(DAY)


def write_csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def write_settlement(day_dir: Path, gateway: str, rows: list[str], day: str = DAY) -> None:
    header = "gateway_txn_id,instruction_id,amount,status,response_code,response_msg,txn_time"
    write_csv(day_dir / f"settlement_{gateway}.csv", header, rows)
    data = (day_dir / f"settlement_{gateway}.csv").read_bytes()
    total = sum(float(row.split(",")[2]) for row in rows if row.split(",")[3] == "SUCCESS")
    (day_dir / f"settlement_{gateway}.ctl").write_text(
        f"gateway={gateway}\nbusiness_date={day}\nscheme=iso8583\nrecords={len(rows)}\n"
        f"amount_total={total:.2f}\nsha256={hashlib.sha256(data).hexdigest()}\n")


def write_day(inbox: Path, *, late_file: bool, day: str = DAY) -> Path:
    DAY = day  # noqa: N806 - the rows below are of this day
    day_dir = inbox / DAY
    day_dir.mkdir(parents=True, exist_ok=True)
    write_csv(day_dir / "installments.csv",
              "loan_id,installment_no,borrower_id,due_date,amount_due,currency",
              [f"L1,1,B1,{DAY},1000.00,CNY", f"L2,1,B2,{DAY},2000.00,CNY",
               f"L3,1,B3,{DAY},500.00,CNY", f"L4,1,B4,{DAY},400.00,CNY"])
    write_csv(day_dir / "bindings.csv",
              "binding_id,loan_id,account_token,card_no_masked,bank_code,status,bound_at,"
              "unbound_at",
              [f"BD{n},L{n},tok{n},622202******{n}{n}{n}{n},ICBC,ACTIVE,2025-01-01 10:00:00,"
               for n in (1, 2, 4)])
    instruction = "{id},L{loan},1,{gateway},{amount},{DAY} 06:00:00,false,NOT_REQUIRED,{DAY} {at}"
    write_csv(day_dir / "instructions.csv",
              "instruction_id,loan_id,installment_no,gateway,amount,created_at,"
              "confirm_required,confirm_status,sent_at",
              [instruction.format(id=id_, loan=loan, gateway=gateway, amount=amount, DAY=DAY,
                                  at=at)
               for id_, loan, gateway, amount, at in [
                   ("I1B", 1, "BAOFU", "1000.00", "07:00:00"),
                   ("I1U", 1, "UNIONPAY", "1000.00", "08:00:00"),
                   ("I2B", 2, "BAOFU", "2000.00", "07:00:00"),
                   ("I2U", 2, "UNIONPAY", "2000.00", "08:00:00"),
                   ("I4B", 4, "BAOFU", "400.00", "09:00:00")]])
    write_settlement(day_dir, "UNIONPAY", [
        f"U1,I1U,1000.00,FAILED,51,余额不足,{DAY} 08:00:30",
        f"U2,I2U,2000.00,FAILED,14,账户已销户,{DAY} 08:00:30"], DAY)
    if late_file:
        write_settlement(day_dir, "BAOFU", [
            f"F1,I1B,1000.00,SUCCESS,00,成功,{DAY} 07:00:30",
            f"F2,I2B,2000.00,SUCCESS,00,成功,{DAY} 07:00:30",
            f"F4,I4B,400.00,FAILED,51,余额不足,{DAY} 09:00:30"], DAY)
    return inbox


def settings(url: str, inbox: Path, out: Path) -> Settings:
    return Settings(inbox=inbox, out=out, database_url=url)


def notices(url: str) -> dict[str, dict]:
    """borrower_id -> its notices of D, as {notice_id: state}."""
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT borrower_id, notice_id, state FROM borrower_notices "
                "WHERE business_date = :d ORDER BY notice_id"), {"d": DAY}).all()
    finally:
        engine.dispose()
    found: dict[str, dict] = {}
    for borrower, notice_id, state in rows:
        found.setdefault(borrower, {})[notice_id] = state
    return found


def all_notice_rows(url: str) -> list[dict]:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.text(
                "SELECT * FROM borrower_notices ORDER BY notice_id"))]
    finally:
        engine.dispose()


def take(url: str, notice_id: str) -> int:
    """The messaging system takes a notice, as docs/notices.md tells it to."""
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            return connection.execute(sa.text(
                "UPDATE borrower_notices SET state = 'sent' WHERE notice_id = :id "
                "AND state = 'new'"), {"id": notice_id}).rowcount
    finally:
        engine.dispose()


def only(found: dict) -> str:
    [notice_id] = found
    return notice_id


@pytest.fixture
def first_run(database_url, tmp_path):
    """D run once without BAOFU's file; B2's notice then taken by the messaging system."""
    inbox = write_day(tmp_path / "inbox", late_file=False)
    report = pipeline.run(D, settings(database_url, inbox, tmp_path / "out"))
    assert report.exit_code == 4, report.message
    first = notices(database_url)
    assert set(first) == {"B1", "B2", "B3"}
    assert take(database_url, only(first["B2"])) == 1
    return database_url, tmp_path, first


def test_rerun_cancels_stale_keeps_unchanged_adds_new_and_never_touches_taken(first_run):
    url, work, first = first_run
    before = {row["notice_id"]: row for row in all_notice_rows(url)}
    inbox = write_day(work / "inbox", late_file=True)
    report = pipeline.run(D, settings(url, inbox, work / "out"))
    assert report.exit_code == 0, report.message

    after = notices(url)
    assert after["B1"] == {only(first["B1"]): "cancelled"}  # turned paid, not yet taken
    assert after["B2"] == {only(first["B2"]): "sent"}  # turned paid, but already taken
    assert after["B3"] == {only(first["B3"]): "new"}  # unchanged
    assert list(after["B4"].values()) == ["new"]  # new since the late file
    rows = {row["notice_id"]: row for row in all_notice_rows(url)}
    for kept in (only(first["B2"]), only(first["B3"])):
        assert rows[kept] == before[kept]
    assert report.notice_changes == {"added": 1, "cancelled": 1, "kept": 1, "taken": 1}
    assert report.notice_channels == {"sms": 3}

    # The same inputs once more: nothing changes at all.
    again = pipeline.run(D, settings(url, inbox, work / "out"))
    assert again.notice_changes == {"added": 0, "cancelled": 0, "kept": 2, "taken": 1}
    assert {row["notice_id"]: row for row in all_notice_rows(url)} == rows


def test_notices_csv_lists_every_notice_of_d_with_its_state(first_run):
    url, work, first = first_run
    inbox = write_day(work / "inbox", late_file=True)
    pipeline.run(D, settings(url, inbox, work / "out"))
    text = (work / "out" / DAY / "notices.csv").read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    assert lines[0].startswith("notice_id,business_date,borrower_id,state,channel")
    states = sorted(line.split(",")[3] for line in lines[1:])
    assert states == ["cancelled", "new", "new", "sent"]
    assert "622202" not in text


def test_a_killed_rerun_leaves_the_notices_and_watchlist_of_d_exactly_as_they_were(first_run):
    url, work, _ = first_run
    before = all_notice_rows(url)
    engine = engine_for(url)
    with engine.connect() as connection:
        watch_before = connection.execute(sa.text(
            "SELECT * FROM watchlist ORDER BY loan_id, risk")).all()
    inbox = write_day(work / "inbox", late_file=True)
    held = HeldRun(DAY, url, work, releasable=False, inbox=inbox)
    held.wait_until_holding()
    held.kill()
    assert all_notice_rows(url) == before
    with engine.connect() as connection:
        assert connection.execute(sa.text(
            "SELECT * FROM watchlist ORDER BY loan_id, risk")).all() == watch_before
    engine.dispose()


def test_the_same_borrower_side_failure_on_a_second_date_is_an_early_warning_and_a_call(
        database_url, tmp_path):
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(database_url, inbox, tmp_path / "out"))
    next_day = D + dt.timedelta(days=1)
    write_day(inbox, late_file=False, day=next_day.isoformat())
    report = pipeline.run(next_day, settings(database_url, inbox, tmp_path / "out"))
    assert report.watchlist_risks.get("repeated_borrower_failure") == 3
    engine = engine_for(database_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT loan_id, borrower_id, evidence FROM current_watchlist "
            "WHERE risk = 'repeated_borrower_failure' ORDER BY loan_id")).all()
        channels = dict(connection.execute(sa.text(
            "SELECT borrower_id, channel FROM borrower_notices WHERE business_date = :d"),
            {"d": next_day.isoformat()}).all())
    engine.dispose()
    assert [(row.loan_id, row.borrower_id) for row in rows] == [("L1", "B1"), ("L2", "B2"),
                                                                ("L3", "B3")]
    assert rows[0].evidence.startswith("not collected for insufficient_balance (余额不足) on 2 ")
    assert rows[0].evidence.endswith(f"{DAY}, {next_day.isoformat()}")
    assert channels == {"B1": "call", "B2": "call", "B3": "call"}  # all small amounts: repeats


# --- races with the messaging system (PostgreSQL: row locks) ----------------------------------

def wait_for_lock_wait(url: str, pattern: str, timeout: float = 60) -> None:
    """Until a session of this database waits on a lock running a statement like `pattern`."""
    engine = engine_for(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                waiting = connection.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE :pattern"),
                    {"pattern": pattern}).scalar()
            if waiting:
                return
            assert time.monotonic() < deadline, f"nobody waited on a lock for {pattern}"
            time.sleep(0.02)  # polling for an observed state, not standing in for it
    finally:
        engine.dispose()


class Background:
    """A function on its own thread; `result()` re-raises what it raised."""

    def __init__(self, function, *args, **kwargs) -> None:
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(function, args, kwargs))
        self.thread.start()

    def _run(self, function, args, kwargs) -> None:
        try:
            self.value = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            self.error = error

    def result(self, timeout: float = 120):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background job did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def rerun_while_a_take_is_in_flight(url: str, inbox: Path, out: Path, notice_id: str):
    """The messaging system takes `notice_id` in a transaction it has not committed (the row
    is locked); D is rerun with the late file; the take commits once the rerun waits on it.
    The rerun's report."""
    messaging = engine_for(url)
    connection = messaging.connect()
    transaction = connection.begin()
    taken = connection.execute(sa.text(
        "UPDATE borrower_notices SET state = 'sent' WHERE notice_id = :id AND state = 'new'"),
        {"id": notice_id}).rowcount
    assert taken == 1  # taken, not yet committed: the row is locked
    write_day(inbox, late_file=True)
    rerun = Background(pipeline.run, D, settings(url, inbox, out))
    wait_for_lock_wait(url, "%borrower_notices%")
    transaction.commit()
    connection.close()
    messaging.dispose()
    return rerun.result()


@pytest.mark.postgres
def test_messaging_takes_first_and_the_rerun_waits_then_leaves_the_notice_taken(
        postgres_url, tmp_path):
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    b1 = only(notices(postgres_url)["B1"])
    # The late file would make B1's notice stale.
    report = rerun_while_a_take_is_in_flight(postgres_url, inbox, tmp_path / "out", b1)
    assert report.exit_code == 0, report.message
    after = notices(postgres_url)
    assert after["B1"] == {b1: "sent"}  # the messaging system's take stands
    assert list(after["B2"].values()) == ["cancelled"]  # turned paid too, and was not taken
    assert report.notice_changes["taken"] == 1 and report.notice_changes["cancelled"] == 1


@pytest.mark.postgres
def test_a_take_in_flight_of_an_unchanged_notice_is_waited_for_and_seen_taken(postgres_url,
                                                                              tmp_path):
    """The rerun reads the open notices under lock first, then the rest: a take committing
    while it waits is seen in the second read, so the borrower is not told again (and the
    rerun does not trip over the taken notice's unique key)."""
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    b3 = only(notices(postgres_url)["B3"])  # card_unbound on both runs: unchanged
    report = rerun_while_a_take_is_in_flight(postgres_url, inbox, tmp_path / "out", b3)
    assert report.exit_code == 0, report.message
    assert notices(postgres_url)["B3"] == {b3: "sent"}  # no second notice for B3


@pytest.mark.postgres
def test_a_taken_notice_s_delivery_receipt_does_not_wait_for_a_rerun(postgres_url, tmp_path):
    """The rerun locks D's open notices only: the messaging system's update of one it has
    taken goes through while the rerun's transaction is still open."""
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    b2 = only(notices(postgres_url)["B2"])
    assert take(postgres_url, b2) == 1
    write_day(inbox, late_file=True)
    receipts: list[int] = []

    def delivered_meanwhile() -> None:  # inside the rerun's transaction, before its commit
        engine = engine_for(postgres_url)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                receipts.append(connection.execute(sa.text(
                    "UPDATE borrower_notices SET state = 'delivered' WHERE notice_id = :id "
                    "AND state = 'sent'"), {"id": b2}).rowcount)
        finally:
            engine.dispose()

    report = pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"),
                          before_commit=delivered_meanwhile)
    assert report.exit_code == 0, report.message
    assert receipts == [1]
    assert notices(postgres_url)["B2"] == {b2: "delivered"}  # taken: never touched by the rerun


@pytest.mark.postgres
def test_the_rerun_cancels_first_and_the_messaging_systems_take_then_updates_nothing(
        postgres_url, tmp_path):
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    b1 = only(notices(postgres_url)["B1"])
    write_day(inbox, late_file=True)
    takes: list[Background] = []

    def messaging_takes_now() -> None:
        # Inside the rerun's transaction: B1's notice is cancelled there, not yet committed.
        takes.append(Background(take, postgres_url, b1))
        wait_for_lock_wait(postgres_url, "UPDATE borrower_notices SET state = 'sent'%")

    report = pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"),
                          before_commit=messaging_takes_now)
    assert report.exit_code == 0, report.message
    assert takes[0].result() == 0  # found it cancelled once the rerun committed: not sent
    assert notices(postgres_url)["B1"] == {b1: "cancelled"}


@pytest.mark.postgres
def test_two_open_notices_for_one_borrower_and_d_cannot_both_commit(postgres_url, tmp_path):
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    engine = engine_for(postgres_url)
    insert = sa.text(
        "INSERT INTO borrower_notices (notice_id, business_date, borrower_id, content_key, "
        "channel, template_key, message, amount, installments, send_after, state, created_at, "
        "created_run_id) VALUES (:id, :d, 'B9', :key, 'sms', 'card_unbound', 'x', 1, 'L9/1', "
        "now(), 'new', now(), 'r')")
    first = engine.connect()
    first_transaction = first.begin()
    first.execute(insert, {"id": "n1", "d": DAY, "key": "k1"})

    def second_insert() -> None:
        with engine.begin() as connection:
            connection.execute(insert, {"id": "n2", "d": DAY, "key": "k2"})

    second = Background(second_insert)
    wait_for_lock_wait(postgres_url, "INSERT INTO borrower_notices%")
    first_transaction.commit()
    first.close()
    with pytest.raises(sa.exc.IntegrityError, match=r"borrower_notices_\w*one_open"):
        second.result()
    engine.dispose()


def test_a_notice_written_by_a_racing_run_rolls_this_run_back(database_url, tmp_path):
    """A second writer past the date lock: its committed open notice for the same borrower
    makes this run's insert fail on the unique index, as OutboxConflict, and nothing of this run
    stays."""
    inbox = write_day(tmp_path / "inbox", late_file=False)
    url = database_url
    pipeline.run(D, settings(url, inbox, tmp_path / "out"))
    before = all_notice_rows(url)
    database = connect(url)

    class Racing:
        def plan(self, stored):
            from recon.notice_templates import load_templates
            from recon.notices import notice_items, plan_outbox
            import pandas as pd
            outcomes = pd.DataFrame([{"loan_id": "L5", "installment_no": 1,
                                      "borrower_id": "B5", "status": "unpaid",
                                      "root_cause": "card_unbound",
                                      "amount_outstanding": 100, "card_no_masked": ""}])
            change = plan_outbox(stored, notice_items(outcomes), load_templates(), D,
                                 dt.datetime(2026, 11, 28, 10, tzinfo=dt.timezone.utc),
                                 database_tz(), "racingrun")
            if not database.is_postgres:
                return change  # SQLite: the write transaction excludes any other writer
            other = engine_for(url)
            with other.begin() as connection:  # the racing run commits first
                connection.execute(sa.text(
                    "INSERT INTO borrower_notices (notice_id, business_date, borrower_id, "
                    "content_key, channel, template_key, message, amount, installments, "
                    "send_after, state, created_at, created_run_id) VALUES ('other', :d, 'B5', "
                    "'k', 'sms', 'card_unbound', 'x', 1, 'L5/1', now(), 'new', now(), 'r')"),
                    {"d": DAY})
            other.dispose()
            return change

    try:
        with database.engine.connect() as connection, write_transaction(connection):
            if database.is_postgres:
                with pytest.raises(OutboxConflict, match="another run wrote notices"):
                    merge_notices(database, connection, DAY, Racing().plan)
            else:
                merge_notices(database, connection, DAY, Racing().plan)
                connection.rollback()
    finally:
        database.dispose()
    stored = {row["notice_id"] for row in all_notice_rows(url)}
    assert {row["notice_id"] for row in before} <= stored
    assert not any(notice_id.endswith("racingrun-000001") for notice_id in stored)


def database_tz():
    from zoneinfo import ZoneInfo
    return ZoneInfo("Asia/Shanghai")


def _plan_for(borrower: str, loan: str, run_id: str):
    """An Outbox.plan that adds one card_unbound notice for `borrower`."""
    from recon.notice_templates import load_templates
    from recon.notices import notice_items, plan_outbox
    import pandas as pd
    outcomes = pd.DataFrame([{"loan_id": loan, "installment_no": 1, "borrower_id": borrower,
                              "status": "unpaid", "root_cause": "card_unbound",
                              "amount_outstanding": 100, "card_no_masked": ""}])

    def plan(stored):
        return plan_outbox(stored, notice_items(outcomes), load_templates(), D,
                           dt.datetime(2026, 11, 28, 10, tzinfo=dt.timezone.utc),
                           database_tz(), run_id)
    return plan


def _notice_leaves(url: str) -> list[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = 'borrower_notices_d20261127'::regclass")).scalars().all()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_first_notices_of_d_get_a_leaf_of_their_own_and_a_rerun_adds_to_it(postgres_url,
                                                                                tmp_path):
    """D's first notices are loaded into a new leaf, indexed once (sql 013); a rerun's new
    notices go into that same leaf beside the taken and cancelled ones."""
    inbox = write_day(tmp_path / "inbox", late_file=False)
    pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    assert _notice_leaves(postgres_url) == ["borrower_notices_d20261127_data"]
    first = all_notice_rows(postgres_url)
    take(postgres_url, only(notices(postgres_url)["B2"]))
    write_day(inbox, late_file=True)
    report = pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"))
    assert report.exit_code == 0, report.message
    assert _notice_leaves(postgres_url) == ["borrower_notices_d20261127_data"]
    after = {row["notice_id"]: row for row in all_notice_rows(postgres_url)}
    assert {row["notice_id"] for row in first} < set(after)  # nothing of the first run lost
    assert "B4" in notices(postgres_url)  # the rerun's new notice, in the same leaf
    indexes = {row[0] for row in query_all(
        postgres_url, "SELECT indexname FROM pg_indexes "
                      "WHERE tablename = 'borrower_notices_d20261127_data'")}
    assert indexes == {f"borrower_notices_d20261127_data_{suffix}"
                       for suffix in ("pkey", "one_open", "same_thing", "to_take")}


@pytest.mark.postgres
def test_two_runs_racing_to_write_the_first_notices_of_d_cannot_both_commit(postgres_url):
    """Two writers past the date lock, both finding D without notices: the second waits for
    the first, then finds D's leaf taken (OutboxConflict), and only the first's notices stay."""
    from recon.clock import utc_now
    from recon.db import migrations
    from recon.db.partitions import ensure_date_partitions
    database = connect(postgres_url)
    migrations.upgrade(database, clock=utc_now)
    ensure_date_partitions(database, DAY)
    first = database.engine.connect()
    first_transaction = first.begin()
    merge_notices(database, first, DAY, _plan_for("B5", "L5", "firstrun"))

    def second_run() -> None:
        with database.engine.connect() as connection, write_transaction(connection):
            merge_notices(database, connection, DAY, _plan_for("B6", "L6", "secondrun"))

    second = Background(second_run)
    wait_for_lock_wait(postgres_url, "CREATE TABLE borrower_notices_d20261127_load%")
    first_transaction.commit()
    first.close()
    try:
        with pytest.raises(OutboxConflict, match="another run wrote the first notices"):
            second.result()
    finally:
        database.dispose()
    stored = {row["notice_id"] for row in all_notice_rows(postgres_url)}
    assert stored == {"20261127-firstrun-000001"}
    assert _notice_leaves(postgres_url) == ["borrower_notices_d20261127_data"]


def query_all(url: str, sql: str) -> list:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_rerun_of_d_keeps_other_dates_readable_until_its_commit(postgres_url, tmp_path):
    """Readers of another date whose query cannot rule D's partition out when it is planned (a
    subquery, `current_date`, a generic prepared plan) do not wait for a rerun of D: D's new
    leaves are swapped in only at its commit."""
    other = "2026-11-28"
    inbox = write_day(tmp_path / "inbox", late_file=False)
    write_day(inbox, late_file=False, day=other)
    for day in (D, dt.date.fromisoformat(other)):
        assert pipeline.run(day, settings(postgres_url, inbox, tmp_path / "out")).exit_code == 4
    counts: dict[str, int] = {}

    def read_the_other_date() -> None:  # inside the rerun's transaction, before its commit
        engine = engine_for(postgres_url)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SET LOCAL lock_timeout = '3s'")
                for table in ("installment_outcomes", "retry_plan"):
                    counts[table] = connection.execute(sa.text(
                        f"SELECT count(*) FROM {table} "
                        f"WHERE business_date = (SELECT CAST(:d AS date))"), {"d": other}).scalar()
        finally:
            engine.dispose()

    report = pipeline.run(D, settings(postgres_url, inbox, tmp_path / "out"),
                          before_commit=read_the_other_date)
    assert report.exit_code == 4, report.message
    assert counts == {"installment_outcomes": 4, "retry_plan": 4}
