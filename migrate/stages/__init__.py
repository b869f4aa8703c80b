"""The stages, one module each (or a package for verify, discovery and move), named as their
play, journal entry and runbook section: trust, discovery, provision, move (the moving
stages check_prerequisites, transfer, cutover, rollback and decommission_source, one module
each over the session they share), register, verify, runbook, report, evidence. A stage takes
what it needs from ``migrate.core``, the targets and the adapters, never from another stage
or the orchestration, which strings them together and hands one stage what it needs of
another."""
