-- 002: analyst views over the stored outcomes (postgresql).

-- Per day, root cause and gateway: how many installments, how much is still outstanding.
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

-- Per day and gateway: share of installments not collected in full.
CREATE VIEW daily_gateway_failure_rate AS
SELECT business_date,
       COALESCE(gateway, '') AS gateway,
       count(*) AS installments,
       sum(CASE WHEN status IN ('paid', 'overpaid') THEN 0 ELSE 1 END) AS not_collected,
       round(1.0 * sum(CASE WHEN status IN ('paid', 'overpaid') THEN 0 ELSE 1 END) / count(*), 4)
           AS failure_rate
FROM installment_outcomes
GROUP BY business_date, COALESCE(gateway, '');

-- The latest finished run of each business date.
CREATE VIEW latest_runs AS
SELECT r.*
FROM recon_runs r
WHERE r.started_at = (SELECT max(started_at) FROM recon_runs x
                      WHERE x.business_date = r.business_date
                        AND x.outcome IN ('done', 'incomplete'));
