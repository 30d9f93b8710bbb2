-- 012 (sqlite): retry_plan.amount as exact text, like every other amount of the SQLite schema.
-- 009 declared it numeric(14,2): SQLite's NUMERIC affinity stores '1500.50' as the float 1500.5
-- and sums floats. SQLite cannot change a column's type in place: the table is rebuilt with
-- its rows (a stored float or integer becomes its 2-decimal text; amounts are at most
-- NUMERIC(14,2), exact in a double), then its indexes are made again.
CREATE TABLE retry_plan_012 (
    business_date   date NOT NULL,
    subject         text NOT NULL CHECK (subject IN ('installment', 'duplicate_debit')),
    loan_id         text NOT NULL,
    installment_no  integer NOT NULL,
    borrower_id     text,
    status          text,
    root_cause      text,
    days_past_due   integer,
    action          text NOT NULL CHECK (action IN ('retry', 'retry_other_gateway',
                        'query_gateway', 'wait_for_file', 'wait_for_borrower', 'refund', 'none')),
    not_before      text,
    gateway         text,
    binding_id      text,
    amount          text CHECK (amount IS NULL OR amount GLOB '[0-9]*.[0-9][0-9]'),
    attempts        integer NOT NULL,
    max_attempts    integer,
    instruction_id  text,
    gateway_txn_id  text,
    reason          text NOT NULL,
    run_id          text NOT NULL
);
INSERT INTO retry_plan_012
    SELECT business_date, subject, loan_id, installment_no, borrower_id, status, root_cause,
           days_past_due, action, not_before, gateway, binding_id,
           CASE WHEN amount IS NULL THEN NULL
                WHEN typeof(amount) = 'text' THEN amount
                ELSE printf('%.2f', amount) END,
           attempts, max_attempts, instruction_id, gateway_txn_id, reason, run_id
    FROM retry_plan;
DROP TABLE retry_plan;
ALTER TABLE retry_plan_012 RENAME TO retry_plan;
CREATE INDEX retry_plan_by_date ON retry_plan (business_date, action);
CREATE INDEX retry_plan_by_loan ON retry_plan (loan_id, installment_no);
