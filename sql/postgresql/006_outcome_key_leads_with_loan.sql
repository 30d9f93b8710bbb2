-- 006 (postgresql): the primary key of installment_outcomes leads with loan_id; the by_loan
-- index goes.
--
-- Since 005 every business date is a partition of its own, so inside a date's rows
-- business_date is one value, and the key (business_date, loan_id, installment_no) and the
-- index (loan_id, business_date) sorted the same million loan ids twice on every run (~0.5 s of
-- a 1M-installment write). Keyed (loan_id, installment_no, business_date), one index both keeps
-- the rows unique and finds a loan's outcomes across dates (the repeat_failures view, an
-- analyst's look-up); a date's rows are found by partition, not by index.
ALTER TABLE installment_outcomes DROP CONSTRAINT installment_outcomes_pkey;
ALTER TABLE installment_outcomes ADD CONSTRAINT installment_outcomes_pkey
    PRIMARY KEY (loan_id, installment_no, business_date);
DROP INDEX installment_outcomes_by_loan;
