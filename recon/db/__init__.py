"""The results database (CONTRACT 4.4): URLs, the engine, migrations, the per-date lock, the
run ledger and the atomic write. Reads of stored results live in recon.sources.stored."""
