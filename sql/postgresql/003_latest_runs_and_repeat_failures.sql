-- 003 (postgresql): latest_runs names exactly one run per date; repeat_failures for collections.

-- The run whose results are stored for each business date: the last run that wrote results
-- (done or incomplete). 002 matched on started_at alone, so a refused or failed run started in
-- the same second as the writing run showed up too.
DROP VIEW latest_runs;
CREATE VIEW latest_runs AS
SELECT r.*
FROM recon_runs r
WHERE r.run_id = (SELECT x.run_id FROM recon_runs x
                  WHERE x.business_date = r.business_date
                    AND x.outcome IN ('done', 'incomplete')
                  ORDER BY x.started_at DESC, x.run_id DESC
                  LIMIT 1);

-- Loans not collected in full on two or more business dates (pending days are not decided yet
-- and do not count): who collections should call first, with the latest reason.
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
