"""Verification of a migrated system (``migrate verify``): testinfra suites shipped in
``migrate/stages/verify/suites``, run by pytest in a subprocess against the system's target
machines over ssh, with a context generated from the manifest, the plan and the journal's
evidence; results parsed from the JUnit XML.

- ``context``: the per-system context document (pure, from estate/plan/journal);
- ``junit``: JUnit XML to per-check results (pure);
- ``baseline``: the source's interface answers, recorded before a cutover;
- ``run``: ssh config, the pytest subprocess, the result document and the journal entry.
"""
