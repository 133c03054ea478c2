"""The configuration file: one TOML file for every command, so that a host is configured once.

Keys are the options' long names with underscores (`db` for --db, `metrics_port` for
--metrics-port). The keys at the top apply to every command that has that option: the shared ones
(`SHARED_KEYS`: the database, the journal, libvirt, the host and node, nova.conf) first of all. A
table per command holds what only it takes (`[run]`, `[agent]`, `[services.set]`, ...) and wins over
the top. A key at the top that no command knows, or a key in a command's table that the command does
not take, is refused with the keys it takes. Flags and the environment win over the file.

The file is `--config FILE`, else `$COMPUTE_RECOVER_CONFIG`, else `DEFAULT_CONFIG_PATH` when it exists
(`--config /dev/null` reads none). Each value given by the file is remembered with its file and key,
so that a bad one is blamed on them (`value_source`).
"""

import difflib
import tomllib
from pathlib import Path

import click
from click.core import ParameterSource

from recovery.adapters.secret_files import warn_if_readable_by_others

ENV_PREFIX = "COMPUTE_RECOVER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/compute-recover/compute-recover.toml")
SHARED_KEYS = ("db", "journal_db", "db_timeout", "libvirt_uri", "host", "node", "nova_conf", "nova_conf_dir")
"""The keys every command that has the option takes from the top of the file (docs/operating.md)."""
NOT_FROM_THE_TOP = {("services",): {"host"}}
"""Shared keys a command does not take from the top, because its option means something else there:
`services --host` filters the listing, and this host's name must not hide the others' services."""

_PATH_KEY = "recovery.config_path"
_SOURCES_KEY = "recovery.config_sources"
"""Where the chosen file, and the file and key of each value it gave, are kept in click's context
(its `meta` is shared by a command's contexts: `services --config F set` reads F for `set`)."""


def config_keys(command: click.Command) -> dict[str, str]:
    """Config file key → parameter name: a key is the option's long name with underscores
    (`db` for --db, `json` for --json), as the flags and environment variables spell it."""
    keys = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("config", "help"):
            long_name = max(param.opts, key=len).lstrip("-")
            keys[long_name.replace("-", "_")] = param.name
    return keys


def _chosen_file(ctx: click.Context, value: str | None) -> tuple[Path, str] | None:
    """The file to read and how it was named; None when there is none."""
    if value is not None:
        source = ctx.get_parameter_source("config")
        return Path(value), (f"${CONFIG_ENV}" if source == ParameterSource.ENVIRONMENT else "--config")
    if _PATH_KEY in ctx.meta:  # named on the group: `services --config F set`
        return ctx.meta[_PATH_KEY]
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH, "the default path"
    return None


