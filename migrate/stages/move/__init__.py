"""Moving a system's workload with Ansible: the moving stages, one module each, named as their
play, journal entry and runbook section, over the session they share (``session``) — one
stage for the layer rules, run as a group by ``migrate.orchestrate.pipeline.move``.

``check_prerequisites`` changes nothing; ``transfer`` prepares the targets and copies files
and databases while the source keeps serving; ``cutover`` freezes the source, catches up and
starts the services on the targets (rolling back by itself when it fails); ``rollback``
returns service to the source; ``decommission_source`` removes the migration access. Each
appends one journal entry named after its stage, with inputs by digest and outputs as counts
and checksums, never secrets.

This package's attributes ``check_prerequisites`` ... ``decommission_source`` are the stage
functions, not their modules (a module's name is its function's): reach a module with
``importlib.import_module("migrate.stages.move.cutover")``.
"""

from migrate.stages.move.check_prerequisites import check_prerequisites
from migrate.stages.move.comparison import (
    compare_tables,
    differing_message,
    parse_table_sums,
    raise_for_differing_databases,
)
from migrate.stages.move.cutover import FREEZE_TASK, START_TASK, cutover
from migrate.stages.move.decommission_source import decommission_source
from migrate.stages.move.rollback import rollback
from migrate.stages.move.secret_files import migration_key
from migrate.stages.move.session import StageResult
from migrate.stages.move.transfer import transfer

__all__ = [
    "FREEZE_TASK",
    "START_TASK",
    "StageResult",
    "check_prerequisites",
    "compare_tables",
    "cutover",
    "decommission_source",
    "differing_message",
    "migration_key",
    "parse_table_sums",
    "raise_for_differing_databases",
    "rollback",
    "transfer",
]
