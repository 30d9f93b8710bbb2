"""The atomic write of a date's results: one transaction, a unit of work.

Delete D's rows, load the new ones, merge D's borrower notices and close the run; anything short
of the commit leaves D as it was. The pipeline drives it (ResultsWrite) and does its own steps
(the notices file, the reports made ready) between the database's, in plain sequence.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextlib import ExitStack

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from recon.db.bulk import bulk_insert, select_table
from recon.db.engine import Database, first_line, reachable
from recon.db.ledger import close_run, record_reports_path
from recon.db.locks import DateLock
from recon.db.partitions import (NOTICES, OUTCOMES, RETRY_PLAN, DatePartitioned, LeafTaken,
                                 attach_date_leaf, ensure_date_partitions, has_leaf,
                                 load_date_leaf, stage_date_leaf)
from recon.db.tables import (OUTCOME_COLUMNS, REJECT_COLUMNS, RETRY_PLAN_DB_COLUMNS,
                             SETTLEMENT_EXCEPTION_COLUMNS, WATCHLIST_COLUMNS, iso_date)
from recon.errors import CommitUnknown, DatabaseFailed, OutboxConflict
from recon.notices import NOTICES_COLUMNS, STORED_COLUMNS
from recon.protect import protect_rows

log = logging.getLogger("recon")


class ResultsWrite:
    """The write of D's results as a unit of work: `with` begins the transaction, `commit()`
    ends it; leaving the block any other way (an exception, KeyboardInterrupt, a return) rolls
    everything back.

        with ResultsWrite(database, run_id, day, lock) as write:
            write.replace_results(outcomes, settlement_exceptions, rejects, ...)
            write.merge_notices(outbox.plan)
            write.close_run(...)
            write.commit()

    The transaction first checks the run still holds D (`lock`, see recon.db.locks.date_lock)
    and confirms it last, in commit(), before the COMMIT. On SQLite it takes the write lock at
    BEGIN, so the notice merge reads what no one else can change before the commit (PostgreSQL
    locks the rows it reads). A connection lost during the COMMIT itself: see _lost_commit.
    """

    def __init__(self, database: Database, run_id: str, business_date: str,
                 lock: DateLock | None = None) -> None:
        self.database = database
        self.run_id = run_id
        self.business_date = business_date
        self.lock = lock or DateLock()
        self._stack = ExitStack()  # what __exit__ undoes: the rollback, the connection
        self._committed = False
        # PostgreSQL: the tables whose new leaf of D is staged, swapped in by commit().
        self._staged: list[DatePartitioned] = []

    def __enter__(self) -> ResultsWrite:
        database = self.database
        if database.is_postgres:
            with reachable(database):
                ensure_date_partitions(database, self.business_date)
        try:
            self._stack.enter_context(reachable(database))
            self.connection = self._stack.enter_context(database.engine.connect())
            self.connection.info["recon_begin"] = "BEGIN IMMEDIATE"
            try:
                self._transaction = self.connection.begin()
            finally:
                self.connection.info.pop("recon_begin", None)
            self._stack.callback(self._roll_back_unless_committed)
            self.lock.check(self.connection)
        except BaseException:
            if not self._stack.__exit__(*sys.exc_info()):
                raise
        return self

    def __exit__(self, *exc_info) -> bool | None:
        return self._stack.__exit__(*exc_info)

    def _roll_back_unless_committed(self) -> None:
        if self._committed:
            return
        try:
            self._transaction.rollback()
        except SQLAlchemyError:
            pass  # the connection is gone: the server rolls back

    def replace_results(self, outcomes: pd.DataFrame, settlement_exceptions: pd.DataFrame,
                        rejects: pd.DataFrame, *, retry_plan: pd.DataFrame | None = None,
                        watchlist: pd.DataFrame | None = None) -> None:
        """Replace D's rows in the result tables: replace_outcomes, then replace_actions."""
        self.replace_outcomes(outcomes, settlement_exceptions, rejects)
        self.replace_actions(retry_plan=retry_plan, watchlist=watchlist)

    def replace_outcomes(self, outcomes: pd.DataFrame, settlement_exceptions: pd.DataFrame,
                         rejects: pd.DataFrame) -> None:
        """Replace D's outcomes, settlement exceptions and rejects. The pipeline runs this on a
        thread of its own while it plans the actions (the server spends that time on COPY and
        index builds); nothing else uses the connection meanwhile."""
        # The text columns that come from outside (codes, messages, details): no full card
        # number is stored, whatever the caller masked before.
        outcomes = protect_rows("outcomes", outcomes)
        settlement_exceptions = protect_rows("settlement_exceptions", settlement_exceptions)
        rejects = protect_rows("rejects", rejects)
        _write_outcome_rows(self.database, self.connection, self.run_id, self.business_date,
                            outcomes, settlement_exceptions, rejects)
        if self.database.is_postgres:
            self._staged.append(OUTCOMES)

    def replace_actions(self, *, retry_plan: pd.DataFrame | None = None,
                        watchlist: pd.DataFrame | None = None) -> None:
        """Replace D's retry plan (CONTRACT 7, columns RETRY_PLAN_DB_COLUMNS) and watchlist,
        each when given."""
        _write_action_rows(self.database, self.connection, self.run_id, self.business_date,
                           retry_plan, watchlist)
        if self.database.is_postgres and retry_plan is not None:
            self._staged.append(RETRY_PLAN)

    def merge_notices(self, plan) -> None:
        """Merge D's borrower notices as `plan` (recon.notices.Outbox.plan) says: see
        merge_notices."""
        merge_notices(self.database, self.connection, self.business_date, plan)

    def withdraw_notices(self, plan):
        """The first half of merge_notices: D's stored notices read under row locks, the
        change planned and its cancellations made. Returns the change, for insert_notices."""
        return withdraw_notices(self.database, self.connection, self.business_date, plan)

    def insert_notices(self, change) -> None:
        """The second half of merge_notices: the change's new notices inserted."""
        insert_notices(self.database, self.connection, self.business_date, change)

    def close_run(self, outcome: str, exit_code: int, *, digests: dict, counts: dict,
                  message: str, ended_at: dt.datetime, reports_path: str | None = None) -> None:
        """Close the run in recon_runs with its counts, and record `reports_path` (the run's
        report folder), published once this commits."""
        close_run(self.connection, self.run_id, outcome, exit_code, digests, counts, message,
                  ended_at=ended_at)
        record_reports_path(self.connection, self.run_id, reports_path)

    def commit(self) -> None:
        """Swap D's staged leaves in, confirm the run still holds D, then COMMIT. The swap is
        last: it locks D's partitions exclusively until the COMMIT (attach_date_leaf)."""
        for table in self._staged:
            attach_date_leaf(self.connection, table, self.business_date, replace=True)
        self._staged.clear()
        self.lock.confirm(self.connection)
        self._committed = True
        try:
            self._transaction.commit()
        except DBAPIError as exc:
            if not self.database.is_postgres:
                raise
            _lost_commit(self.database, self.run_id, self.business_date, exc)


