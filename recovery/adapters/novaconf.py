"""nova.conf, read the way nova-compute reads it, for the options that change what its start does.

oslo.config (Nova's own configuration library) parses the files with its own parser and applies
Nova's types, defaults and `$option` interpolation: `--nova-conf` files in the order given, then
the `*.conf` files of `--nova-conf-dir` in sorted order, later files winning, as
`nova-compute --config-file ... --config-dir ...` does. This module picks the options, says which
file each effective value came from, keeps the database password out of every string it makes,
and turns a bad file or value into one line naming the file and the option.

`read_nova_conf(files, config_dir)` is the entry point.
"""

import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from oslo_config import cfg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from recovery.adapters.secret_files import warn_if_readable_by_others
from recovery.core.errors import RecoveryError

DEFAULT_SOURCE = "default"
"""The source of an option no file sets: Nova's default applies."""

PACKAGED_STATE_PATH = "/var/lib/nova"
"""`state_path` when no file sets it. Nova's built-in default is its own Python install
directory, which does not exist beside compute-recover; every distribution's packaged nova.conf
sets this, and `instances_path` defaults to `$state_path/instances`."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class Setting(Generic[_T]):
    """An option's effective value and where it came from."""

    value: _T
    source: str
    """The file whose value won, or DEFAULT_SOURCE."""
    shown: str
    """The value as it may be printed (the database URL with its password masked)."""


@dataclass(frozen=True)
class NovaConf:
    """The effective nova.conf options compute-recover honours."""

    host: Setting[str]
    resume_guests_state_on_host_boot: Setting[bool]
    running_deleted_instance_action: Setting[str]
    instances_path: Setting[str]
    destroy_after_evacuate: Setting[bool]
    database_connection: Setting[URL | None]
    libvirt_connection_uri: Setting[str]
    libvirt_virt_type: Setting[str]

    @property
    def libvirt_uri(self) -> str:
        """The URI nova-compute's libvirt driver connects to: connection_uri, else its virt_type's."""
        by_type = {"lxc": "lxc:///", "parallels": "parallels:///system"}
        return self.libvirt_connection_uri.value or by_type.get(self.libvirt_virt_type.value, "qemu:///system")

    def settings(self) -> Iterator[tuple[str, Setting[Any]]]:
        """Each option as `[section] name` with its setting, in a fixed order (for `-v`)."""
        for option in _OPTIONS:
            yield option.label, getattr(self, option.field)


class NovaConfError(RecoveryError):
    """nova.conf cannot be used; the message is one line naming the file (and option), never
    the database password."""


@dataclass(frozen=True)
class _Option:
    field: str
    """The NovaConf field that holds it."""
    group: str | None
    """Its nova.conf section; None for [DEFAULT]."""
    opt: cfg.Opt

    @property
    def label(self) -> str:
        return f"[{self.group or 'DEFAULT'}] {self.opt.name}"


# Nova's declarations of these options (name, type, default, allowed values).
_OPTIONS = (
    _Option("host", None, cfg.HostDomainOpt("host", default=socket.gethostname())),
    _Option("resume_guests_state_on_host_boot", None, cfg.BoolOpt("resume_guests_state_on_host_boot", default=False)),
    _Option(
        "running_deleted_instance_action",
        None,
        cfg.StrOpt("running_deleted_instance_action", default="reap", choices=("reap", "log", "shutdown", "noop")),
    ),
    _Option("instances_path", None, cfg.StrOpt("instances_path", default="$state_path/instances")),
    # Removed from Nova in 14.0.0 (Newton), but older nova.conf files still carry it.
    _Option("destroy_after_evacuate", "workarounds", cfg.BoolOpt("destroy_after_evacuate", default=True)),
    _Option("database_connection", "database", cfg.StrOpt("connection", secret=True)),
    _Option("libvirt_connection_uri", "libvirt", cfg.StrOpt("connection_uri", default="")),
    _Option(
        "libvirt_virt_type",
        "libvirt",
        cfg.StrOpt("virt_type", default="kvm", choices=("kvm", "lxc", "qemu", "parallels")),
    ),
)

_STATE_PATH = cfg.StrOpt("state_path", default=PACKAGED_STATE_PATH)
"""Registered only so that `$state_path` in instances_path interpolates as in Nova."""


