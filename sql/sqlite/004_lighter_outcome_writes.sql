-- 004 (sqlite): as on PostgreSQL, a partial root-cause index and no separate gateway index.
-- (SQLite does not enforce the run_id foreign key unless PRAGMA foreign_keys is on, and cannot
-- drop a constraint without rebuilding the table, so the declaration stays.)
DROP INDEX installment_outcomes_by_cause;
CREATE INDEX installment_outcomes_by_cause ON installment_outcomes (business_date, root_cause)
    WHERE root_cause IS NOT NULL;
DROP INDEX installment_outcomes_by_gateway;
