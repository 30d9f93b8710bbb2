-- 007 (postgresql): one row per business date that has been run: who holds the date now, and a
-- fencing token every run that takes the date bumps.
--
-- Until 006 the date lock was a session advisory lock on an idle connection of its own: when
-- that connection died (a restart, idle_session_timeout, a proxy), a second run could take the
-- date while the first carried on and later overwrote it; and through a transaction-pooling
-- pgbouncer a session lock is not ours at all. Now a run takes D by bumping `token` here, keeps a
-- lease on it with a heartbeat, and its write transaction first locks this row (SELECT ... FOR
-- UPDATE) and checks the token is still its own: a run that lost D cannot commit it.
-- A row whose lease_until is NULL or past, or whose holder's server session (backend_pid,
-- backend_start) has ended, is free.
CREATE TABLE recon_date_locks (
    business_date   date PRIMARY KEY,
    token           bigint NOT NULL DEFAULT 0,
    run_id          text,
    host            text,
    pid             integer,
    backend_pid     integer,
    backend_start   timestamptz,
    taken_at        timestamptz,
    lease_until     timestamptz
);
