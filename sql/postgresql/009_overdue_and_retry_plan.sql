-- 009 (postgresql): overdue installments and the retry plan (CONTRACT 2.1, 4.4, 7).
--
-- installment_outcomes gains days_past_due (D - due_date, 0 for an installment due on D) and
-- attempts (the sent attempts of D), so that a later date's retry plan can count an
-- installment's attempts over its life. Rows written before 009 have neither (NULL: counted as
-- 0 attempts). Added on the partitioned parent, so every date's partition has them; the
-- partition swap of recon/sinks/database.py reads the columns from the catalog.
ALTER TABLE installment_outcomes ADD COLUMN days_past_due integer;
ALTER TABLE installment_outcomes ADD COLUMN attempts integer;

-- One next action per installment not fully collected, and one refund per duplicate debit
-- (subject = 'duplicate_debit': the extra SUCCESS row's instruction and gateway_txn_id).
-- Replaced with D's other results in D's write transaction. not_before is local time in
-- RECON_TIMEZONE.
CREATE TABLE retry_plan (
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
    not_before      timestamp,
    gateway         text,
    binding_id      text,
    amount          numeric(14,2),
    attempts        integer NOT NULL,
    max_attempts    integer,
    instruction_id  text,
    gateway_txn_id  text,
    reason          text NOT NULL,
    run_id          text NOT NULL
);
CREATE INDEX retry_plan_by_date ON retry_plan (business_date, action);
CREATE INDEX retry_plan_by_loan ON retry_plan (loan_id, installment_no);
