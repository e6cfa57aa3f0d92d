"""The machinery every chapter shares: the ledger and its verdicts, the session a chapter starts,
the chapter registry, committed evidence and provenance, timing, data, device and the numerics profile."""
