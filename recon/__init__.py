"""recon: nightly reconciliation of car-loan auto-debit collections."""

import os

__version__ = "0.1.0"

# Arrow allocates through its bundled mimalloc, which by default hands freed memory back to the
# system after 10 ms; the next column then faults fresh, zeroed pages in again. A run frees and
# reallocates hundreds of MB per step: at 1M installments a fifth of the CPU time went to the
# kernel zeroing pages. Keeping freed memory for a second halves that and leaves peak memory as
# it was. It must be set before pyarrow loads; an operator's own setting wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "1000")
