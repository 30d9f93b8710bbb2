-- 005 (postgresql): installment_outcomes partitioned by business date.
--
-- Rerunning a date used to DELETE its million rows and COPY a million new ones into a table
-- with a primary key and two indexes (~15 s for 1M rows). Now each business date is a partition
-- of its own: a run loads D into a fresh table without indexes, builds them once, then swaps it
-- for D's previous one (DROP + ATTACH), all in the one write transaction. Same columns,
-- NOT NULLs, CHECK constraints (same names: ATTACH matches them by name), primary key and
-- indexes as after 004; the indexes are defined on the parent, so every partition has them.
-- The analyst views that read the table are dropped and recreated with their 002/003 text.

DROP VIEW repeat_failures;
DROP VIEW daily_gateway_failure_rate;
DROP VIEW daily_root_causes;

ALTER TABLE installment_outcomes RENAME TO installment_outcomes_v4;
ALTER INDEX installment_outcomes_pkey RENAME TO installment_outcomes_v4_pkey;
ALTER INDEX installment_outcomes_by_cause RENAME TO installment_outcomes_v4_by_cause;
ALTER INDEX installment_outcomes_by_loan RENAME TO installment_outcomes_v4_by_loan;

CREATE TABLE installment_outcomes (
    business_date   date NOT NULL,
    loan_id         text NOT NULL CONSTRAINT installment_outcomes_loan_id_check CHECK (loan_id <> ''),
    installment_no  integer NOT NULL CONSTRAINT installment_outcomes_installment_no_check CHECK (installment_no >= 1),
    borrower_id     text NOT NULL CONSTRAINT installment_outcomes_borrower_id_check CHECK (borrower_id <> ''),
    status          text NOT NULL CONSTRAINT installment_outcomes_status_check CHECK (status IN ('overpaid','paid','pending','partially_paid','unpaid')),
    root_cause      text CONSTRAINT installment_outcomes_root_cause_check CHECK (root_cause IN ('card_unbound','insufficient_balance','account_frozen','account_closed','gateway_outage','instruction_not_confirmed','not_instructed','no_settlement_record','settlement_pending','other_decline','unclassified')),
    amount_due      numeric(14,2) NOT NULL,
    amount_settled  numeric(14,2) NOT NULL,
    gateway         text,
    response_code   text,
    run_id          text NOT NULL,
    CONSTRAINT installment_outcomes_pkey PRIMARY KEY (business_date, loan_id, installment_no),
    CONSTRAINT installment_outcomes_check CHECK ((status IN ('paid', 'overpaid')) = (root_cause IS NULL))
) PARTITION BY LIST (business_date);
CREATE INDEX installment_outcomes_by_cause ON installment_outcomes (business_date, root_cause)
    WHERE root_cause IS NOT NULL;
CREATE INDEX installment_outcomes_by_loan ON installment_outcomes (loan_id, business_date);

-- One partition per stored business date, installment_outcomes_dYYYYMMDD, itself partitioned by
-- date with one leaf, installment_outcomes_dYYYYMMDD_data, that holds the rows: a rerun swaps
-- the leaf, locking only its date's partition (recon/sinks/database.py).
DO $$
DECLARE
    d date;
BEGIN
    FOR d IN SELECT DISTINCT business_date FROM installment_outcomes_v4 ORDER BY 1 LOOP
        -- (no format(): the driver would read its percent signs as parameters)
        EXECUTE 'CREATE TABLE ' || quote_ident('installment_outcomes_d' || to_char(d, 'YYYYMMDD'))
             || ' PARTITION OF installment_outcomes FOR VALUES IN (' || quote_literal(d) || ')'
             || ' PARTITION BY LIST (business_date)';
        EXECUTE 'CREATE TABLE '
             || quote_ident('installment_outcomes_d' || to_char(d, 'YYYYMMDD') || '_data')
             || ' PARTITION OF '
             || quote_ident('installment_outcomes_d' || to_char(d, 'YYYYMMDD'))
             || ' FOR VALUES IN (' || quote_literal(d) || ')';
    END LOOP;
END
$$;

INSERT INTO installment_outcomes (business_date, loan_id, installment_no, borrower_id, status,
                                  root_cause, amount_due, amount_settled, gateway, response_code,
                                  run_id)
SELECT business_date, loan_id, installment_no, borrower_id, status, root_cause, amount_due,
       amount_settled, gateway, response_code, run_id
FROM installment_outcomes_v4;

DROP TABLE installment_outcomes_v4;

-- The analyst views, as 002 and 003 defined them.
CREATE VIEW daily_root_causes AS
SELECT business_date,
       COALESCE(root_cause, '') AS root_cause,
       COALESCE(gateway, '') AS gateway,
       status,
       count(*) AS installments,
       sum(amount_due) AS amount_due,
       sum(amount_due - amount_settled) AS amount_outstanding
FROM installment_outcomes
GROUP BY business_date, COALESCE(root_cause, ''), COALESCE(gateway, ''), status;

CREATE VIEW daily_gateway_failure_rate AS
SELECT business_date,
       COALESCE(gateway, '') AS gateway,
       count(*) AS installments,
       sum(CASE WHEN status IN ('paid', 'overpaid') THEN 0 ELSE 1 END) AS not_collected,
       round(1.0 * sum(CASE WHEN status IN ('paid', 'overpaid') THEN 0 ELSE 1 END) / count(*), 4)
           AS failure_rate
FROM installment_outcomes
GROUP BY business_date, COALESCE(gateway, '');

CREATE VIEW repeat_failures AS
SELECT o.loan_id,
       max(o.borrower_id) AS borrower_id,
       count(*) AS dates_not_collected,
       min(o.business_date) AS first_date,
       max(o.business_date) AS last_date,
       sum(o.amount_due - o.amount_settled) AS amount_outstanding,
       (SELECT x.root_cause FROM installment_outcomes x
        WHERE x.loan_id = o.loan_id AND x.status IN ('unpaid', 'partially_paid')
        ORDER BY x.business_date DESC, x.installment_no DESC
        LIMIT 1) AS latest_root_cause
FROM installment_outcomes o
WHERE o.status IN ('unpaid', 'partially_paid')
GROUP BY o.loan_id
HAVING count(DISTINCT o.business_date) >= 2;
