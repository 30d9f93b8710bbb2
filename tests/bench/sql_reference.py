"""An independent SQL implementation of the contract's decisions: a benchmark yardstick.

    .venv/bin/python -m tests.bench.sql_reference --inbox bench-data/inbox-100000 --date 2026-11-27
    .venv/bin/python -m tests.bench.sql_reference --inbox DIR --date D [--db URL] [--jobs N]

What it is: the performance issue asks that the same day be run "side by side with an
independent SQL implementation of the contract; recon must not be slower than it". This module
is such an implementation (`make bench` runs it on the 1M day; figures in BENCHMARKS.md). It reads INBOX/D/ straight into PostgreSQL with COPY, validates the rows in SQL
(roughly as CONTRACT.md section 2 says) and decides one (status, root_cause) per valid
installment with set-based SQL (section 3, with the response-code tables of section 5) into a
table `outcomes(loan_id, installment_no, status, root_cause)`. It is a performance yardstick
only: NOT part of recon and NOT one of its tests. It was written from CONTRACT.md alone and
imports nothing from `recon` (its code tables are tests/code_tables.py, the tests' own copy of
section 5); it writes no reports, no rejects and no recon tables, and nothing
here asserts a time.

The server comes from --db (default postgresql://postgres@127.0.0.1/postgres); a database
`recon_sqlref` (UTF8, collation C) is dropped WITH (FORCE) and created on it for each run and
left behind for inspection. Timed, from reading the first file to the finished `outcomes` table:

- load: --jobs connections (default 2, the machine's cores) share the input tables; each
  creates its UNLOGGED text tables and COPYs its files (FREEZE) in one transaction, then
  validates them: trims values in place, finds keys with several rows, drops keys whose rows
  differ, collapses exact duplicates, checks every column and casts the survivors into v_*
  tables, and ANALYZEs them;
- decide: section 3 over the v_* tables, on the main connection: a handful of CREATE TABLE AS
  statements (each may run as a parallel query), the last one writing `outcomes`.

Session settings: TimeZone Asia/Shanghai (timestamps without an offset are local time),
work_mem 256MB, jit off (its compile time outweighed its gain here), default_statistics_target
10 (the ANALYZEs only have to get row counts and join sizes roughly right), synchronous_commit
off. A phase table is printed at the end.

Check: if the day holds `_truth.csv` (the synthetic generator's expected outcome per
installment), it is loaded after the timing and the agreement on (status, root_cause) is
printed, with up to 10 disagreements and their truth scenario. On the bench days (100k and 1M,
2026-11-27) every installment agrees.

Simplifications relative to the contract (fine for a yardstick, not for production):
- .ctl files: only gateway, business_date, scheme and encoding are read; records, amount_total
  and sha256 are not checked. A settlement file has arrived when its .csv and .ctl both exist
  and the .ctl names the file's gateway, D, a known scheme and a known encoding.
- no rejects output, no run summary, no --max-reject-rate, no operator code-map override file:
  bad rows are only left out. A missing required file or column stops the run, and so does a
  row COPY cannot parse (wrong number of fields, bytes invalid in the file's encoding), where
  the contract rejects just that row. Only spaces and tabs are trimmed.
- a key (installment: loan_id + installment_no without leading zeros; binding_id;
  instruction_id; settlement file + gateway_txn_id) whose rows differ in any contract column after
  trimming is dropped entirely, whether or not its rows are otherwise valid; rows equal in
  every contract column collapse into one (extra columns are ignored).
- an ACTIVE binding that carries an unbound_at is treated as invalid. Enumerations (statuses,
  confirm_status) are compared case-insensitively, booleans are true/false in any case.
- rule 2's "a binding active at the instruction's created_at" uses the newest created_at among
  the installment's instructions. The deciding attempt's FAILED rows are matched by
  instruction_id in any arrived file, ties on txn_time go to the greatest gateway_txn_id, and its
  code is mapped with the scheme of the deciding attempt's gateway.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

from tests.code_tables import DEFAULT_MAPS

DATABASE = "recon_sqlref"
DEFAULT_URL = "postgresql://postgres@127.0.0.1/postgres"
BOM = b"\xef\xbb\xbf"
COPY_CHUNK = 1 << 20

COLUMNS = {
    "installments": ["loan_id", "installment_no", "borrower_id", "due_date", "amount_due",
                     "currency"],
    "bindings": ["binding_id", "loan_id", "account_token", "card_no_masked", "bank_code",
                 "status", "bound_at", "unbound_at"],
    "instructions": ["instruction_id", "loan_id", "installment_no", "gateway", "amount",
                     "created_at", "confirm_required", "confirm_status", "sent_at"],
    "settlement": ["gateway_txn_id", "instruction_id", "amount", "status", "response_code",
                   "response_msg", "txn_time"],
    "incidents": ["gateway", "started_at", "ended_at", "description"],
}

PG_ENCODINGS = {"utf-8": "UTF8", "utf8": "UTF8", "gb18030": "GB18030", "gbk": "GBK",
                "gb2312": "EUC_CN"}
PY_ENCODINGS = {"UTF8": "utf-8", "GB18030": "gb18030", "GBK": "gbk", "EUC_CN": "gb2312"}

# Validity tests, LANGUAGE sql so that the planner inlines them. Each is a CASE so that a cast
# runs only on a value already vetted; the SELECT lists then cast the vetted values. PostgreSQL's
# regular expressions cost ~1 us a value, so the common shapes are vetted with LIKE, ltrim and
# IN lists of constants (hashed), and a regular expression only looks at rare forms.
DIGITS = "'0123456789'"


def sql_list(values) -> str:
    return ", ".join(f"'{value}'" for value in values)


MONTH_DAYS = sql_list(f"{month:02d}-{day:02d}" for month, days in
                      enumerate([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], start=1)
                      for day in range(1, days + 1))
HOURS_MINUTES = sql_list(f"{hour:02d}:{minute:02d}" for hour in range(24) for minute in range(60))
SECONDS = sql_list(f"{second:02d}" for second in range(60))
OFFSETS = sql_list(f"{sign}{hour:02d}:{minute:02d}" for sign in "+-" for hour in range(15)
                   for minute in range(60))
CENTS = sql_list([""] + [f".{cents}" for cents in range(10)]
                 + [f".{cents:02d}" for cents in range(100)])

FUNCTIONS = f"""
CREATE FUNCTION ok_int(t text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN length(t) BETWEEN 1 AND 9 AND ltrim(t, {DIGITS}) = ''
              THEN t::integer >= 1 ELSE false END $$;

-- plain decimal, at most two decimals, > 0
CREATE FUNCTION ok_amount(t text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN length(t) BETWEEN 1 AND 15 AND left(t, 1) <> '.'
                   AND ltrim(t, {DIGITS}) IN ({CENTS})
              THEN t::numeric > 0 ELSE false END $$;

-- YYYY-MM-DD HH:MM:SS local time (session TimeZone), or ISO 8601 with an offset
CREATE FUNCTION ok_ts(t text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN t LIKE '____-__-___%__:__:__%' AND substr(t, 11, 1) IN (' ', 'T')
    THEN ltrim(left(t, 4), {DIGITS}) = '' AND left(t, 4) <> '0000'
     AND substr(t, 6, 5) IN ({MONTH_DAYS})
     AND substr(t, 12, 5) IN ({HOURS_MINUTES})
     AND substr(t, 18, 2) IN ({SECONDS})
     AND CASE WHEN substr(t, 6, 5) = '02-29'
              THEN left(t, 4)::integer % 4 = 0
                   AND (left(t, 4)::integer % 100 <> 0 OR left(t, 4)::integer % 400 = 0)
              ELSE true END
     AND (length(t) = 19 OR substr(t, 20) IN ({OFFSETS})
          OR substr(t, 20) ~ '^(\\.[0-9]{{1,6}})?(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?$')
    ELSE false END $$;
"""

# Values are trimmed in place first (few need it, so an UPDATE of those rows is cheaper than a
# trimmed copy of every table, and later expressions read plain columns).
WHITESPACE = r"E' \t'"


def trim_sql(name: str, columns: list[str]) -> str:
    assignments = ", ".join(f"{column} = btrim({column}, {WHITESPACE})" for column in columns)
    needs = " OR ".join(f"{column} LIKE {pattern}" for column in columns
                        for pattern in ("' %'", "'% '", r"E'\t%'", r"E'%\t'"))
    return f"UPDATE raw_{name} SET {assignments} WHERE {needs}"


# Validation, per input table (section 2): a key whose rows differ in any contract column is
# dropped entirely, rows equal in every contract column collapse into one (extra columns are
# ignored); then every kept row is checked column by column. `columns`: contract column ->
# expression over the (trimmed) raw text column; `key`: the key among them; `checks`: the
# rules; `output`: the typed columns kept.
TABLES = {
    "installments": {
        "columns": {"loan_id": "loan_id",
                    "installment_no": "installment_no",
                    "installment_key": "ltrim(installment_no, '0')",
                    "borrower_id": "borrower_id",
                    "due_date": "due_date",
                    "amount_due": "amount_due",
                    "currency": "currency"},
        "key": ["loan_id", "installment_key"],
        "checks": ["loan_id <> ''", "ok_int(installment_no)", "borrower_id <> ''",
                   "due_date = %(day)s", "ok_amount(amount_due)", "currency = 'CNY'"],
        "output": ["loan_id", "installment_no::integer AS installment_no",
                   "amount_due::numeric AS amount_due"],
    },
    "bindings": {
        "columns": {"binding_id": "binding_id",
                    "loan_id": "loan_id",
                    "account_token": "account_token",
                    "card_no_masked": "card_no_masked",
                    "bank_code": "bank_code",
                    "status": "upper(status)",
                    "bound_at": "bound_at",
                    "unbound_at": "unbound_at"},
        "key": ["binding_id"],
        "checks": ["binding_id <> ''", "loan_id <> ''", "account_token <> ''",
                   "status IN ('ACTIVE', 'UNBOUND', 'REVOKED', 'EXPIRED')", "ok_ts(bound_at)",
                   "CASE WHEN status = 'ACTIVE' THEN unbound_at = '' ELSE ok_ts(unbound_at) END"],
        "output": ["loan_id", "bound_at::timestamptz AS bound_at",
                   "nullif(unbound_at, '')::timestamptz AS unbound_at"],
    },
    "instructions": {
        "columns": {"instruction_id": "instruction_id",
                    "loan_id": "loan_id",
                    "installment_no": "installment_no",
                    "gateway": "gateway",
                    "amount": "amount",
                    "created_at": "created_at",
                    "confirm_required": "lower(confirm_required)",
                    "confirm_status": "upper(confirm_status)",
                    "sent_at": "sent_at"},
        "key": ["instruction_id"],
        "checks": ["instruction_id <> ''", "loan_id <> ''", "ok_int(installment_no)",
                   "gateway <> ''", "ok_amount(amount)", "ok_ts(created_at)",
                   "confirm_required IN ('true', 'false')",
                   "confirm_status IN ('CONFIRMED', 'PENDING', 'EXPIRED', 'FAILED', "
                   "'NOT_REQUIRED')",
                   "(sent_at = '' OR ok_ts(sent_at))"],
        "output": ["instruction_id", "loan_id", "installment_no::integer AS installment_no",
                   "gateway", "created_at::timestamptz AS created_at",
                   "confirm_required::boolean AS confirm_required", "confirm_status",
                   "nullif(sent_at, '')::timestamptz AS sent_at"],
    },
    "settlement": {
        "columns": {"file_gateway": "file_gateway",
                    "gateway_txn_id": "gateway_txn_id",
                    "instruction_id": "instruction_id",
                    "amount": "amount",
                    "status": "upper(status)",
                    "response_code": "upper(response_code)",
                    "response_msg": "response_msg",
                    "txn_time": "txn_time"},
        "key": ["file_gateway", "gateway_txn_id"],
        "checks": ["gateway_txn_id <> ''", "ok_amount(amount)",
                   "status IN ('SUCCESS', 'FAILED')", "ok_ts(txn_time)"],
        "output": ["file_gateway", "gateway_txn_id", "instruction_id",
                   "amount::numeric AS amount", "status", "response_code",
                   "txn_time::timestamptz AS txn_time"],
    },
}


def validate_sql(name: str) -> list[str]:
    spec = TABLES[name]
    trimmed = ", ".join(f"{expr} AS {column}" for column, expr in spec["columns"].items())
    columns = ", ".join(spec["columns"])
    key = ", ".join(spec["key"])
    key_match = " AND ".join(f"d.{column} = t.{column}" for column in spec["key"])
    rows = f"(SELECT {trimmed} FROM raw_{name})"
    return [
        # keys with more than one row: few, but looking for them is a pass over the file
        f"CREATE UNLOGGED TABLE dup_{name} AS SELECT {key} FROM {rows} t "
        f"GROUP BY {key} HAVING count(*) > 1",
        f"ANALYZE dup_{name}",
        f"""CREATE UNLOGGED TABLE v_{name} AS
        SELECT {", ".join(spec["output"])}
        FROM (
          SELECT * FROM {rows} t
          WHERE NOT EXISTS (SELECT 1 FROM dup_{name} d WHERE {key_match})
          UNION ALL
          SELECT {columns} FROM (
            SELECT *, count(*) OVER (PARTITION BY {key}) AS variants
            FROM (SELECT DISTINCT t.* FROM {rows} t JOIN dup_{name} USING ({key})) exact
          ) same WHERE variants = 1
        ) kept
        WHERE {" AND ".join(spec["checks"])}""",
    ]


def table_validation(name: str) -> list[str]:
    """The statements that turn raw_<name> into v_<name>."""
    trim = trim_sql(name, [column for column in COLUMNS[name] if column != "description"])
    if name == "incidents":
        return [trim, """CREATE UNLOGGED TABLE v_incidents AS
            SELECT gateway, started_at::timestamptz AS started_at,
                   ended_at::timestamptz AS ended_at
            FROM raw_incidents
            WHERE ok_ts(started_at) AND ok_ts(ended_at)"""]
    return [trim, *validate_sql(name), f"ANALYZE v_{name}"]


SESSION = ["SET TimeZone = 'Asia/Shanghai'", "SET work_mem = '256MB'", "SET jit = off",
           "SET default_statistics_target = 10",
           "SET synchronous_commit = off"]


# Section 3, in statements of their own rather than CTEs so that each can run as a parallel
# query; binding lookups only for the few installments whose cause depends on one.
DECIDE = [
    # per instruction: its SUCCESS total and whether it succeeded at all (instructions of
    # installments that are not in v_installments are carried along and ignored at the end)
    """CREATE UNLOGGED TABLE d_instruction AS
    SELECT i.instruction_id, i.loan_id, i.installment_no, i.gateway, i.created_at,
           i.confirm_required, i.confirm_status, i.sent_at,
           coalesce(s.success_amount, 0) AS success_amount,
           s.instruction_id IS NOT NULL AS succeeded
    FROM v_instructions i
    LEFT JOIN (SELECT instruction_id, sum(amount) AS success_amount
               FROM v_settlement WHERE status = 'SUCCESS' GROUP BY instruction_id) s
           USING (instruction_id)""",
    "ANALYZE d_instruction",

    # per installment that has instructions
    """CREATE UNLOGGED TABLE d_installment AS
    SELECT loan_id, installment_no,
           sum(success_amount) AS settled,
           bool_or(sent_at IS NOT NULL) AS any_sent,
           bool_or(confirm_required AND confirm_status <> 'CONFIRMED') AS unconfirmed,
           max(created_at) AS newest_created_at
    FROM d_instruction
    GROUP BY loan_id, installment_no""",
    "ANALYZE d_installment",

    # rule 1: the deciding attempt (latest sent attempt without a SUCCESS row), its latest
    # FAILED row, and the cause
    """CREATE UNLOGGED TABLE d_deciding AS
    SELECT d.loan_id, d.installment_no,
           CASE WHEN a.gateway IS NULL THEN 'settlement_pending'
                WHEN f.instruction_id IS NOT NULL THEN coalesce(m.root_cause, 'unclassified')
                WHEN EXISTS (SELECT 1 FROM v_incidents g
                             WHERE g.gateway = d.gateway
                               AND d.sent_at BETWEEN g.started_at AND g.ended_at)
                     THEN 'gateway_outage'
                ELSE 'no_settlement_record' END AS root_cause
    FROM (SELECT DISTINCT ON (loan_id, installment_no)
                 loan_id, installment_no, instruction_id, gateway, sent_at
          FROM d_instruction
          WHERE sent_at IS NOT NULL AND NOT succeeded
          ORDER BY loan_id, installment_no, sent_at DESC, instruction_id COLLATE "C" DESC) d
    LEFT JOIN arrived a ON a.gateway = d.gateway
    LEFT JOIN (SELECT DISTINCT ON (instruction_id) instruction_id, response_code
               FROM v_settlement
               WHERE status = 'FAILED'
               ORDER BY instruction_id, txn_time DESC, gateway_txn_id COLLATE "C" DESC) f
           ON f.instruction_id = d.instruction_id
    LEFT JOIN code_map m ON m.scheme = a.scheme AND m.code = f.response_code""",
    "ANALYZE d_deciding",

    # rules 2 and 3: the installments whose cause depends on a binding, and the time at which
    # one must be active (the newest instruction's created_at; D 00:00:00 local time)
    """CREATE UNLOGGED TABLE d_binding_check AS
    SELECT loan_id, installment_no, newest_created_at AS active_at
    FROM d_installment
    WHERE NOT any_sent AND NOT unconfirmed
    UNION ALL
    SELECT v.loan_id, v.installment_no, %(day_start)s::timestamptz
    FROM v_installments v
    WHERE NOT EXISTS (SELECT 1 FROM d_installment p
                      WHERE p.loan_id = v.loan_id AND p.installment_no = v.installment_no)""",
    "ANALYZE d_binding_check",
    """CREATE UNLOGGED TABLE d_bound AS
    SELECT DISTINCT c.loan_id, c.installment_no
    FROM d_binding_check c
    JOIN v_bindings b ON b.loan_id = c.loan_id
    WHERE b.bound_at <= c.active_at AND (b.unbound_at IS NULL OR b.unbound_at > c.active_at)""",
    "ANALYZE d_bound",

    """CREATE UNLOGGED TABLE outcomes AS
    SELECT loan_id, installment_no,
           CASE WHEN settled > amount_due THEN 'overpaid'
                WHEN settled = amount_due THEN 'paid'
                WHEN root_cause = 'settlement_pending' THEN 'pending'
                WHEN settled > 0 THEN 'partially_paid'
                ELSE 'unpaid' END AS status,
           CASE WHEN settled >= amount_due THEN '' ELSE root_cause END AS root_cause
    FROM (
      SELECT v.loan_id, v.installment_no, v.amount_due, coalesce(p.settled, 0) AS settled,
             CASE WHEN c.root_cause IS NOT NULL THEN c.root_cause           -- rule 1
                  WHEN p.loan_id IS NULL OR NOT p.any_sent THEN             -- rules 2 and 3
                       CASE WHEN p.unconfirmed THEN 'instruction_not_confirmed'
                            WHEN b.loan_id IS NULL THEN 'card_unbound'
                            ELSE 'not_instructed' END
                  ELSE 'unclassified' END AS root_cause                     -- rule 4
      FROM v_installments v
      LEFT JOIN d_installment p USING (loan_id, installment_no)
      LEFT JOIN d_deciding c USING (loan_id, installment_no)
      LEFT JOIN d_bound b USING (loan_id, installment_no)
    ) decided""",
]

CHECK = r"""
SELECT count(*) FILTER (WHERE o.loan_id IS NOT NULL AND t.loan_id IS NOT NULL
                         AND o.status = t.status AND o.root_cause = t.root_cause) AS agree,
       count(*) FILTER (WHERE o.loan_id IS NOT NULL AND t.loan_id IS NOT NULL
                         AND (o.status <> t.status OR o.root_cause <> t.root_cause)) AS differ,
       count(*) FILTER (WHERE t.loan_id IS NULL) AS only_here,
       count(*) FILTER (WHERE o.loan_id IS NULL) AS only_truth,
       count(t.loan_id) AS truth_rows
FROM outcomes o
FULL JOIN truth_view t ON t.loan_id = o.loan_id AND t.installment_no = o.installment_no
"""

CHECK_LIST = r"""
SELECT coalesce(o.loan_id, t.loan_id), coalesce(o.installment_no, t.installment_no),
       coalesce(o.status || '/' || nullif(o.root_cause, ''), o.status, '(none)'),
       coalesce(t.status || '/' || nullif(t.root_cause, ''), t.status, '(none)'),
       coalesce(t.scenario, '')
FROM outcomes o
FULL JOIN truth_view t ON t.loan_id = o.loan_id AND t.installment_no = o.installment_no
WHERE o.loan_id IS NULL OR t.loan_id IS NULL
   OR o.status <> t.status OR o.root_cause <> t.root_cause
ORDER BY 1, 2
LIMIT 10
"""


def read_ctl(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip().lower()] = value.strip()
    return values


def settlement_files(day_dir: Path, day: str) -> list[tuple[str, Path, str, str]]:
    """(gateway, csv path, scheme, PostgreSQL encoding) of each settlement file that arrived."""
    arrived = []
    for path in sorted(day_dir.glob("settlement_*.csv")):
        gateway = path.stem[len("settlement_"):]
        ctl_path = path.with_suffix(".ctl")
        if not ctl_path.is_file():
            print(f"  {path.name}: no .ctl, not arrived")
            continue
        ctl = read_ctl(ctl_path)
        scheme = ctl.get("scheme", "").lower()
        encoding = PG_ENCODINGS.get(ctl.get("encoding", "utf-8").lower().replace("_", "-"))
        if ctl.get("gateway") != gateway or ctl.get("business_date") != day \
                or scheme not in DEFAULT_MAPS or encoding is None:
            print(f"  {path.name}: .ctl does not match (gateway, date, scheme, encoding), "
                  "not arrived")
            continue
        arrived.append((gateway, path, scheme, encoding))
    return arrived


def copy_csv(cursor, path: Path, table: str, wanted: list[str], encoding: str = "UTF8",
             freeze: bool = False) -> None:
    """COPY `path` into `table` (text columns); the file's header decides the column list:
    contract columns by name, any other column into a throwaway extra_<n> column."""
    with open(path, "rb") as handle:
        start = 3 if handle.read(3) == BOM and encoding == "UTF8" else 0
        handle.seek(start)
        header_line = handle.readline().decode(PY_ENCODINGS[encoding])
        header = next(csv.reader(io.StringIO(header_line)))
        names, extra = [], 0
        for raw_name in header:
            name = raw_name.strip().lower()
            if name in wanted and name not in names:
                names.append(name)
            else:
                extra += 1
                names.append(f"extra_{extra}")
        missing = [name for name in wanted if name not in names]
        if missing:
            raise SystemExit(f"{path.name}: required column(s) missing: {', '.join(missing)}")
        for number in range(1, extra + 1):
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS extra_{number} text")
        handle.seek(start)
        column_list = ", ".join(names)
        not_null = ", ".join(name for name in names if name in wanted)
        cursor.copy_expert(
            f"COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv, HEADER, "
            f"ENCODING '{encoding}', FORCE_NOT_NULL ({not_null}), FREEZE {freeze})", handle,
            size=COPY_CHUNK)


def create_raw_table(cursor, name: str) -> None:
    body = ", ".join(f"{column} text" for column in COLUMNS[name])
    if name == "settlement":
        body = "file_gateway text, " + body
    cursor.execute(f"CREATE UNLOGGED TABLE raw_{name} ({body})")


def run(cursor, statements: list[str], parameters: dict) -> None:
    for statement in statements:
        cursor.execute(statement, parameters if "%(" in statement else None)


def load_files(dsn: dict, work: list[tuple], parameters: dict) -> tuple[float, float]:
    """One loader connection: create its raw tables and COPY its files in one transaction (so
    that COPY may FREEZE the rows: no hint-bit writes on the first scan), then validate them.
    Returns (copy seconds, validate seconds)."""
    started = time.perf_counter()
    connection = psycopg2.connect(**dsn)
    try:
        with connection, connection.cursor() as cursor:
            names = list(dict.fromkeys(item[0] for item in work))
            for name in names:
                create_raw_table(cursor, name)
            for name, path, gateway, encoding in work:
                if name == "settlement":
                    cursor.execute("ALTER TABLE raw_settlement ALTER COLUMN file_gateway SET "
                                   "DEFAULT " + cursor.mogrify("%s", (gateway,)).decode())
                copy_csv(cursor, path, f"raw_{name}", COLUMNS[name], encoding, freeze=True)
        copied = time.perf_counter()
        connection.autocommit = True
        with connection.cursor() as cursor:
            run(cursor, SESSION, parameters)
            for name in names:
                run(cursor, table_validation(name), parameters)
        return copied - started, time.perf_counter() - copied
    finally:
        connection.close()


def load(cursor, dsn: dict, day_dir: Path, day: str, jobs: int,
         parameters: dict) -> list[tuple[float, float]]:
    """COPY and validate every input file of the day into the v_* tables; `jobs` connections
    share the tables. Returns (copy seconds, validate seconds) per connection."""
    cursor.execute("CREATE UNLOGGED TABLE arrived (gateway text PRIMARY KEY, scheme text)")
    cursor.execute("CREATE UNLOGGED TABLE code_map (scheme text, code text, root_cause text, "
                   "PRIMARY KEY (scheme, code))")
    rows = [(scheme, code, cause) for scheme, causes in DEFAULT_MAPS.items()
            for code, cause in causes.items()]
    cursor.executemany("INSERT INTO code_map VALUES (%s, upper(%s), %s)", rows)

    files = []
    for name in ("installments", "bindings", "instructions"):
        path = day_dir / f"{name}.csv"
        if not path.is_file():
            raise SystemExit(f"{path}: required file missing")
        files.append((name, path, None, "UTF8"))
    incidents = day_dir / "gateway_incidents.csv"
    if incidents.is_file():
        files.append(("incidents", incidents, None, "UTF8"))
    for gateway, path, scheme, encoding in settlement_files(day_dir, day):
        cursor.execute("INSERT INTO arrived VALUES (%s, %s)", (gateway, scheme))
        files.append(("settlement", path, gateway, encoding))

    # All files of a table go to one connection (the table is created in its transaction);
    # tables are dealt, largest first, to the connection with the fewest bytes so far.
    tables: dict[str, list[tuple]] = {}
    for item in files:
        tables.setdefault(item[0], []).append(item)
    shares: list[list[tuple]] = [[] for _ in range(max(1, jobs))]
    loads = [0] * len(shares)
    for items in sorted(tables.values(),
                        key=lambda items: -sum(item[1].stat().st_size for item in items)):
        lightest = loads.index(min(loads))
        shares[lightest].extend(items)
        loads[lightest] += sum(item[1].stat().st_size for item in items)
    with ThreadPoolExecutor(len(shares)) as pool:
        futures = [pool.submit(load_files, dsn, share, parameters) for share in shares if share]
        timings = [future.result() for future in futures]
    for name in ("incidents", "settlement"):      # optional inputs absent from the day
        if name not in tables:
            create_raw_table(cursor, name)
            run(cursor, table_validation(name), parameters)
    return timings


def fresh_database(url: str) -> dict:
    server = parse_dsn(url)
    admin = psycopg2.connect(make_dsn(**server))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {DATABASE} TEMPLATE template0 ENCODING 'UTF8' "
                       "LOCALE 'C'")
    admin.close()
    return {**server, "dbname": DATABASE}


def check_truth(cursor, day_dir: Path) -> None:
    truth = day_dir / "_truth.csv"
    if not truth.is_file():
        print("no _truth.csv in the day: nothing to check against")
        return
    cursor.execute("CREATE UNLOGGED TABLE truth (loan_id text, installment_no text, status text, "
                   "root_cause text, scenario text)")
    copy_csv(cursor, truth, "truth", ["loan_id", "installment_no", "status", "root_cause",
                                      "scenario"])
    cursor.execute("CREATE VIEW truth_view AS SELECT loan_id, installment_no::int AS "
                   "installment_no, status, root_cause, scenario FROM truth")
    cursor.execute(CHECK)
    agree, differ, only_here, only_truth, truth_rows = cursor.fetchone()
    print(f"\nagainst _truth.csv ({truth_rows:,} installments): {agree:,} agree on "
          f"(status, root_cause), {differ:,} differ, {only_here:,} only here, "
          f"{only_truth:,} only in the truth")
    cursor.execute(CHECK_LIST)
    rows = cursor.fetchall()
    if rows:
        print(f"\n{'loan_id':<12} {'no':>3}  {'here':<28} {'truth':<28} scenario")
        for loan_id, number, here, there, scenario in rows:
            print(f"{loan_id:<12} {number:>3}  {here:<28} {there:<28} {scenario}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inbox", required=True, type=Path)
    parser.add_argument("--date", required=True)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--jobs", type=int, default=2,
                        help="connections that load and validate files side by side (default 2)")
    args = parser.parse_args()
    day_dir = args.inbox / args.date
    if not day_dir.is_dir():
        raise SystemExit(f"{day_dir}: no such directory")

    dsn = fresh_database(args.db)
    connection = psycopg2.connect(**dsn)
    connection.autocommit = True
    cursor = connection.cursor()
    parameters = {"day": args.date, "day_start": f"{args.date} 00:00:00"}
    run(cursor, SESSION, parameters)
    cursor.execute(FUNCTIONS)

    started = time.perf_counter()
    per_connection = load(cursor, dsn, day_dir, args.date, args.jobs, parameters)
    loaded = time.perf_counter()
    run(cursor, DECIDE, parameters)
    finished = time.perf_counter()

    cursor.execute("SELECT status, count(*) FROM outcomes GROUP BY 1 ORDER BY 2 DESC")
    counts = ", ".join(f"{status} {count:,}" for status, count in cursor.fetchall())
    print(f"\noutcomes: {counts}")
    print("\nphase                                 wall s")
    print("------------------------------------  ------")
    print(f"{'load (COPY + validate)':<36}  {loaded - started:6.2f}")
    for number, (copy_seconds, validate_seconds) in enumerate(per_connection, start=1):
        print(f"{f'  connection {number}: COPY':<36}  {copy_seconds:6.2f}")
        print(f"{f'  connection {number}: validate':<36}  {validate_seconds:6.2f}")
    print(f"{'decide':<36}  {finished - loaded:6.2f}")
    print(f"{'total':<36}  {finished - started:6.2f}")

    check_truth(cursor, day_dir)
    connection.close()


if __name__ == "__main__":
    main()