def config_files(files: Sequence[Path], config_dir: Path | None = None) -> list[Path]:
    """The files in the order oslo.config reads them: `files` as given, then the directory's
    `*.conf` files sorted by name. The later a file, the more it wins."""
    if config_dir is None:
        return list(files)
    if not config_dir.is_dir():
        raise NovaConfError(f"nova.conf directory {config_dir} does not exist — check --nova-conf-dir")
    return [*files, *sorted(config_dir.glob("*.conf"))]


def read_nova_conf(files: Sequence[Path], config_dir: Path | None = None) -> NovaConf:
    """The effective options of these nova.conf files (see `config_files` for the order), each
    with its source; Nova's defaults where no file sets one. Raises NovaConfError."""
    parsed = [(path, _parse(path)) for path in config_files(files, config_dir)]
    conf = cfg.ConfigOpts()
    conf.register_opt(_STATE_PATH)
    for option in _OPTIONS:
        conf.register_opt(option.opt, group=option.group)
    args = [argument for path, _ in parsed for argument in ("--config-file", str(path))]
    conf(args=args, project=None, default_config_files=[], default_config_dirs=[], use_env=False)
    return NovaConf(**{option.field: _setting(conf, option, parsed) for option in _OPTIONS})


_Sections = dict[str, dict[str, list[str]]]
"""A parsed file: section → option name → the values given, in order."""


def _parse(path: Path) -> _Sections:
    """One file parsed by oslo.config's own parser; a missing, unreadable or malformed file is a
    NovaConfError naming it (and the line number, but never the line: it may hold a password)."""
    sections: _Sections = {}
    try:
        cfg.ConfigParser(str(path), sections).parse()
    except FileNotFoundError:
        raise NovaConfError(f"nova.conf file {path} not found — check --nova-conf") from None
    except OSError as exc:
        raise NovaConfError(f"cannot read nova.conf file {path}: {exc.strerror} — check --nova-conf") from None
    except UnicodeDecodeError as exc:
        raise NovaConfError(f"{path}: not UTF-8 text ({exc.reason}) — fix the file") from None
    except cfg.ParseError as exc:
        raise NovaConfError(f"{path}:{exc.lineno}: not valid nova.conf syntax: {exc.msg} — fix that line") from None
    return sections


def _written(option: _Option, parsed: Sequence[tuple[Path, _Sections]]) -> tuple[Path, str] | None:
    """The file whose value for `option` wins (the last that sets it) and the text written there.
    oslo.config's own get_location() names the last file with the option's section instead, so
    the source is found here, the way oslo.config looks values up: [DEFAULT] as written, other
    section names in any case."""
    for path, sections in reversed(parsed):
        for section, options in sections.items():
            same = section == "DEFAULT" if option.group is None else section.lower() == option.group
            if same and option.opt.dest in options:
                return path, options[option.opt.dest][-1]
    return None


def _setting(conf: cfg.ConfigOpts, option: _Option, parsed: Sequence[tuple[Path, _Sections]]) -> Setting[Any]:
    written = _written(option, parsed)
    source = str(written[0]) if written else DEFAULT_SOURCE
    try:
        value = conf[option.group][option.opt.dest] if option.group else conf[option.opt.dest]
    except (ValueError, cfg.Error) as exc:
        raise NovaConfError(_value_error(option, source, written[1] if written else "", exc)) from None
    if option.field == "database_connection":
        setting = _database_setting(value, source, option)
        if written is not None and setting.value is not None and setting.value.password:
            warn_if_readable_by_others(written[0], "nova.conf file")
        return setting
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return Setting(value, source, shown)


def _value_error(option: _Option, source: str, text: str, exc: Exception) -> str:
    """One line naming the file and option; the value and reason only when they hold no secret."""
    if option.opt.secret:
        return (
            f"{source}: {option.label} cannot be read (value hidden: it holds the database password); "
            f"a literal $ must be written $$ — fix it in {source}"
        )
    try:
        option.opt.type(text)
        reason = f"it refers to an option that does not exist ({exc}); a literal $ must be written $$"
    except ValueError as invalid:
        reason = str(invalid)
    return f"{source}: {option.label} = {text!r} is not valid: {reason} — fix it in {source}"


def _database_setting(value: str | None, source: str, option: _Option) -> Setting[URL | None]:
    """The connection as an SQLAlchemy URL, whose str() and repr() hide the password."""
    if not value:
        return Setting(None, source, "(not set)")
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise NovaConfError(
            f"{source}: {option.label} is not a database URL SQLAlchemy can read (value hidden: it may hold "
            f"the password) — fix it in {source}"
        ) from None
    return Setting(url, source, url.render_as_string(hide_password=True))
