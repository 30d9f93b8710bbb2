-- 008 (sqlite): what a run published, and runs stopped by a signal (see the PostgreSQL 008).
--
-- SQLite cannot change a CHECK constraint in place: recon_runs is rebuilt (the documented
-- twelve-step procedure, inside the migration's transaction). legacy_alter_table keeps the
-- rename from rewriting or re-checking the views that name recon_runs; they name it again
-- once it is back.
PRAGMA legacy_alter_table = ON;
CREATE TABLE recon_runs_008 (
    run_id          text PRIMARY KEY,
    business_date   text NOT NULL,
    started_at      text NOT NULL,
    ended_at        text,
    outcome         text NOT NULL CHECK (outcome IN ('running','done','incomplete','refused','failed','abandoned','interrupted')),
    exit_code       integer CHECK (exit_code BETWEEN 0 AND 5 OR exit_code IN (130, 143)),
    host            text NOT NULL,
    pid             integer NOT NULL,
    recon_version   text NOT NULL,
    database_url    text NOT NULL,
    input_digests   text,
    counts          text,
    message         text,
    reports_path    text,
    reports_published_at text
);
INSERT INTO recon_runs_008 (run_id, business_date, started_at, ended_at, outcome, exit_code,
    host, pid, recon_version, database_url, input_digests, counts, message)
SELECT run_id, business_date, started_at, ended_at, outcome, exit_code, host, pid,
    recon_version, database_url, input_digests, counts, message FROM recon_runs;
DROP TABLE recon_runs;
ALTER TABLE recon_runs_008 RENAME TO recon_runs;
PRAGMA legacy_alter_table = OFF;
CREATE INDEX recon_runs_by_date ON recon_runs (business_date, started_at);
