-- 013 (postgresql): retry_plan and borrower_notices partitioned by business date, as
-- installment_outcomes is since 005.
--
-- A run stored D's retry plan (250k rows at 1M installments) and its first notices (180k)
-- into tables whose indexes were kept up to date row by row: twice the time of loading them
-- into a fresh table and building the indexes once. Now each date is a partition of its own,
-- itself partitioned by date with one leaf (<table>_dYYYYMMDD_data): a run loads D's plan
-- into a new leaf and swaps it for the old one, and D's first notices into a new leaf it
-- attaches (a rerun adds its notices to that leaf, row by row: the taken ones stay as they
-- are). Same columns, defaults, CHECK constraints (same names: ATTACH matches them by name)
-- and indexes as after 009 and 010, with one change: a unique key on a partitioned table
-- includes the partition key, so borrower_notices' primary key is (notice_id, business_date).
-- notice_id stays unique on its own: it begins with D (YYYYMMDD-<run>-<n>).

ALTER TABLE retry_plan RENAME TO retry_plan_v12;
ALTER INDEX retry_plan_by_date RENAME TO retry_plan_v12_by_date;
ALTER INDEX retry_plan_by_loan RENAME TO retry_plan_v12_by_loan;
ALTER TABLE retry_plan_v12 RENAME CONSTRAINT retry_plan_subject_check TO retry_plan_v12_subject_check;
ALTER TABLE retry_plan_v12 RENAME CONSTRAINT retry_plan_action_check TO retry_plan_v12_action_check;

CREATE TABLE retry_plan (
    business_date   date NOT NULL,
    subject         text NOT NULL CONSTRAINT retry_plan_subject_check
                        CHECK (subject IN ('installment', 'duplicate_debit')),
    loan_id         text NOT NULL,
    installment_no  integer NOT NULL,
    borrower_id     text,
    status          text,
    root_cause      text,
    days_past_due   integer,
    action          text NOT NULL CONSTRAINT retry_plan_action_check
                        CHECK (action IN ('retry', 'retry_other_gateway', 'query_gateway',
                               'wait_for_file', 'wait_for_borrower', 'refund', 'none')),
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
) PARTITION BY LIST (business_date);
CREATE INDEX retry_plan_by_date ON retry_plan (business_date, action);
CREATE INDEX retry_plan_by_loan ON retry_plan (loan_id, installment_no);

ALTER TABLE borrower_notices RENAME TO borrower_notices_v12;
ALTER INDEX borrower_notices_pkey RENAME TO borrower_notices_v12_pkey;
ALTER INDEX borrower_notices_one_open RENAME TO borrower_notices_v12_one_open;
ALTER INDEX borrower_notices_same_thing RENAME TO borrower_notices_v12_same_thing;
ALTER INDEX borrower_notices_to_take RENAME TO borrower_notices_v12_to_take;
ALTER TABLE borrower_notices_v12 RENAME CONSTRAINT borrower_notices_borrower_id_check TO borrower_notices_v12_borrower_id_check;
ALTER TABLE borrower_notices_v12 RENAME CONSTRAINT borrower_notices_channel_check TO borrower_notices_v12_channel_check;
ALTER TABLE borrower_notices_v12 RENAME CONSTRAINT borrower_notices_amount_check TO borrower_notices_v12_amount_check;
ALTER TABLE borrower_notices_v12 RENAME CONSTRAINT borrower_notices_card_last4_check TO borrower_notices_v12_card_last4_check;
ALTER TABLE borrower_notices_v12 RENAME CONSTRAINT borrower_notices_state_check TO borrower_notices_v12_state_check;

CREATE TABLE borrower_notices (
    notice_id       text NOT NULL,
    business_date   date NOT NULL,
    borrower_id     text NOT NULL CONSTRAINT borrower_notices_borrower_id_check
                        CHECK (borrower_id <> ''),
    -- what the notice is about (template, channel, amount, card, installments), as a digest:
    -- two notices of one borrower and D with the same content_key say the same thing
    content_key     text NOT NULL,
    channel         text NOT NULL CONSTRAINT borrower_notices_channel_check
                        CHECK (channel IN ('sms', 'call')),
    template_key    text NOT NULL,
    message         text NOT NULL,
    amount          numeric(14,2) NOT NULL CONSTRAINT borrower_notices_amount_check
                        CHECK (amount > 0),
    card_last4      text CONSTRAINT borrower_notices_card_last4_check
                        CHECK (card_last4 ~ '^[0-9]{4}$'),
    -- the installments it is about: loan_id/installment_no/root_cause, ';'-separated
    installments    text NOT NULL,
    send_after      timestamptz NOT NULL,
    state           text NOT NULL DEFAULT 'new' CONSTRAINT borrower_notices_state_check
                        CHECK (state <> ''),
    created_at      timestamptz NOT NULL,
    created_run_id  text NOT NULL,
    cancelled_at    timestamptz,
    cancelled_run_id text,
    CONSTRAINT borrower_notices_pkey PRIMARY KEY (notice_id, business_date)
) PARTITION BY LIST (business_date);
CREATE UNIQUE INDEX borrower_notices_one_open ON borrower_notices (business_date, borrower_id)
    WHERE state = 'new';