def _write_outcome_rows(database: Database, connection: Connection, run_id: str,
                        business_date: str, outcomes: pd.DataFrame,
                        settlement_exceptions: pd.DataFrame, rejects: pd.DataFrame) -> None:
    if database.is_postgres:
        tables = ("settlement_exceptions", "input_rejects")
    else:
        tables = ("installment_outcomes", "settlement_exceptions", "input_rejects")
    for table in tables:
        connection.execute(sa.text(f"DELETE FROM {table} WHERE business_date = :d"),
                           {"d": business_date})
    if database.is_postgres:
        stage_date_leaf(connection, OUTCOMES, business_date, outcomes, OUTCOME_COLUMNS,
                        _constants(business_date, run_id=run_id))
    else:
        bulk_insert(database, connection, "installment_outcomes", OUTCOME_COLUMNS, outcomes)
    bulk_insert(database, connection, "settlement_exceptions", SETTLEMENT_EXCEPTION_COLUMNS,
                settlement_exceptions)
    bulk_insert(database, connection, "input_rejects", REJECT_COLUMNS, rejects)


def _write_action_rows(database: Database, connection: Connection, run_id: str,
                       business_date: str, retry_plan: pd.DataFrame | None,
                       watchlist: pd.DataFrame | None) -> None:
    if retry_plan is not None and database.is_postgres:
        stage_date_leaf(connection, RETRY_PLAN, business_date, retry_plan,
                        RETRY_PLAN_DB_COLUMNS, _constants(business_date, run_id=run_id))
    elif retry_plan is not None:
        connection.execute(sa.text("DELETE FROM retry_plan WHERE business_date = :d"),
                           {"d": business_date})
        bulk_insert(database, connection, "retry_plan", RETRY_PLAN_DB_COLUMNS, retry_plan)
    if watchlist is not None:
        connection.execute(sa.text("DELETE FROM watchlist WHERE business_date = :d"),
                           {"d": business_date})
        bulk_insert(database, connection, "watchlist", WATCHLIST_COLUMNS,
                    watchlist.assign(run_id=run_id))


