-- 011 (sqlite): settlement_exceptions.kind admits debit_without_installment. SQLite cannot change
-- a CHECK in place: the table is rebuilt with its rows, then its index is made again.
CREATE TABLE settlement_exceptions_011 (
    business_date   text NOT NULL,
    gateway         text NOT NULL,
    gateway_txn_id  text NOT NULL,
    instruction_id  text NOT NULL,
    amount          text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('orphan_settlement', 'duplicate_debit',
                                                  'debit_without_installment')),
    detail          text NOT NULL,
    run_id          text NOT NULL REFERENCES recon_runs (run_id)
);
INSERT INTO settlement_exceptions_011
    SELECT business_date, gateway, gateway_txn_id, instruction_id, amount, kind, detail, run_id
    FROM settlement_exceptions;
DROP TABLE settlement_exceptions;
ALTER TABLE settlement_exceptions_011 RENAME TO settlement_exceptions;
CREATE INDEX settlement_exceptions_by_date ON settlement_exceptions (business_date, kind);
