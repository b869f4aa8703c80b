"""The build hook that puts the project's top-level folders into the wheel.

``templates/``, ``playbooks/``, ``stacks/`` and ``providers/`` stay at the top of the checkout
(the sdist carries them there, see MANIFEST.in); a wheel carries a copy of each under
``migrate/_shipped/<name>``, where ``migrate.core.resources`` looks first. Everything else is
configured in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# the same names as migrate.core.resources.NAMES
SHIPPED = ("templates", "playbooks", "stacks", "providers")
# what a checkout makes in those folders and a wheel must not carry (also in MANIFEST.in)
IGNORE = shutil.ignore_patterns("__pycache__", "*.py[cod]", "Pulumi.*.yaml", "schema.json",
                                ".ansible")


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        for name in SHIPPED:
            source = ROOT / name
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; build from a checkout or sdist")
            target = Path(self.build_lib) / "migrate" / "_shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=IGNORE)


setup(cmdclass={"build_py": BuildPyWithShipped})
