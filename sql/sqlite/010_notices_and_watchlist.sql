-- 010 (sqlite): the borrower notice outbox and the early-warning watchlist (CONTRACT 7).
-- docs/notices.md is the integrators' description of borrower_notices.

-- The outbox a messaging system reads. Unlike the other result tables it is not replaced on a
-- rerun of D: a notice the messaging system has taken (state no longer 'new') is never touched,
-- one not yet taken that no longer applies becomes 'cancelled', what is new is added.
CREATE TABLE borrower_notices (
    notice_id       text PRIMARY KEY,
    business_date   text NOT NULL,
    borrower_id     text NOT NULL CHECK (borrower_id <> ''),
    -- what the notice is about (template, channel, amount, card, installments), as a digest:
    -- two notices of one borrower and D with the same content_key say the same thing
    content_key     text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('sms', 'call')),
    template_key    text NOT NULL,
    message         text NOT NULL,
    amount          text NOT NULL CHECK (amount GLOB '[0-9]*.[0-9][0-9]'),
    card_last4      text CHECK (card_last4 GLOB '[0-9][0-9][0-9][0-9]'),
    -- the installments it is about: loan_id/installment_no/root_cause, ';'-separated
    installments    text NOT NULL,
    send_after      text NOT NULL,
    state           text NOT NULL DEFAULT 'new' CHECK (state <> ''),
    created_at      text NOT NULL,
    created_run_id  text NOT NULL,
    cancelled_at    text,
    cancelled_run_id text
);
-- At most one notice per borrower and D waiting to be taken ...
CREATE UNIQUE INDEX borrower_notices_one_open ON borrower_notices (business_date, borrower_id)
    WHERE state = 'new';
-- ... and never two live notices (taken or not) saying the same thing.
CREATE UNIQUE INDEX borrower_notices_same_thing
    ON borrower_notices (business_date, borrower_id, content_key) WHERE state <> 'cancelled';
-- What the messaging system polls for.
CREATE INDEX borrower_notices_to_take ON borrower_notices (send_after) WHERE state = 'new';

-- Early warning for the next due date, replaced with D's other results on a rerun.
CREATE TABLE watchlist (
    business_date   text NOT NULL,
    loan_id         text NOT NULL CHECK (loan_id <> ''),
    borrower_id     text,
    risk            text NOT NULL CHECK (risk IN ('no_active_binding', 'binding_ended', 'repeated_borrower_failure')),
    evidence        text NOT NULL,
    suggested_action text NOT NULL,
    run_id          text NOT NULL
);
CREATE INDEX watchlist_by_date ON watchlist (business_date, risk);
CREATE INDEX watchlist_by_loan ON watchlist (loan_id, business_date);

-- The analysts' view: the watchlist of the latest business date that has results.
CREATE VIEW current_watchlist AS
SELECT w.business_date, w.loan_id, w.borrower_id, w.risk, w.evidence, w.suggested_action, w.run_id
FROM watchlist w
WHERE w.business_date = (SELECT max(business_date) FROM watchlist);
