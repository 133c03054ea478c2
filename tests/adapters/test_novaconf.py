"""nova.conf reading (recovery/adapters/novaconf.py) against real files in temp dirs."""

import socket
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.adapters.novaconf import DEFAULT_SOURCE, NovaConf, NovaConfError, config_files, read_nova_conf

PASSWORD = "n0va-Pa55"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(*args: object, **kwargs: object) -> str:
    with pytest.raises(NovaConfError) as raised:
        read_nova_conf(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


# --- Defaults and precedence -------------------------------------------------------------------


def test_without_files_every_option_has_novas_default():
    conf = read_nova_conf([])

    assert conf.host.value == socket.gethostname()
    assert conf.resume_guests_state_on_host_boot.value is False
    assert conf.running_deleted_instance_action.value == "reap"
    assert conf.instances_path.value == "/var/lib/nova/instances"
    assert conf.destroy_after_evacuate.value is True
    assert conf.database_connection.value is None
    assert (conf.libvirt_connection_uri.value, conf.libvirt_virt_type.value) == ("", "kvm")
    assert conf.libvirt_uri == "qemu:///system"
    assert {setting.source for _, setting in conf.settings()} == {DEFAULT_SOURCE}


def test_later_files_win_and_each_value_names_its_file(tmp_path):
    base = write(tmp_path / "nova.conf", "[DEFAULT]\nhost = compute-base\nresume_guests_state_on_host_boot = true\n"
                                         "[libvirt]\nvirt_type = qemu\n")  # fmt: skip
    override = write(tmp_path / "override.conf", "[DEFAULT]\nhost = compute-override\n")

    conf = read_nova_conf([base, override])

    assert (conf.host.value, conf.host.source) == ("compute-override", str(override))
    assert (conf.resume_guests_state_on_host_boot.value, conf.resume_guests_state_on_host_boot.source) == (
        True,
        str(base),
    )
    assert (conf.libvirt_virt_type.value, conf.libvirt_virt_type.source) == ("qemu", str(base))
    assert conf.running_deleted_instance_action.source == DEFAULT_SOURCE


def test_the_directory_is_read_after_the_files_in_sorted_order_and_only_its_conf_files(tmp_path):
    main = write(tmp_path / "nova.conf", "[DEFAULT]\nhost = from-file\nrunning_deleted_instance_action = log\n")
    confd = tmp_path / "nova.conf.d"
    write(confd / "20-late.conf", "[DEFAULT]\nhost = from-20\n")
    write(confd / "10-early.conf", "[DEFAULT]\nhost = from-10\nrunning_deleted_instance_action = shutdown\n")
    write(confd / "99-notes.txt", "[DEFAULT]\nhost = from-txt\n")

    conf = read_nova_conf([main], confd)

    assert config_files([main], confd) == [main, confd / "10-early.conf", confd / "20-late.conf"]
    assert (conf.host.value, conf.host.source) == ("from-20", str(confd / "20-late.conf"))
    assert (conf.running_deleted_instance_action.value, conf.running_deleted_instance_action.source) == (
        "shutdown",
        str(confd / "10-early.conf"),
    )


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c", None])), min_size=1, max_size=6))
@settings(max_examples=25, deadline=None)
def test_the_value_of_the_last_file_in_reading_order_wins(layout):
    """Any mix of --nova-conf files and directory files, each setting host or not: the effective
    host is the last one set in reading order, and its source is that file."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        files, confd = [], root / "conf.d"
        confd.mkdir()
        for index, (in_dir, host) in enumerate(layout):
            body = f"[DEFAULT]\nhost = {host}-{index}\n" if host else "[DEFAULT]\n"
            path = write((confd if in_dir else root) / f"{index:02d}.conf", body)
            if not in_dir:
                files.append(path)
        order = config_files(files, confd)
        setters = [path for path in order if "host" in path.read_text()]

        conf = read_nova_conf(files, confd)

        if setters:
            assert conf.host.source == str(setters[-1])
            assert conf.host.value == setters[-1].read_text().split("= ")[1].strip()
        else:
            assert (conf.host.value, conf.host.source) == (socket.gethostname(), DEFAULT_SOURCE)


@pytest.mark.parametrize(
    ("written", "parsed"),
    [("true", True), ("True", True), ("1", True), ("yes", True), ("on", True),
     ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False)],
)  # fmt: skip
def test_booleans_are_read_as_oslo_config_reads_them(tmp_path, written, parsed):
    path = write(tmp_path / "nova.conf", f"[DEFAULT]\nresume_guests_state_on_host_boot = {written}\n"
                                         f"[workarounds]\ndestroy_after_evacuate = {written}\n")  # fmt: skip
    conf = read_nova_conf([path])
    assert conf.resume_guests_state_on_host_boot.value is parsed
    assert conf.destroy_after_evacuate.value is parsed
    assert conf.resume_guests_state_on_host_boot.shown == str(parsed).lower()


def test_instances_path_follows_state_path_as_in_nova(tmp_path):
    path = write(tmp_path / "nova.conf", "[DEFAULT]\nstate_path = /srv/nova\n")
    conf = read_nova_conf([path])
    assert (conf.instances_path.value, conf.instances_path.source) == ("/srv/nova/instances", DEFAULT_SOURCE)

    path.write_text("[DEFAULT]\nstate_path = /srv/nova\ninstances_path = $state_path/guests\n")
    conf = read_nova_conf([path])
    assert (conf.instances_path.value, conf.instances_path.source) == ("/srv/nova/guests", str(path))


@pytest.mark.parametrize(
    ("libvirt", "uri"),
    [("virt_type = lxc", "lxc:///"), ("virt_type = parallels", "parallels:///system"),
     ("virt_type = qemu", "qemu:///system"), ("virt_type = lxc\nconnection_uri = qemu+tcp://hv/system", "qemu+tcp://hv/system")],
)  # fmt: skip
def test_the_libvirt_uri_is_connection_uri_else_the_virt_types(tmp_path, libvirt, uri):
    conf = read_nova_conf([write(tmp_path / "nova.conf", f"[libvirt]\n{libvirt}\n")])
    assert conf.libvirt_uri == uri


def test_settings_lists_every_option_once_with_its_section():
    labels = [label for label, _ in read_nova_conf([]).settings()]
    assert labels == [
        "[DEFAULT] host", "[DEFAULT] resume_guests_state_on_host_boot", "[DEFAULT] running_deleted_instance_action",
        "[DEFAULT] instances_path", "[workarounds] destroy_after_evacuate", "[database] connection",
        "[libvirt] connection_uri", "[libvirt] virt_type",
    ]  # fmt: skip
    assert len(labels) == len(fields(NovaConf))


# --- The database password -------------------------------------------------------------------------


def test_the_database_connection_is_a_url_object_whose_text_hides_the_password(tmp_path):
    path = write(tmp_path / "nova.conf", f"[database]\nconnection = mysql+pymysql://nova:{PASSWORD}@db.example/nova?charset=utf8\n")

    conf = read_nova_conf([path])
    url = conf.database_connection.value

    assert url is not None and (url.drivername, url.username, url.password, url.database) == (
        "mysql+pymysql", "nova", PASSWORD, "nova")  # fmt: skip
    assert conf.database_connection.shown == "mysql+pymysql://nova:***@db.example/nova?charset=utf8"
    assert conf.database_connection.source == str(path)
    assert PASSWORD not in str(url) and PASSWORD not in repr(conf)
    assert all(PASSWORD not in setting.shown for _, setting in conf.settings())


@pytest.mark.parametrize(
    "connection",
    [f"mysql+pymysql://nova:{PASSWORD}@db:notaport/nova", f"not a url {PASSWORD}",
     f"mysql+pymysql://nova:{PASSWORD}$qzx@db/nova"],
    ids=["bad-port", "not-a-url", "dollar-in-password"],
)
def test_a_bad_connection_names_file_and_option_but_never_the_password(tmp_path, connection):
    path = write(tmp_path / "nova.conf", f"[database]\nconnection = {connection}\n")
    message = error_of([path])
    assert str(path) in message and "[database] connection" in message
    assert PASSWORD not in message and "qzx" not in message


def test_a_syntax_error_names_file_and_line_but_not_the_line_itself(tmp_path):
    path = write(tmp_path / "nova.conf", f"[database]\n# the cell database\nconnection {PASSWORD}\n")
    message = error_of([path])
    assert message.startswith(f"{path}:3: not valid nova.conf syntax")
    assert PASSWORD not in message


# --- Bad values and missing files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "label", "says"),
    [
        ("[DEFAULT]\nresume_guests_state_on_host_boot = maybe", "[DEFAULT] resume_guests_state_on_host_boot = 'maybe'",
         "Unexpected boolean value 'maybe'"),
        ("[DEFAULT]\nrunning_deleted_instance_action = Reap", "[DEFAULT] running_deleted_instance_action = 'Reap'",
         "Valid values are [reap, log, shutdown, noop]"),
        ("[libvirt]\nvirt_type = xen", "[libvirt] virt_type = 'xen'", "Valid values are [kvm, lxc, qemu, parallels]"),
        ("[workarounds]\ndestroy_after_evacuate = sure", "[workarounds] destroy_after_evacuate = 'sure'",
         "Unexpected boolean value"),
        ("[DEFAULT]\nhost = -bad-", "[DEFAULT] host = '-bad-'", "host"),
        ("[DEFAULT]\ninstances_path = $nowhere/instances", "[DEFAULT] instances_path = '$nowhere/instances'",
         "refers to an option that does not exist"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_the_file_that_set_it_and_the_option(tmp_path, line, label, says):
    culprit = write(tmp_path / "a.conf", f"{line}\n")
    # sets other options of the same sections: oslo.config's get_location() would name this file
    later = write(tmp_path / "b.conf", "[DEFAULT]\nstate_path = /srv/nova\n[libvirt]\nconnection_uri = qemu:///system\n"
                                       "[workarounds]\n")  # fmt: skip

    message = error_of([culprit, later])

    assert message.startswith(f"{culprit}: {label} is not valid: ")
    assert says in message
    assert message.endswith(f"fix it in {culprit}")
    assert str(later) not in message


def test_a_bad_value_overridden_by_a_later_file_is_not_an_error(tmp_path):
    bad = write(tmp_path / "a.conf", "[DEFAULT]\nresume_guests_state_on_host_boot = maybe\n")
    good = write(tmp_path / "b.conf", "[DEFAULT]\nresume_guests_state_on_host_boot = on\n")
    assert read_nova_conf([bad, good]).resume_guests_state_on_host_boot.value is True


def test_a_missing_file_or_directory_is_named(tmp_path):
    missing = tmp_path / "nope.conf"
    assert error_of([missing]) == f"nova.conf file {missing} not found — check --nova-conf"
    assert error_of([], tmp_path / "nope.d") == (
        f"nova.conf directory {tmp_path / 'nope.d'} does not exist — check --nova-conf-dir"
    )


def test_an_empty_directory_leaves_the_defaults(tmp_path):
    conf = read_nova_conf([], tmp_path)
    assert {setting.source for _, setting in conf.settings()} == {DEFAULT_SOURCE}


def test_sources_follow_oslo_configs_section_rules(tmp_path):
    """[LIBVIRT] is the libvirt section in any case, [default] is not [DEFAULT], and the last
    occurrence in a file wins: the source named agrees with the value oslo.config chose."""
    base = write(tmp_path / "a.conf", "[DEFAULT]\nhost = from-a\n")
    later = write(tmp_path / "b.conf", "[LIBVIRT]\nvirt_type = qemu\nvirt_type = lxc\n[default]\nhost = from-b\n")

    conf = read_nova_conf([base, later])

    assert (conf.libvirt_virt_type.value, conf.libvirt_virt_type.source) == ("lxc", str(later))
    assert (conf.host.value, conf.host.source) == ("from-a", str(base))
