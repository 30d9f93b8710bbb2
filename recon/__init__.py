"""recon: nightly reconciliation of car-loan auto-debit collections."""

__version__ = "0.1.0"
