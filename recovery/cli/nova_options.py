"""Flags over nova.conf: the effective options of `run`, `plan`, `explain` and `agent`, and where
each came from.

`--nova-conf PATH` (repeatable) and `--nova-conf-dir DIR` are read as nova-compute reads them
(recovery.adapters.novaconf). An option given on the command line, in the environment or in `--config`
wins; an option left at its default takes the value a nova.conf file sets; an option no file sets
keeps compute-recover's default. That last rule matters for `running_deleted_instance_action`:
Nova's own default is `reap` (destroy the domain), compute-recover's is `log`, and a tool an
operator runs to look before nova-compute starts must not destroy a guest that no one asked it to;
a `reap` written in nova.conf is honoured.
"""

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from recovery.cli.config import value_source

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # recovery.adapters.novaconf (oslo.config, SQLAlchemy) is imported only when a file is given
    from recovery.adapters.novaconf import NovaConf, Setting

NOVA_CONF_ENV = "COMPUTE_RECOVER_NOVA_CONF"
NOVA_CONF_DIR_ENV = "COMPUTE_RECOVER_NOVA_CONF_DIR"

DEFAULT_LABEL = "compute-recover's default"
SOURCES = "compute-recover.option-sources"
"""ctx.meta key: where each option nova.conf could set took its value from (flag, environment, file, default)."""


@dataclass(frozen=True)
class Effective:
    """One option's effective value as it may be printed, and where it came from."""

    option: str
    shown: str
    source: str


def _conf_value(conf: "NovaConf", parameter: str) -> "Setting[Any] | None":
    """nova.conf's setting for a click parameter, None when no file sets it."""
    from recovery.adapters.novaconf import DEFAULT_SOURCE, Setting

    if parameter == "libvirt_uri":
        uri, virt_type = conf.libvirt_connection_uri, conf.libvirt_virt_type
        chosen = uri if uri.source != DEFAULT_SOURCE else virt_type
        return None if chosen.source == DEFAULT_SOURCE else Setting(conf.libvirt_uri, chosen.source, conf.libvirt_uri)
    setting = getattr(conf, _FIELDS[parameter])
    if setting.source == DEFAULT_SOURCE or setting.value is None:
        return None
    if parameter == "db_url":
        return Setting(setting.value.render_as_string(hide_password=False), setting.source, setting.shown)
    if parameter == "instances_path":
        return Setting(Path(setting.value), setting.source, setting.shown)
    return setting


_FIELDS = {
    "host": "host",
    "resume_guests_state_on_host_boot": "resume_guests_state_on_host_boot",
    "destroy_after_evacuate": "destroy_after_evacuate",
    "running_deleted_instance_action": "running_deleted_instance_action",
    "instances_path": "instances_path",
    "db_url": "database_connection",
}
"""Click parameter → the NovaConf field it may come from (libvirt_uri: connection_uri or virt_type)."""

_PARAMETERS = (*_FIELDS, "libvirt_uri")


def apply_nova_conf(ctx: click.Context, kwargs: dict[str, Any], conf: "NovaConf | None") -> list[Effective]:
    """Put nova.conf's values into `kwargs` for the options left at their default; the effective
    value and source of every option nova.conf could set, in a fixed order."""
    effective = []
    for parameter in (p for p in _PARAMETERS if p in kwargs):
        source = ctx.get_parameter_source(parameter)
        label = _flag_label(ctx, parameter, source)
        if label is None and conf is not None and (setting := _conf_value(conf, parameter)) is not None:
            kwargs[parameter] = setting.value
            label, shown = f"nova.conf {setting.source}", setting.shown
        elif label is None and kwargs.get("scenario") and parameter in ("host", "libvirt_uri"):
            label, shown = "--scenario", "the scenario's"
        else:
            shown = _shown(parameter, kwargs[parameter])
        effective.append(Effective(_option_name(ctx, parameter), shown, label or DEFAULT_LABEL))
    return effective


def _flag_label(ctx: click.Context, parameter: str, source: ParameterSource | None) -> str | None:
    """Where an explicitly given value came from; None when it is the option's default."""
    if source == ParameterSource.ENVIRONMENT:
        envvar = next((p.envvar for p in ctx.command.params if p.name == parameter), None)
        return f"environment {envvar}"
    return value_source(ctx, parameter)


def _option_name(ctx: click.Context, parameter: str) -> str:
    found = next(p for p in ctx.command.params if p.name == parameter)
    return max(found.opts, key=len)


def _shown(parameter: str, value: Any) -> str:
    """A value as it may be printed: a database URL without its password."""
    if parameter == "db_url":
        from recovery.db.engine import default_url, describe, parse

        try:
            return describe(parse(value or default_url()))
        except Exception:  # an unusable URL is reported when it is opened; never echoed here
            return "(unreadable URL, hidden)"
    if isinstance(value, bool):
        return str(value).lower()
    return "(the machine's hostname)" if value is None else str(value)


def set_explicitly(ctx: click.Context, option: str) -> bool:
    """Whether an option nova.conf could set was given by flag, environment, config file, nova.conf or
    --scenario, rather than left at compute-recover's default."""
    return ctx.meta.get(SOURCES, {}).get(option, DEFAULT_LABEL) != DEFAULT_LABEL


def nova_conf_options() -> Callable:
    """`--nova-conf` and `--nova-conf-dir` on a command (applied outside `policy_options`, which turns
    the policy flags into Options). Each effective option and its source is logged at info (`-v`)."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def wrapper(*args: Any, nova_conf_files: tuple[Path, ...], nova_conf_dir: Path | None, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            conf = None
            if nova_conf_files or nova_conf_dir:
                from recovery.adapters.novaconf import read_nova_conf  # a NovaConfError exits 2

                conf = read_nova_conf(nova_conf_files, nova_conf_dir)
            effective = apply_nova_conf(ctx, kwargs, conf)
            for item in effective:
                log.info("option %s = %s (%s)", item.option, item.shown, item.source)
            ctx.meta[SOURCES] = {item.option: item.source for item in effective}
            return command(*args, **kwargs)

        options = [
            click.option("--nova-conf", "nova_conf_files", multiple=True, envvar=NOVA_CONF_ENV,
                         type=click.Path(dir_okay=False, path_type=Path),
                         help="A nova.conf to take the host, database, libvirt, instances_path and resume options "
                         "from (repeatable; later files win, flags win over them; docs/nova.md)."),
            click.option("--nova-conf-dir", envvar=NOVA_CONF_DIR_ENV,
                         type=click.Path(file_okay=False, path_type=Path),
                         help="A directory whose *.conf files are read after --nova-conf, in name order, as "
                         "nova-compute's --config-dir."),
        ]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate

