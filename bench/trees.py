"""Which geofence a measured process imports: a tree (this checkout or a git ref) and a build.

A child process gets a directory of symlinks to one tree's packages (``geofence`` and each
package under ``adapters/``) first on ``PYTHONPATH``, so it imports that tree's code whatever
the virtualenv has installed; the bench's own modules always come from this checkout. A git
ref is checked out into a temporary worktree (``git worktree add --detach``), removed at the
end. (Putting a checkout's root on the path instead would make ``bench`` a namespace package
spread over two checkouts.)

A build is ``compiled`` (geofence's C extension, ``geofence.hotpath.NATIVE``) or ``pure``
(``GEOFENCE_PURE_PYTHON=1``: the Python path). A git ref's C extensions are built in its
worktree with its own build hook; a tree without them (an older commit, a checkout where they
were not built, a failed compile) has the pure build only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BUILDS = ("compiled", "pure")
ENV_PURE = "GEOFENCE_PURE_PYTHON"

# Prints the build a process gets and where geofence came from.
_PROBE = """
import geofence
try:
    from geofence import hotpath as speedups
except ImportError:
    try:
        from geofence import _speedups as speedups  # trees before geofence/hotpath/
    except ImportError:
        speedups = None
native = getattr(speedups, "NATIVE", None)
print("compiled" if native is not None else "pure")
print(geofence.__file__)
"""


@dataclass
class Tree:
    name: str  # "current" or the ref as given
    root: Path
    paths: Path  # the directory of symlinks
    builds: list[str] = field(default_factory=list)  # what this tree can run

    def env(self, build: str) -> dict[str, str]:
        """The environment of a child measuring this tree in ``build``."""
        env = {k: v for k, v in os.environ.items() if k != ENV_PURE}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.paths), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        if build == "pure":
            env[ENV_PURE] = "1"
        return env


def link_packages(root: Path, into: Path) -> Path:
    """``into`` with a symlink to each of ``root``'s importable packages."""
    into.mkdir(parents=True, exist_ok=True)
    packages = [root / "geofence"]
    adapters = root / "adapters"
    if adapters.is_dir():
        packages += sorted(p for p in adapters.iterdir() if (p / "__init__.py").is_file())
    for package in packages:
        (into / package.name).symlink_to(package, target_is_directory=True)
    return into


def probe(tree: Tree, build: str) -> tuple[str, str]:
    """(build the process really gets, geofence.__file__) for ``tree`` in ``build``."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=tree.env(build),
        cwd=tree.paths,  # `python -c` puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree.name}: cannot import geofence:\n{done.stderr[-2000:]}")
    got, where = done.stdout.split("\n")[:2]
    return got, where


def prepare(tree: Tree, wanted: list[str] | None) -> list[str]:
    """Check that ``tree`` imports from its own root and fill in the builds it has:
    ``wanted`` (None: both if the extension loads, else pure)."""
    got, where = probe(tree, "compiled")
    if not Path(where).resolve().is_relative_to((tree.root / "geofence").resolve()):
        raise RuntimeError(f"{tree.name}: geofence comes from {where}, not from {tree.root}")
    available = ["compiled", "pure"] if got == "compiled" else ["pure"]
    tree.builds = [b for b in (wanted or BUILDS) if b in available]
    return [b for b in (wanted or []) if b not in available]


class Trees:
    """The trees of one run; removes what it made on exit."""

    def __init__(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="geofence-bench-trees-"))
        self._worktrees: list[Path] = []

    def __enter__(self) -> Trees:
        return self

    def __exit__(self, *exc: object) -> None:
        for worktree in self._worktrees:
            subprocess.run(
                ["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(worktree)],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self._tmp, ignore_errors=True)

    def current(self) -> Tree:
        return Tree("current", PROJECT, link_packages(PROJECT, self._tmp / "current-paths"))

    def ref(self, ref: str) -> Tree:
        """``ref`` checked out into a temporary worktree."""
        commit = subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "--short", f"{ref}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        worktree = self._tmp / f"worktree-{commit}"
        subprocess.run(
            ["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(worktree), commit],
            capture_output=True,
            text=True,
            check=True,
        )
        self._worktrees.append(worktree)
        build_in_place(worktree)
        paths = link_packages(worktree, self._tmp / f"{commit}-paths")
        return Tree(ref if ref == commit else f"{ref} ({commit})", worktree, paths)


def build_in_place(root: Path) -> None:
    """The tree's C extensions (each ``.c`` file under ``geofence/`` one module), compiled next
    to their sources as an editable install builds them, with this Python's compiler and flags.
    A commit without them, or where compiling fails, has the pure build only (:func:`prepare`)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    flags = (sysconfig.get_config_var("CFLAGS") or "").split()
    include = sysconfig.get_paths()["include"]
    for source in sorted((root / "geofence").rglob("*.c")):
        subprocess.run(
            [
                *compiler,
                *flags,
                "-fPIC",
                "-shared",
                f"-I{include}",
                str(source),
                "-o",
                str(source.with_name(source.stem + suffix)),
            ],
            capture_output=True,
            check=False,
        )
