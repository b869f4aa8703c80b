"""transfer_files against a bare ``rsync -a`` over ssh, and cutover downtime against a bare
final rsync plus service start, on the sandbox (needs root).

    PYTHONPATH=. .venv/bin/python bench/bench_transfer.py [--mib 1024] [--files 2048] [--repeat 3]

Brings up the example estate's sandbox and wjw-fybj's targets in a private root, grows the
source's file tree to ``--mib`` MiB of random data in ``--files`` files, then measures, in
``--repeat`` turns each (the ratios are of the medians; each turn's ratio is printed too):

1. throughput: the bare rsync (source -> target, same ssh key and options, fresh directory)
   against the ``transfer_files`` play into the real destination, emptied before each turn
   (the whole play, from starting ansible-playbook to its end; the rsync task alone is
   reported too), the two in turns, each first in every other turn;
2. downtime after a 1% change (files rewritten since the last pass, and 1% of the rows of a
   ``--db-mib`` MiB table updated, the database being kept in step by logical replication):
   bare = stop the source service, rsync, start the target service, wait for its health
   path; ours = the cutover play's freeze-to-healthy span from its events (freeze, final
   rsync, catch-up of the subscription, start). Between turns the cutover is rolled back
   and the database subscribed again.

Everything it made is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from statistics import median

from migrate.adapters import ansible as runner
from migrate.orchestrate.pipeline import open_estate
from migrate.rehearsal.sandbox import network
from migrate.stages.move import FREEZE_TASK, START_TASK
from migrate.stages.move.session import Session, StageResult, open_session
from tests.transfer.world import (
    SYSTEM,
    World,
    bring_up,
    copy_estate,
    on_source,
    on_target,
    tear_down,
)

SSH = ("ssh -F /dev/null -i /root/.ssh/migrate-{sid} -o IdentitiesOnly=yes "
       "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/root/.ssh/migrate-{sid}.known_hosts "
       "-o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o Compression=no")


def source(world: World, command: str) -> str:
    result = on_source(world, "web1", command)
    if result.returncode != 0:
        raise SystemExit(f"on web1: {command}\n{result.stderr}")
    return result.stdout


def grow_tree(world: World, root: str, mib: int, files: int) -> None:
    size_kib = max(1, mib * 1024 // files)
    source(world, f"mkdir -p {root}/bench && cd {root}/bench && for i in $(seq 1 {files}); do "
                  f"head -c {size_kib}K /dev/urandom > f$i.bin; done; chown -R --reference={root}"
                  f" {root}/bench")


def change_one_percent(world: World, root: str, files: int, offset: int) -> None:
    count = max(1, files // 100)
    source(world, f"cd {root}/bench && for i in $(seq {offset + 1} {offset + count}); do "
                  f"head -c 64K /dev/urandom | dd of=f$i.bin bs=64K seek=1 conv=notrunc "
                  f"status=none; done")


def timed_on_source(world: World, command: str) -> float:
    out = source(world, f"s=$(date +%s.%N); {command}; e=$(date +%s.%N); echo \"$s $e\"")
    start, end = out.split()[-2:]
    return float(end) - float(start)


def bare_cutover(world: World, ssh: str, root: str, target: str) -> float:
    """Stop the source service, final rsync, start the target's, until /health answers."""
    started = time.monotonic()
    source(world, f"systemctl stop fybj-web && rsync -a --delete -e '{ssh}' {root}/ "
                  f"root@{target}:{root}/ && {ssh} root@{target} systemctl start fybj-web")
    url = f"http://{target}:8080/health"
    network.assert_local_address(target)
    while time.monotonic() - started < 120:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the target service did not answer /health within 120 s")


