-- 008 (postgresql): what a run published, and runs stopped by a signal.
--
-- reports_path: the run's own report folder (OUT/.runs/<D>/<run_id>), recorded in the write
-- transaction, so the committed results always name the reports that go with them;
-- reports_published_at: set once OUT/<D> has been switched to that folder. A committed run with
-- a path and no publication time is repaired (published) by the next run of D.
-- outcome 'interrupted', exit codes 130 (SIGINT) and 143 (SIGTERM): a run stopped by a signal.
ALTER TABLE recon_runs ADD COLUMN reports_path text;
ALTER TABLE recon_runs ADD COLUMN reports_published_at timestamptz;
ALTER TABLE recon_runs DROP CONSTRAINT recon_runs_outcome_check;
ALTER TABLE recon_runs ADD CONSTRAINT recon_runs_outcome_check CHECK (outcome IN
    ('running','done','incomplete','refused','failed','abandoned','interrupted'));
ALTER TABLE recon_runs DROP CONSTRAINT recon_runs_exit_code_check;
ALTER TABLE recon_runs ADD CONSTRAINT recon_runs_exit_code_check CHECK (exit_code BETWEEN 0 AND 5
    OR exit_code IN (130, 143));
