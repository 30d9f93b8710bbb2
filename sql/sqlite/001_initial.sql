-- 001: the four tables of CONTRACT section 4.4 (sqlite).
-- Amounts are exact: NUMERIC(14,2) on PostgreSQL; on SQLite, which has no exact decimal type,
-- the decimal text ('1234.50'), checked to have two decimals.

CREATE TABLE recon_runs (
    run_id          text PRIMARY KEY,
    business_date   text NOT NULL,
    started_at      text NOT NULL,
    ended_at        text,
    outcome         text NOT NULL CHECK (outcome IN ('running','done','incomplete','refused','failed','abandoned')),
    exit_code       integer CHECK (exit_code BETWEEN 0 AND 5),
    host            text NOT NULL,
    pid             integer NOT NULL,
    recon_version   text NOT NULL,
    database_url    text NOT NULL,
    input_digests   text,
    counts          text,
    message         text
);
CREATE INDEX recon_runs_by_date ON recon_runs (business_date, started_at);

CREATE TABLE installment_outcomes (
    business_date   text NOT NULL,
    loan_id         text NOT NULL CHECK (loan_id <> ''),
    installment_no  integer NOT NULL CHECK (installment_no >= 1),
    borrower_id     text NOT NULL CHECK (borrower_id <> ''),
    status          text NOT NULL CHECK (status IN ('overpaid','paid','pending','partially_paid','unpaid')),
    root_cause      text CHECK (root_cause IN ('card_unbound','insufficient_balance','account_frozen','account_closed','gateway_outage','instruction_not_confirmed','not_instructed','no_settlement_record','settlement_pending','other_decline','unclassified')),
    amount_due      text NOT NULL CHECK (amount_due GLOB '[0-9]*.[0-9][0-9]'),
    amount_settled  text NOT NULL CHECK (amount_settled GLOB '[0-9]*.[0-9][0-9]'),
    gateway         text,
    response_code   text,
    run_id          text NOT NULL REFERENCES recon_runs (run_id),
    PRIMARY KEY (business_date, loan_id, installment_no),
    CHECK ((status IN ('paid', 'overpaid')) = (root_cause IS NULL))
);
CREATE INDEX installment_outcomes_by_cause ON installment_outcomes (business_date, root_cause);
CREATE INDEX installment_outcomes_by_loan ON installment_outcomes (loan_id, business_date);
CREATE INDEX installment_outcomes_by_gateway ON installment_outcomes (business_date, gateway);

CREATE TABLE settlement_exceptions (
    business_date   text NOT NULL,
    gateway         text NOT NULL,
    gateway_txn_id  text NOT NULL,
    instruction_id  text NOT NULL,
    amount          text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('orphan_settlement', 'duplicate_debit')),
    detail          text NOT NULL,
    run_id          text NOT NULL REFERENCES recon_runs (run_id)
);
CREATE INDEX settlement_exceptions_by_date ON settlement_exceptions (business_date, kind);

CREATE TABLE input_rejects (
    business_date   text NOT NULL,
    file            text NOT NULL,
    line            integer,
    column_name     text,
    value           text,
    reason          text NOT NULL,
    run_id          text NOT NULL REFERENCES recon_runs (run_id)
);
CREATE INDEX input_rejects_by_date ON input_rejects (business_date, file);
