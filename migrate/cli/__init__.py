"""The command line: Click commands (``main``), tables and progress for a terminal, one JSON
document per command, and the one error boundary that turns ``MigrateError`` into exit codes.
Logic lives in the library; a command parses, calls it and prints."""
