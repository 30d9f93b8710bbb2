"""The synthetic-day generator: inbox days with their ground truth, for the tests and `make bench`
(test tooling: not part of the recon package).

``generate_day`` writes one ``INBOX/<D>/`` directory that follows CONTRACT.md section 2 (installments,
binding history, debit instructions, three gateways' settlement files with their ``.ctl`` control files
and the incident list) plus files that are *not* inputs and that recon never reads:

- ``_truth.csv``: for every valid installment, the outcome intended when it was generated
  (``loan_id, installment_no, status, root_cause`` then ``amount_due, amount_settled, scenario``);
- ``_truth_settlement_exceptions.csv``: the orphan / duplicate-debit rows section 4.2 should list;
- ``_truth_rejects.csv``: every bad row planted (file, physical line, data record, column, reason).

How the truth is made: every installment is given a *scenario* (paid first time, failed with code
51, created but never sent while the card was unbound, ...) with the status and root cause that
scenario is meant to produce, then the rows are generated to produce it.  After that the rules of
section 3 (with the choices of notes/INTERPRETATION.md) are evaluated once more, independently,
over the generated attempts, settlement rows, incident windows and binding rows, and the two must
agree; with ``missing_gateway`` the evaluated outcome is written (attempts on the missing gateway
turn into ``settlement_pending``).

Everything is vectorised (numpy + pyarrow.compute): 1,000,000 installments take ~12-15 s and ~1.4 GB.
Amounts are integer fen throughout and are formatted as strings, never through floats.

    python -m tests.synth --date 2026-11-27 --installments 100000 --out ./inbox

(from the repository root). The modules: vocabulary (gateways, codes, scenarios), arrays (vectorised
helpers), plan (the scenarios' rows), oracle (section 3 over the rows), writing (CSV records, bad
and resent rows), files (the day's files), day (``generate_day``).
"""

from tests.synth.day import generate_day
from tests.synth.vocabulary import GATEWAY_SCHEME, GATEWAYS, SynthSummary

__all__ = ["GATEWAYS", "GATEWAY_SCHEME", "SynthSummary", "generate_day"]
