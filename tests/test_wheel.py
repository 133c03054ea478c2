"""The installed package is whole: the wheel holds the code, the migrations, the man pages (installed into
share/man/man1) and the systemd unit with its drop-ins (share/compute-recover/systemd). Built offline from a
copy of the sources, with the environment's own setuptools (no build isolation, nothing downloaded)."""

import importlib.util
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.support.parts import missing
from tests.support.paths import ROOT

SOURCES = ("pyproject.toml", "README.md", "recovery", "states", "man", "contrib")
DATA = "compute_recover-0.1.0.data/data/"


def _builds_wheels() -> bool:
    """setuptools 70.1 and later build wheels themselves; earlier ones need the `wheel` package."""
    return (importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
            or importlib.util.find_spec("wheel") is not None)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if not _builds_wheels():
        missing("needs a setuptools that builds wheels (setuptools>=70.1, in the test extras `make setup` installs)")
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [built] = out.glob("compute_recover-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_installs_every_man_page_where_man_finds_it(wheel):
    names = set(wheel.namelist())
    pages = sorted(path.name for path in (ROOT / "man").glob("*.1"))
    assert len(pages) >= 10
    assert {f"{DATA}share/man/man1/{page}" for page in pages} <= names
    run_page = wheel.read(f"{DATA}share/man/man1/compute-recover-run.1")
    assert run_page == (ROOT / "man/compute-recover-run.1").read_bytes()


def test_the_wheel_ships_the_systemd_unit_and_its_drop_ins(wheel):
    names = set(wheel.namelist())
    unit = f"{DATA}share/compute-recover/systemd/compute-recover.service"
    assert unit in names
    assert wheel.read(unit) == (ROOT / "contrib/systemd/compute-recover.service").read_bytes()
    drop_ins = sorted(path.name for path in (ROOT / "contrib/systemd/compute-recover.service.d").glob("*.conf"))
    assert drop_ins and {f"{DATA}share/compute-recover/systemd/compute-recover.service.d/{name}"
                         for name in drop_ins} <= names


def test_the_wheel_holds_the_code_and_the_migrations(wheel):
    names = set(wheel.namelist())
    sources = [path.relative_to(ROOT).as_posix() for top in ("recovery", "states")
               for path in (ROOT / top).rglob("*.py")]
    assert set(sources) <= names
    assert any(name.startswith("recovery/migrations/versions/journal_") for name in names)
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "compute-recover = recovery.cli:main" in wheel.read(entry_points).decode()
