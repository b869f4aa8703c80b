"""testinfra suites of ``migrate verify`` (run by migrate.stages.verify.run, never collected by the
project's own test run: their names are test_*.py but they live in the package)."""