def play_span(play: runner.PlayResult, first_task: str, last_task: str) -> float:
    """Seconds from ``first_task``'s start to ``last_task``'s last result, from the events."""
    starts, ends = [], []
    for path in (play.artifacts / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        task = event.get("event_data", {}).get("task", "")
        created = datetime.fromisoformat(event["created"]).timestamp()
        if task == first_task and event["event"] == "playbook_on_task_start":
            starts.append(created)
        if task == last_task and event["event"] in ("runner_on_ok", "runner_on_failed"):
            ends.append(created)
    return max(ends) - min(starts)


def task_delta(play: runner.PlayResult, task_name: str) -> float:
    total = 0.0
    for path in (play.artifacts / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if data.get("task") == task_name and event["event"] == "runner_item_on_ok":
            h, m, s = data["res"]["delta"].split(":")
            total += int(h) * 3600 + int(m) * 60 + float(s)
    return total


def on_db(world: World, query: str) -> str:
    result = on_source(world, "db1", "runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 "
                                     f"-d fybj -c \"{query}\"")
    if result.returncode != 0:
        raise SystemExit(f"on db1: {query}\n{result.stderr}")
    return result.stdout.strip()


def grow_database(world: World, mib: int) -> int:
    """A table of ``mib`` MiB (1 KiB rows, primary key) owned by the application's role."""
    on_db(world, "CREATE TABLE IF NOT EXISTS bench_rows (id bigint GENERATED BY DEFAULT AS "
                 "IDENTITY PRIMARY KEY, payload text NOT NULL); ALTER TABLE bench_rows OWNER "
                 "TO fybj; INSERT INTO bench_rows (payload) SELECT repeat(md5(i::text), 32) "
                 f"FROM generate_series(1, {mib * 1024}) AS i")
    return int(on_db(world, "SELECT pg_database_size('fybj')"))


def change_database(world: World, mib: int) -> None:
    """1% of the bench rows rewritten while the source serves."""
    rows = max(1, mib * 1024 // 100)
    on_db(world, f"UPDATE bench_rows SET payload = md5(payload) WHERE id <= {rows}")


def target(world: World, command: str, known_hosts: Path) -> None:
    result = on_target(world, "web", command, known_hosts)
    if result.returncode != 0:
        raise SystemExit(f"on the target: {command}\n{result.stderr}")


def empty(tree: str) -> str:
    return f"{{ [ ! -d {tree} ] || find {tree} -mindepth 1 -delete; }}"


def measure_throughput(world: World, session: Session, holder: StageResult,
                       root: str, repeat: int) -> dict:
    """Bare rsync and the play in turns, each into an empty destination, ``repeat`` times;
    the bare one goes first in even turns, the play in odd ones (whichever runs second meets
    the disk just after a 3 GiB write and a delete)."""
    target_address = world.targets["web"]["address"]
    ssh, known_hosts = SSH.format(sid=SYSTEM), session.run_dir / "known_hosts"
    bare, play, task = [], [], []

    def run_bare() -> None:
        target(world, "rm -rf /srv/bench-bare && sync", known_hosts)
        source(world, "sync")
        bare.append(timed_on_source(
            world, f"rsync -a -e '{ssh}' {root}/ root@{target_address}:/srv/bench-bare/"))

    def run_play() -> None:
        target(world, f"{empty(root)} && sync", known_hosts)
        source(world, "sync")
        started = time.monotonic()
        result = session.play("transfer_files", holder)
        play.append(time.monotonic() - started)
        task.append(task_delta(result, "Record files transferred"))

    for turn in range(repeat):
        for step in (run_bare, run_play) if turn % 2 == 0 else (run_play, run_bare):
            step()
    target(world, "rm -rf /srv/bench-bare", known_hosts)
    return {
        "bare_rsync_s": [round(b, 3) for b in bare],
        "transfer_files_play_s": [round(p, 3) for p in play],
        "transfer_files_rsync_task_s": [round(t, 3) for t in task],
        "throughput_ratio_play": round(median(bare) / median(play), 3),
        "throughput_ratio_rsync_task": round(median(bare) / median(task), 3),
        "throughput_ratio_play_per_turn": [round(b / p, 3)
                                           for b, p in zip(bare, play, strict=True)],
    }


def measure_downtime(world: World, session: Session, holder: StageResult,
                     root: str, files: int, db_mib: int, repeat: int) -> dict:
    """Per turn: a 1% change and the bare cutover (then undone), a 1% change and the cutover
    play; between turns the play's cutover is rolled back and the database subscribed again."""
    target_address = world.targets["web"]["address"]
    ssh, known_hosts = SSH.format(sid=SYSTEM), session.run_dir / "known_hosts"
    step = max(1, files // 100)
    bare, ours, plays = [], [], []
    for turn in range(repeat):
        change_one_percent(world, root, files, (2 * turn) % files)
        bare.append(bare_cutover(world, ssh, root, target_address))
        target(world, "systemctl stop fybj-web", known_hosts)
        source(world, "systemctl start fybj-web")
        change_one_percent(world, root, files, (2 * turn + 1) * step % files)
        change_database(world, db_mib)
        started = time.monotonic()
        cut = session.play("cutover", holder)
        plays.append(time.monotonic() - started)
        ours.append(play_span(cut, FREEZE_TASK, START_TASK))
        if turn < repeat - 1:
            session.play("rollback", holder)
            session.play("migrate_database", holder)
    return {
        "bare_cutover_s": [round(b, 3) for b in bare],
        "cutover_downtime_s": [round(o, 3) for o in ours],
        "downtime_ratio": round(median(ours) / median(bare), 3),
        "downtime_ratio_per_turn": [round(o / b, 3) for o, b in zip(ours, bare, strict=True)],
        "cutover_play_s": [round(p, 3) for p in plays],
    }


def measure(world: World, mib: int, files: int, db_mib: int, repeat: int) -> dict:
    root = world.system["data"]["files"][0]["path"]
    session = open_session(world.context(world.logical_plan()), SYSTEM, world.targets,
                           "bench", None)
    holder = StageResult("bench", SYSTEM, session.run_id, session.run_dir)
    session.play("prepare_target", holder)
    grow_tree(world, root, mib, files)
    size = int(source(world, f"du -sb {root}").split()[0])
    db_size = grow_database(world, db_mib)
    figures: dict = {"data_bytes": size, "files": files, "database_bytes": db_size,
                     "repeat": repeat}
    figures |= measure_throughput(world, session, holder, root, repeat)
    started = time.monotonic()
    session.play("migrate_database", holder)
    figures["database_initial_copy_s"] = round(time.monotonic() - started, 3)
    figures |= measure_downtime(world, session, holder, root, files, db_mib, repeat)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=2048)
    parser.add_argument("--db-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3,
                        help="turns of each measurement; the ratios are of medians")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    os.environ["MIGRATE_SANDBOX_ROOT"] = str(work / "root")
    folder = copy_estate(work / "estate")
    estate = open_estate(folder)
    world = None
    try:
        world = bring_up(folder, 16 * 1024)
        print(json.dumps(measure(world, args.mib, args.files, args.db_mib, args.repeat), indent=2))
    finally:
        tear_down(world, estate)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
