"""The stages, one module each (or a package for verify and discovery), named as their play,
journal entry and runbook section: trust, discovery, provision, transfer (with cutover,
rollback and decommission), register, verify, runbook, report, evidence. A stage takes what
it needs from ``migrate.core``, the targets and the adapters, never from another stage or
the orchestration, which strings them together and hands one stage what it needs of another."""
