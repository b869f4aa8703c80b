"""The stages, one module each (or a package for verify and discovery), named as their play,
journal entry and runbook section: trust, discovery, provision, transfer (with cutover,
rollback and decommission), register, verify, runbook, report, evidence. A stage takes what
it needs from ``migrate.core`` and the adapters; the orchestration strings them together."""