def _constants(business_date: str, **columns: str) -> dict[str, str]:
    """The columns of D's leaf that are the same on every row, as SQL literals (stage_date_leaf
    checks each before splicing it into DDL)."""
    return {"business_date": f"DATE '{iso_date(business_date)}'",
            **{column: f"'{value}'" for column, value in columns.items()}}


LOST_COMMIT_WAIT = "30s"  # how long to wait for the server to end the lost COMMIT's session


def _lost_commit(database: Database, run_id: str, business_date: str, exc: DBAPIError) -> None:
    """The connection dropped while COMMIT was in flight: did the server commit?

    Ask on a new connection. The run's recon_runs row was closed in the lost transaction, so
    its row lock is held until that transaction ends on the server: SELECT ... FOR UPDATE waits
    for that end, then reads what holds. Committed: return (the run carries on, as done). Not
    committed: DatabaseFailed, D kept its previous results. No answer: CommitUnknown.
    """
    why = first_line(database, exc)
    where = f"database {database.shown_url}"
    try:
        with database.engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOST_COMMIT_WAIT}'")
            state = connection.execute(sa.text(
                "SELECT outcome FROM recon_runs WHERE run_id = :run_id FOR UPDATE"),
                {"run_id": run_id}).scalar()
    except SQLAlchemyError:
        raise CommitUnknown(
            f"{where}: the connection was lost during COMMIT ({why}) and the server could not "
            f"be asked since: whether run {run_id} committed its results of {business_date} is "
            f"unknown",
            next_step=f"check recon_runs for run {run_id}: 'running' means D kept its previous "
                      f"results (rerun), anything else that the run's results stand") from None
    if state is not None and state != "running":
        log.warning("the connection was lost during COMMIT (%s); the server confirms the run's "
                    "results of %s were committed", why, business_date,
                    extra={"run_id": run_id, "business_date": business_date})
        return
    raise DatabaseFailed(
        f"{where}: the connection was lost during COMMIT ({why}); the server says it was not "
        f"committed: {business_date} keeps its previous results",
        next_step="rerun the date")


def merge_notices(database: Database, connection: Connection, business_date: str, plan) -> None:
    """Apply the notice merge of D inside the caller's transaction (CONTRACT 7, docs/notices.md).

    D's open notices are read under row locks, then the others (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite's write transaction holds the whole database), so the messaging
    system's `UPDATE ... SET state = 'sent' WHERE notice_id = ... AND state = 'new'` either
    committed before the read (and this run sees the notice taken) or waits for this commit
    (and then finds it cancelled or kept, and updates nothing). `plan(stored)` returns the
    change (recon.notices.OutboxChange).
    Cancelling is conditional on the state still being `new` all the same; a notice taken
    anyway, or a live notice of the same borrower and content written by a run racing this one
    past the date lock (the unique indexes of sql 010), rolls this run back (OutboxConflict).
    """
    insert_notices(database, connection, business_date,
                   withdraw_notices(database, connection, business_date, plan))


