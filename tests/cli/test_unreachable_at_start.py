"""A database or libvirt that does not answer at start is its own exit code (6), and the agent waits.

Real processes: a closed port, a libvirt URI that cannot be opened, a real PostgreSQL cluster that
is stopped when the agent starts and started while it waits (a database slow to come up at boot),
and a refused password (a server that answers: a configuration error, exit 2, not 5).
"""

import subprocess
import time

from sqlalchemy.engine import make_url

from tests.support.paths import CONSOLE_SCRIPT, FIXTURES, uri
from tests.support.processes import notified_agent, start

HOST = "compute-1"


def compute_recover(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CONSOLE_SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_a_database_that_does_not_answer_exits_6_in_one_line():
    done = compute_recover("run", "--db", "postgresql+psycopg://user:secret@127.0.0.1:1/x", "--libvirt-uri",
                           uri("clean-host"), "--host", HOST)
    assert done.returncode == 6, done.stderr
    assert done.stderr.count("\n") == 1 and "secret" not in done.stderr and "Traceback" not in done.stderr


def test_a_libvirt_that_cannot_be_opened_exits_6(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", FIXTURES / "clean-host")):
        assert compute_recover(*command, "--db", url).returncode == 0
    done = compute_recover("run", "--libvirt-uri", "test:///nonexistent.xml", "--db", url, "--host", HOST)
    assert done.returncode == 6, done.stderr
    assert done.stderr.splitlines()[-1].startswith("compute-recover: cannot open libvirt at 'test:///nonexistent.xml'")
    assert "Traceback" not in done.stderr


def test_a_server_that_refuses_the_password_is_a_configuration_error(pg_database_url):
    wrong = make_url(pg_database_url).set(password="not-the-password").render_as_string(hide_password=False)
    done = compute_recover("plan", "--db", wrong, "--libvirt-uri", uri("clean-host"), "--host", HOST)
    assert done.returncode == 2, done.stderr


AGENT = ("--scenario", FIXTURES / "clean-host", "--db-timeout", "2")


def test_the_agent_waits_for_a_database_slow_to_come_up_then_recovers(tmp_path, private_pg_cluster):
    url = private_pg_cluster.url()
    for command in (("db", "upgrade"), ("scenario", "load", FIXTURES / "clean-host")):
        done = compute_recover(*command, "--db", url)
        assert done.returncode == 0, done.stderr
    private_pg_cluster.stop()
    with notified_agent(tmp_path, *AGENT, "--db", url, "--start-wait", "2m", wait=120) as waiting:
        try:
            waiting.wait_for("waiting for the database", times=2)  # it keeps trying
            assert waiting.process.poll() is None
            private_pg_cluster.start()
            waiting.wait_for("READY=1")
        finally:
            _out, err = waiting.stop(timeout=120)
    assert waiting.returncode == 0, err
    assert err.count("trying again in") >= 2, err


def test_the_agent_gives_up_after_its_start_wait_with_exit_6(tmp_path, private_pg_cluster):
    url = private_pg_cluster.url()
    private_pg_cluster.stop()
    began = time.monotonic()
    given_up = start("agent", *AGENT, "--db", url, "--start-wait", "3s")
    _out, err = given_up.communicate(timeout=120)
    assert given_up.returncode == 6, err
    assert time.monotonic() - began >= 3
    assert "trying again in" in err and "Traceback" not in err
