"""check_prerequisites' probes, run here as the plays run them on a host (python3 -c TEXT SPEC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

FILES = Path(__file__).resolve().parents[2] / "playbooks/roles/check_prerequisites/files"


def probe(name: str, spec: dict, stdin: str = "") -> dict:
    text = (FILES / name).read_text()
    done = subprocess.run([sys.executable, "-c", text, json.dumps(spec)], input=stdin,
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def test_the_source_probe_names_every_problem_at_once(tmp_path: Path) -> None:
    tree = tmp_path / "data"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.bin").write_bytes(b"x" * 5000)
    folder = tmp_path / "conf.d"
    folder.mkdir()
    found = probe("probe_source.py", {
        "where": "web1 (192.0.2.1)",
        "trees": [str(tree), str(tmp_path / "gone")],
        "configuration": [str(folder), str(tmp_path / "app.ini")],
        "rewrites": [str(folder)],
        "databases": []})
    assert found["problems"] == [
        f"source path {tmp_path / 'gone'} does not exist (or is not a directory) on web1 "
        "(192.0.2.1)",
        f"configuration path {folder} does not exist as a regular file (a rewrite needs one) "
        "on web1 (192.0.2.1)",
        f"configuration path {tmp_path / 'app.ini'} does not exist on web1 (192.0.2.1)",
    ]
    path, size = found["needs"][0].rsplit("=", 1)
    assert path == str(tree) and int(size) >= 5000
    assert found["pg_major"] == 0
    assert abs(found["clock"] - int(time.time())) <= 5


def test_the_source_probe_wants_one_password_per_database(tmp_path: Path) -> None:
    spec = {"where": "db1 (192.0.2.2)", "trees": [], "configuration": [], "rewrites": [],
            "databases": [{"name": "a", "user": "a"}, {"name": "b", "user": "b"}]}
    done = subprocess.run(
        [sys.executable, "-c", (FILES / "probe_source.py").read_text(), json.dumps(spec)],
        input="only-one\n", capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1
    assert "2 passwords expected on stdin, 1 given" in done.stderr
    assert "only-one" not in done.stderr + done.stdout


def test_the_target_probe_sums_what_lands_on_each_filesystem(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    fits = probe("probe_target.py", {"factor": 1.5, "margin": 1024,
                                     "needs": [f"{tmp_path}/a/b=1000", f"{tmp_path}/c=2000"]})
    assert fits["problems"] == []
    [fs] = fits["filesystems"]
    assert fs["needed"] == 5524 and fs["free"] > 0
    short = probe("probe_target.py", {"factor": 1.5, "margin": 0,  # 1.5 x all that is free
                                      "needs": [f"{tmp_path}/not/yet/there={free}"]})
    [problem] = short["problems"]
    assert problem.startswith(f"{fs['mount']} has ")
    assert f"for {tmp_path}/not/yet/there (data x 1.5 + 0 bytes margin)" in problem
    assert isinstance(short["pg_majors"], list)
