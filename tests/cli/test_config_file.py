"""One configuration file for every command (docs/operating.md#configuration): shared keys at the top,
a table per command, the default path, and docs/host.md's install followed as written."""

import re
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from recovery.cli import cli
from recovery.cli import config as config_file
from tests.support.processes import notified_agent

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "fixtures" / "power-outage"
CONSOLE_SCRIPT = Path(sys.executable).parent / "compute-recover"


def invoke(*args: object, env: dict | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def host_md_config(db_url: str, port: int) -> str:
    """docs/host.md's configuration file as written, with this test's database, libvirt and port."""
    page = (ROOT / "docs" / "host.md").read_text()
    text = re.search(r"<<'TOML'\n(.*?)\nTOML\n", page, re.S).group(1)
    text = re.sub(r'^db = ".*"$', f'db = "{db_url}"', text, flags=re.M)
    text = re.sub(r'^libvirt_uri = ".*"$', f'libvirt_uri = "test://{SCENARIO / "libvirt.xml"}"\nhost = "compute-1"',
                  text, flags=re.M)
    return text.replace("metrics_port = 9477", f"metrics_port = {port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_host_md_install_works_as_written_and_one_file_drives_every_command(tmp_path):
    port = free_port()
    config = tmp_path / "compute-recover.toml"
    config.write_text(host_md_config(f"sqlite:///{tmp_path / 'cell.sqlite'}", port))
    env = {"COMPUTE_RECOVER_CONFIG": str(config)}
    assert invoke("db", "upgrade", env=env).exit_code == 0  # "once per database: --db comes from the file"
    assert invoke("scenario", "load", SCENARIO, env=env).exit_code == 0
    for args in (["plan"], ["run", "--dry-run"], ["explain", "soft-reboot-became-hard"],
                 ["services", "--host", "compute-1"]):
        result = invoke(*args, env=env)
        assert result.exit_code == 0, (args, result.stderr)
    with notified_agent(tmp_path, env=env) as agent:
        agent.wait_for("READY=1")  # the recovery is done: its run is counted
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        _, err = agent.stop()
    assert agent.returncode == 0, err
    assert 'compute_recover_runs_total{exit_code="0"} 1.0' in scraped
    result = invoke("services", "set", "--host", "compute-1", "--disable", "--reason", "disk swap", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "service nova-compute on compute-1: disabled (disk swap), forced_down false\n"
    assert invoke("run", env=env).exit_code == 0


def test_a_command_takes_the_top_and_its_own_table_which_wins(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'db = "sqlite:///{tmp_path / "db.sqlite"}"\nmetrics_port = 1\nstop_timeout = 5\n'
                      '[run]\nstop_timeout = "x"\n[agent]\nreport_interval = 5\n')
    result = invoke("run", "--config", config)  # metrics_port (the agent's) is left to the agent
    assert result.exit_code == 2
    assert (f"Invalid value for '--stop-timeout' (from config file {config}, key stop_timeout of [run]): "
            in result.stderr)


def test_a_key_of_no_command_or_not_of_the_commands_table_is_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("stop_timeot = 5\n")
    result = invoke("run", "--config", config)
    assert result.exit_code == 2
    assert "names unknown options: stop_timeot; the keys of `run` are changes, column, concurrency," in result.stderr
    assert "(stop_timeot: did you mean stop_timeout?)" in result.stderr
    config.write_text("[run]\nmetrics_port = 5\n")
    result = invoke("run", "--config", config)
    assert "table [run], names unknown options: metrics_port; the keys of `run` are" in result.stderr
    config.write_text("[rnu]\nstop_timeout = 5\n")
    result = invoke("run", "--config", config)
    assert result.exit_code == 2
    assert "has tables that name no command: [rnu]; the commands are agent, db, decide," in result.stderr


def test_the_default_path_is_read_unless_another_file_is_named(tmp_path, monkeypatch):
    default = tmp_path / "compute-recover.toml"
    default.write_text('[services]\nformat = "json"\n')
    monkeypatch.setattr(config_file, "DEFAULT_CONFIG_PATH", default)
    missing = f"sqlite:///{tmp_path / 'none' / 'db.sqlite'}"
    result = invoke("services", "--db", missing)
    assert result.exit_code == 2 and result.stdout.startswith('{\n  "error"')  # -f json from the default file
    assert not invoke("services", "--config", "/dev/null", "--db", missing).stdout


def test_services_set_takes_the_file_named_on_its_group(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert invoke("db", "upgrade", "--db", url).exit_code == 0
    assert invoke("scenario", "load", SCENARIO, "--db", url).exit_code == 0
    config = tmp_path / "c.toml"
    config.write_text(f'db = "{url}"\nhost = "compute-1"\n[services.set]\nreason = "disk swap"\n')
    result = invoke("services", "--config", config, "set", "--disable")  # --host: this host, from the top
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "service nova-compute on compute-1: disabled (disk swap), forced_down false\n"
    config.write_text(f'db = "{url}"\nhost = "compute-9"\n')
    listed = invoke("services", "--config", config, "-f", "value", "-c", "host")
    assert listed.exit_code == 0 and listed.stdout == "compute-1\n"  # the top's host does not filter the listing


@pytest.mark.parametrize(("env", "source"), [
    ({"COMPUTE_RECOVER_STOP_TIMEOUT": "abc"}, "(from environment variable COMPUTE_RECOVER_STOP_TIMEOUT)"),
    ({}, None),
])
def test_a_bad_value_names_where_it_came_from_in_one_line(env, source):
    result = invoke("run", *([] if env else ["--stop-timeout", "abc"]), env=env)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("compute-recover: Invalid value for '--stop-timeout'")
    assert line.endswith("(see `compute-recover run --help`)")
    assert (source in line) if source else "(from" not in line
