"""Every console example of README.md and docs/ is run, and its output compared (issue 20, item 2): an
example that drifts from what the tool does fails the suite.

An example is a line `$ COMMAND` in a ```console block (continued by a trailing `\\` or a here-document),
followed by the output it shows. It runs with bash in a directory of its page's own, where `fixtures/`
and `states/` are the repository's, with `compute-recover` on PATH and no configuration file; the
examples of one page run in order in the same directory. The output (stdout and stderr) is compared
with whitespace collapsed (so the docs may fold long lines and the tables' padding does not count),
`...` standing for anything, and times masked (`0.07 s`, timestamps). An example that shows no output
must exit 0. Lines with a `#` prompt are run as root on a real host and are not run here; a block
after `<!-- not run: WHY -->` is not run either.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_RUN = "<!-- not run:"
SETUP = {
    "docs/diff.md": ["compute-recover db upgrade --db sqlite:///outage.sqlite",
                     "compute-recover scenario load fixtures/power-outage --db sqlite:///outage.sqlite"],
}
"""What a page's examples take as done before them (a page shows only its own commands)."""


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    command: str
    output: str


def examples(page: Path) -> list[Example]:
    lines = page.read_text().splitlines()
    found: list[Example] = []
    inside, skipped, number = False, False, 0
    while number < len(lines):
        line = lines[number]
        if not inside and line.startswith("```console"):
            inside, skipped = True, number > 0 and lines[number - 1].startswith(NOT_RUN)
        elif inside and line.startswith("```"):
            inside = False
        elif inside and not skipped and line.startswith("$ "):
            start, command = number, [line[2:]]
            while command[-1].endswith(("\\", "|")) and number + 1 < len(lines):
                number += 1
                command.append(lines[number])
            if "<<'EOF'" in command[0]:
                while lines[number] != "EOF":
                    number += 1
                    command.append(lines[number])
            output = []
            while not lines[number + 1].startswith(("$ ", "```")):
                number += 1
                output.append(lines[number])
            found.append(Example(str(page.relative_to(ROOT)), start + 1, "\n".join(command), "\n".join(output)))
        number += 1
    return found


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ALL = [example for page in PAGES for example in examples(page)]


def _masked(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", "TIME", text)
    text = re.sub(r"\b\d+\.\d+ s\b", "N s", text)
    return " ".join(text.split())


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part.strip()) for part in _masked(expected).split("..."))
    return re.fullmatch(pattern, _masked(actual), re.DOTALL) is not None


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPUTE_RECOVER_")}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "COMPUTE_RECOVER_CONFIG": "/dev/null"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _workdir(page: str, workdirs: dict[str, Path], factory: pytest.TempPathFactory) -> Path:
    if page not in workdirs:
        directory = factory.mktemp(page.replace("/", "-"))
        for name in ("fixtures", "states"):
            (directory / name).symlink_to(ROOT / name)
        for command in SETUP.get(page, []):
            assert _shell(command, directory).returncode == 0, command
        workdirs[page] = directory
    return workdirs[page]


def test_there_are_examples_to_run():
    assert len(ALL) >= 10 and {e.page for e in ALL} >= {"README.md", "docs/diff.md", "docs/verify.md"}


@pytest.mark.parametrize("example", ALL, ids=[f"{e.page}:{e.line}" for e in ALL])
def test_a_documented_example_does_what_it_shows(example: Example, workdirs, tmp_path_factory):
    done = _shell(example.command, _workdir(example.page, workdirs, tmp_path_factory))
    actual = done.stdout + done.stderr
    if not example.output.strip():
        assert done.returncode == 0, f"{example.page}:{example.line} `{example.command}` failed:\n{actual}"
    else:
        assert matches(example.output, actual), (
            f"{example.page}:{example.line}: `{example.command}` no longer prints what the page shows; it prints:\n"
            f"{actual}")
