"""Strings the stages together: ``pipeline`` (one function per CLI command, the plan computed
once per command, systems side by side) and ``run`` (``migrate run``: waves, resume from the
journal); ``status`` reads where each system stands from the journal."""