def withdraw_notices(database: Database, connection: Connection, business_date: str, plan):
    """merge_notices up to the insert: D's stored notices read under row locks, `plan(stored)`,
    the notices it cancels withdrawn. Returns the change (recon.notices.OutboxChange)."""
    # Every cell as the database's text (timestamps ISO 8601 with offset), read as Arrow
    # through the driver: a rerun holds D's notices, 180k at 1M installments.
    cells = ", ".join(f"CAST({column} AS TEXT) AS {column}" for column in NOTICES_COLUMNS)

    def read(where: str, lock: str = "") -> pd.DataFrame:
        return select_table(
            database, connection,
            f"SELECT {cells} FROM borrower_notices WHERE business_date = {{}}{where} "
            f"ORDER BY notice_id{lock}", (business_date,),
            {column: pa.string() for column in NOTICES_COLUMNS},
            strings_can_be_null=True).to_pandas().fillna("").astype("str")

    if database.is_postgres:
        # Only the open notices are locked: the run may cancel or keep them, never the others.
        # First, so that a take in flight is waited for and then seen, taken, by the second
        # read; the messaging system's later updates of taken notices (delivery receipts) do
        # not wait for this run.
        open_ = read(" AND state = 'new'", " FOR UPDATE")
        stored = pd.concat([open_, read(" AND state <> 'new'")], ignore_index=True).sort_values(
            "notice_id", kind="stable", ignore_index=True)
    else:  # the write transaction holds the database
        stored = read("")
    change = plan(stored)
    if change.cancel:
        made_at = change.notices.loc[change.notices["notice_id"].isin(change.cancel),
                                     "cancelled_at"].iloc[0]
        run_id = change.notices.loc[change.notices["notice_id"].isin(change.cancel),
                                    "cancelled_run_id"].iloc[0]
        statement = sa.text(
            "UPDATE borrower_notices SET state = 'cancelled', cancelled_at = :at, "
            "cancelled_run_id = :run WHERE notice_id = :id AND state = 'new'")
        if database.is_postgres:
            cancelled = connection.execute(sa.text(
                "UPDATE borrower_notices SET state = 'cancelled', cancelled_at = :at, "
                "cancelled_run_id = :run WHERE notice_id = ANY(:ids) AND state = 'new'"),
                {"at": made_at, "run": run_id, "ids": list(change.cancel)}).rowcount
        else:
            cancelled = sum(connection.execute(statement, {"at": made_at, "run": run_id,
                                                           "id": notice_id}).rowcount
                            for notice_id in change.cancel)
        if cancelled != len(change.cancel):
            raise OutboxConflict(
                f"{len(change.cancel) - cancelled} notice(s) of {business_date} were taken by "
                f"the messaging system while this run was withdrawing them",
                next_step="nothing was written; rerun the date")
    return change


def insert_notices(database: Database, connection: Connection, business_date: str,
                   change) -> None:
    """merge_notices' insert of the change's new notices; a live notice of the same borrower
    and content already there (a run racing this one) is an OutboxConflict."""
    try:
        if database.is_postgres and not change.insert.empty \
                and not has_leaf(connection, NOTICES, business_date):
            # D's first notices: into a leaf of their own, indexed once loaded (four indexes
            # kept up to date row by row cost twice the load).
            load_date_leaf(connection, NOTICES, business_date, change.insert, STORED_COLUMNS,
                           _constants(business_date), replace=False)
        else:
            bulk_insert(database, connection, "borrower_notices", STORED_COLUMNS,
                        change.insert)
    except LeafTaken:
        raise OutboxConflict(
            f"another run wrote the first notices of {business_date} at the same time",
            next_step="nothing was written; rerun the date") from None
    except sa.exc.IntegrityError as exc:
        raise OutboxConflict(
            f"another run wrote notices of {business_date} at the same time: "
            f"{first_line(database, exc)}", next_step="nothing was written; rerun the date") \
            from None
