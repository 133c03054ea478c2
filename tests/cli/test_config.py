"""Options from a TOML config file and COMPUTE_RECOVER_* variables; flags win, then the environment."""

import json

import pytest
from click.testing import CliRunner

from recovery.cli import cli

RECORD = {"uuid": "u-1", "vm_state": "active", "task_state": None, "power_state": "shutdown",
          "db_power_state": "running", "host": "compute-1"}


def decide(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["decide", *args], input=json.dumps(RECORD) + "\n", env=env)


def actions(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [a["name"] for a in json.loads(result.stdout)["actions"]]


def test_config_file_sets_options(tmp_path):
    config = tmp_path / "recover.toml"
    config.write_text('host = "compute-1"\nresume_guests_state_on_host_boot = true\n')
    assert actions(decide("--config", str(config))) == ["plug_vifs", "resume_guest"]
    assert actions(decide(env={"COMPUTE_RECOVER_CONFIG": str(config)})) == ["plug_vifs", "resume_guest"]


def test_environment_beats_the_config_file_and_flags_beat_both(tmp_path):
    config = tmp_path / "recover.toml"
    config.write_text('host = "compute-9"\n')
    assert actions(decide("--config", str(config))) == []  # compute-9 does not own the instance
    assert actions(decide("--config", str(config), env={"COMPUTE_RECOVER_HOST": "compute-1"})) == ["plug_vifs"]
    assert actions(decide("--config", str(config), "--host", "compute-1",
                          env={"COMPUTE_RECOVER_HOST": "compute-9"})) == ["plug_vifs"]


def test_environment_turns_on_a_flag():
    result = decide("--host", "compute-1", env={"COMPUTE_RECOVER_RESUME_GUESTS_STATE_ON_HOST_BOOT": "true"})
    assert actions(result) == ["plug_vifs", "resume_guest"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("resume_guests = true\n", "names unknown options: resume_guests"), ("host = \n", "is not valid TOML")],
)
def test_a_bad_config_file_is_a_usage_error(tmp_path, content, message):
    config = tmp_path / "recover.toml"
    config.write_text(content)
    result = decide("--config", str(config))
    assert result.exit_code == 2
    assert message in result.stderr