def _read(path: Path, named_by: str) -> dict:
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except OSError as error:
        raise click.BadParameter(f"cannot read config file {path} (named by {named_by}): {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise click.BadParameter(f"config file {path} is not valid TOML: {error}") from error
    if _holds_password(config):
        warn_if_readable_by_others(path, "config file")
    return config


_URL_KEYS = ("db", "journal_db")


def _holds_password(table: dict) -> bool:
    """Whether a database URL of the file (at the top or in a command's table) carries a password."""
    from recovery.db.urls import DatabaseUrlError, parse_database_url  # imported on use: `decide` loads no database

    for key, value in table.items():
        if isinstance(value, dict) and _holds_password(value):
            return True
        if key in _URL_KEYS and isinstance(value, str):
            try:
                if parse_database_url(value).password:
                    return True
            except DatabaseUrlError:
                continue  # opening it says what is wrong
    return False


def load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """The --config callback: the file's values for this command become its defaults (click's
    default_map), so flags and the environment still win."""
    chosen = _chosen_file(ctx, value)
    if chosen is None:
        return None
    path, named_by = chosen
    ctx.meta[_PATH_KEY] = chosen
    config = _read(path, named_by)
    command_path = tuple(ctx.command_path.split()[1:])
    keys = config_keys(ctx.command)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    skipped = NOT_FROM_THE_TOP.get(command_path, set())
    top = {key: value for key, value in config.items() if not isinstance(value, dict)}
    unknown = [key for key in top if key not in keys and key not in SHARED_KEYS]
    if unknown:
        unknown = [key for key in unknown if key not in _every_commands_keys(ctx)]
    if unknown:
        raise click.BadParameter(_unknown_message(f"config file {path}", unknown, command_path, keys))
    for key, found in top.items():
        if key in keys and key not in skipped:
            values[keys[key]], sources[keys[key]] = found, f"config file {path}, key {key}"
    section = _section(ctx, config, path, command_path)
    unknown = [key for key, found in section.items() if key not in keys and not isinstance(found, dict)]
    if unknown:
        where = f"config file {path}, table [{'.'.join(command_path)}],"
        raise click.BadParameter(_unknown_message(where, unknown, command_path, keys))
    for key, found in section.items():
        if key in keys:
            values[keys[key]] = found
            sources[keys[key]] = f"config file {path}, key {key} of [{'.'.join(command_path)}]"
    multiple = {p.name for p in ctx.command.params if getattr(p, "multiple", False)}
    values = {name: [found] if name in multiple and isinstance(found, str) else found for name, found in values.items()}
    ctx.default_map = {**(ctx.default_map or {}), **values}
    ctx.meta[_SOURCES_KEY] = {**ctx.meta.get(_SOURCES_KEY, {}), **sources}
    return str(path)


def _section(ctx: click.Context, config: dict, path: Path, command_path: tuple[str, ...]) -> dict:
    """The command's own table (`[run]`, `[services.set]`), after checking every table names a command."""
    root = ctx.find_root()
    commands = set(root.command.list_commands(root))
    strays = sorted(name for name, found in config.items() if isinstance(found, dict) and name not in commands)
    if strays:
        raise click.BadParameter(f"config file {path} has tables that name no command: "
                                 f"{', '.join(f'[{name}]' for name in strays)}; the commands are "
                                 f"{', '.join(sorted(commands))}")
    section: object = config
    for name in command_path:
        section = section.get(name, {}) if isinstance(section, dict) else {}
    if not isinstance(section, dict):
        raise click.BadParameter(f"config file {path}: `{'.'.join(command_path)}` must be a table ([...])")
    return section


def _every_commands_keys(ctx: click.Context) -> set[str]:
    """The keys of every command (loaded: only asked for a key that is neither shared nor this command's)."""
    root = ctx.find_root()
    keys: set[str] = set()

    def collect(command: click.Command) -> None:
        keys.update(config_keys(command))
        if isinstance(command, click.Group):
            for name in command.list_commands(root):
                collect(command.get_command(root, name))

    collect(root.command)
    return keys


def _unknown_message(where: str, unknown: list[str], command_path: tuple[str, ...], keys: dict[str, str]) -> str:
    hints = [f"{key}: did you mean {close[0]}?" for key in unknown
             if (close := difflib.get_close_matches(key, keys, n=1))]
    return (f"{where} names unknown options: {', '.join(unknown)}; the keys of `{' '.join(command_path)}` are "
            f"{', '.join(sorted(keys))}" + (f" ({'; '.join(hints)})" if hints else ""))


def value_source(ctx: click.Context, name: str) -> str | None:
    """Where an option's value came from, for a message blaming it: the flag, the environment
    variable, or the config file and key; None when it is the option's default."""
    source = ctx.get_parameter_source(name)
    param = next((p for p in ctx.command.params if p.name == name), None)
    if param is None or source in (None, ParameterSource.DEFAULT):
        return None
    if source == ParameterSource.ENVIRONMENT:
        envvar = param.envvar if isinstance(param.envvar, str) else None
        return f"environment variable {envvar}" if envvar else "the environment"
    if source == ParameterSource.DEFAULT_MAP:
        return ctx.meta.get(_SOURCES_KEY, {}).get(name, "the config file")
    return "command line"


def config_option(command):
    return click.option(
        "--config", type=click.Path(dir_okay=False), callback=load_config, is_eager=True, expose_value=False,
        envvar=CONFIG_ENV, help="TOML file of option values: shared keys at the top, a [COMMAND] table for one "
        f"command's (flags and environment win) [default: {DEFAULT_CONFIG_PATH}, when it exists].",
    )(command)