CREATE UNIQUE INDEX borrower_notices_same_thing
    ON borrower_notices (business_date, borrower_id, content_key) WHERE state <> 'cancelled';
CREATE INDEX borrower_notices_to_take ON borrower_notices (send_after) WHERE state = 'new';

-- One partition per stored business date, <table>_dYYYYMMDD, with one leaf, ..._data.
DO $$
DECLARE
    t text;
    d date;
BEGIN
    FOREACH t IN ARRAY ARRAY['retry_plan', 'borrower_notices'] LOOP
        FOR d IN EXECUTE 'SELECT DISTINCT business_date FROM ' || quote_ident(t || '_v12')
                         || ' ORDER BY 1' LOOP
            -- (no format(): the driver would read its percent signs as parameters)
            EXECUTE 'CREATE TABLE ' || quote_ident(t || '_d' || to_char(d, 'YYYYMMDD'))
                 || ' PARTITION OF ' || quote_ident(t)
                 || ' FOR VALUES IN (' || quote_literal(d) || ')'
                 || ' PARTITION BY LIST (business_date)';
            EXECUTE 'CREATE TABLE ' || quote_ident(t || '_d' || to_char(d, 'YYYYMMDD') || '_data')
                 || ' PARTITION OF ' || quote_ident(t || '_d' || to_char(d, 'YYYYMMDD'))
                 || ' FOR VALUES IN (' || quote_literal(d) || ')';
        END LOOP;
    END LOOP;
END
$$;

INSERT INTO retry_plan SELECT business_date, subject, loan_id, installment_no, borrower_id,
       status, root_cause, days_past_due, action, not_before, gateway, binding_id, amount,
       attempts, max_attempts, instruction_id, gateway_txn_id, reason, run_id
FROM retry_plan_v12;
INSERT INTO borrower_notices SELECT notice_id, business_date, borrower_id, content_key, channel,
       template_key, message, amount, card_last4, installments, send_after, state, created_at,
       created_run_id, cancelled_at, cancelled_run_id
FROM borrower_notices_v12;

-- What operators set on the old tables goes to the new ones: the privileges (the messaging
-- system's role takes notices through them), and the table's and columns' comments. Queries
-- name the parent, whose privileges PostgreSQL checks; storage parameters (fillfactor) a
-- partitioned table cannot have.
DO $$
DECLARE
    t text;
    grant_ record;
    column_ record;
BEGIN
    FOREACH t IN ARRAY ARRAY['retry_plan', 'borrower_notices'] LOOP
        FOR grant_ IN SELECT a.privilege_type, a.grantee, a.is_grantable
                      FROM pg_class c, aclexplode(c.relacl) a
                      WHERE c.oid = CAST(t || '_v12' AS regclass) LOOP
            EXECUTE 'GRANT ' || grant_.privilege_type || ' ON ' || quote_ident(t) || ' TO '
                 || CASE WHEN grant_.grantee = 0 THEN 'PUBLIC'
                         ELSE quote_ident(pg_get_userbyid(grant_.grantee)) END
                 || CASE WHEN grant_.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END;
        END LOOP;
        IF obj_description(CAST(t || '_v12' AS regclass), 'pg_class') IS NOT NULL THEN
            EXECUTE 'COMMENT ON TABLE ' || quote_ident(t) || ' IS '
                 || quote_literal(obj_description(CAST(t || '_v12' AS regclass), 'pg_class'));
        END IF;
        FOR column_ IN SELECT a.attname, col_description(a.attrelid, a.attnum) AS note
                       FROM pg_attribute a
                       WHERE a.attrelid = CAST(t || '_v12' AS regclass) AND a.attnum > 0
                         AND NOT a.attisdropped
                         AND col_description(a.attrelid, a.attnum) IS NOT NULL LOOP
            EXECUTE 'COMMENT ON COLUMN ' || quote_ident(t) || '.' || quote_ident(column_.attname)
                 || ' IS ' || quote_literal(column_.note);
        END LOOP;
    END LOOP;
END
$$;

DROP TABLE retry_plan_v12;
DROP TABLE borrower_notices_v12;
