"""Nova's own code as the judge: run by the Python of the suite's Nova virtualenv (build/nova-venv,
made by `make test`), never imported by the tests (the product's environment has no Nova).

    nova_judge.py build URL SPEC   a cell database made by Nova's own schema migrations and filled
                                   through Nova's objects, as SPEC (JSON) describes it
    nova_judge.py load URL         every row of it loaded back through Nova's objects
    nova_judge.py start URL SPEC   nova-compute's start as init_host runs it
                                   (_destroy_evacuated_instances, then _init_instance for each
                                   instance of the host), Nova's real code with its collaborators
                                   (driver, network API, Placement report client, volume API,
                                   resource tracker, scheduler client) recorded instead of called

Each prints one JSON document on stdout. SPEC: {"host", "resume_guests_state_on_host_boot",
"nodes": [{"host", "uuid", "last_seen_up" (ISO 8601, optional)}], "instances": [{"uuid", "host" (null:
on no host, as a shelved-offloaded instance), "vm_state", "task_state", "power_state" (Nova's integer),
"metadata", "system_metadata", "deleted"}], "migrations": [{"instance_uuid", "migration_type", "status",
"source_compute", "dest_compute"}], "domains": {uuid: power integer}}.
"""

import json
import logging
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)

import nova.conf  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import exception, objects, rpc  # noqa: E402
from oslo_messaging import transport as messaging_transport  # noqa: E402
from oslo_messaging.notify import notifier as messaging_notifier  # noqa: E402

CONF = nova.conf.CONF
EXPECTED_ATTRS = ["info_cache", "metadata", "system_metadata", "numa_topology", "flavor", "pci_requests",
                  "migration_context", "keypairs", "device_metadata", "trusted_certs", "resources", "tags",
                  "ec2_ids", "security_groups", "services", "pci_devices", "vpmems"]


def configure(url: str, host: str = "compute-1", resume: bool = False) -> None:
    CONF([], project="nova", default_config_files=[])
    CONF.set_override("connection", url, group="database")
    CONF.set_override("host", host)
    CONF.set_override("resume_guests_state_on_host_boot", resume)
    # Registered by oslo.messaging on first use; set here first: an in-process transport, no notifications.
    CONF.register_opts(messaging_transport._transport_opts)
    CONF.register_opts(messaging_notifier._notifier_opts, group="oslo_messaging_notifications")
    CONF.set_override("transport_url", "fake:/")
    CONF.set_override("driver", ["noop"], group="oslo_messaging_notifications")
    objects.register_all()
    rpc.init(CONF)


def flavor() -> Any:
    return objects.Flavor(name="m1.small", memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0, flavorid="2", swap=0,
                          rxtx_factor=1.0, vcpu_weight=0, disabled=False, is_public=True, extra_specs={},
                          projects=[])


def build(url: str, spec: dict) -> dict:
    """Nova's schema migrations, then every row through Nova's objects, as Nova's API and
    nova-compute write them."""
    from nova.db import migration

    configure(url, spec["host"])
    migration.db_sync()
    ctx = nova_context.get_admin_context()
    nodes = {}
    for node in spec["nodes"]:
        service = objects.Service(ctx, host=node["host"], binary="nova-compute", topic="compute", report_count=41)
        if node.get("last_seen_up"):
            service.last_seen_up = datetime.fromisoformat(node["last_seen_up"])
        service.create()
        compute_node = objects.ComputeNode(
            ctx, uuid=node["uuid"], host=node["host"], hypervisor_hostname=node["host"], service_id=service.id,
            vcpus=16, memory_mb=32768, local_gb=500, vcpus_used=0, memory_mb_used=0, local_gb_used=0,
            free_ram_mb=32768, free_disk_gb=500, disk_available_least=500, running_vms=0,
            hypervisor_type="QEMU", hypervisor_version=8_002_000, cpu_info="{}", current_workload=0)
        compute_node.create()
        nodes[node["host"]] = compute_node
    created = []
    for item in spec["instances"]:
        node = nodes.get(item["host"])
        instance = objects.Instance(
            ctx, uuid=item["uuid"], host=item["host"], node=item["host"], compute_id=node.id if node else None,
            display_name=item.get("display_name", item["uuid"][-4:]), project_id="project", user_id="user",
            vm_state=item["vm_state"], task_state=item.get("task_state"), power_state=item["power_state"],
            flavor=flavor(), instance_type_id=1, vcpus=1, memory_mb=512, root_gb=1, ephemeral_gb=0,
            metadata=item.get("metadata", {}), system_metadata=item.get("system_metadata", {}))
        instance.create()
        created.append(instance)
    for item in spec["migrations"]:
        objects.Migration(
            ctx, instance_uuid=item["instance_uuid"], source_compute=item["source_compute"],
            dest_compute=item["dest_compute"], source_node=item["source_compute"], dest_node=item["dest_compute"],
            dest_compute_id=nodes[item["dest_compute"]].id,
            migration_type=item["migration_type"], status=item["status"], old_instance_type_id=1,
            new_instance_type_id=1).create()
    for instance in created:  # deleted through Nova's own path: children and migrations soft-deleted too
        if next(i for i in spec["instances"] if i["uuid"] == instance.uuid).get("deleted"):
            instance.destroy()
    return {"instances": len(created), "migrations": len(spec["migrations"])}


def load(url: str) -> dict:
    """Every instance (deleted ones included) with every joined attribute, every migration, compute
    node and service, through Nova's objects; the failures, if any."""
    configure(url)
    ctx = nova_context.get_admin_context(read_deleted="yes")
    failures, counts = [], {}
    uuids = [i.uuid for i in objects.InstanceList.get_by_filters(ctx, {}, expected_attrs=[])]
    for uuid in uuids:
        try:
            instance = objects.Instance.get_by_uuid(ctx, uuid, expected_attrs=EXPECTED_ATTRS)
            instance.obj_to_primitive()
            instance.get_network_info()
        except Exception as error:  # every failure is the finding
            failures.append(f"instance {uuid}: {type(error).__name__}: {error}")
    counts["instances"] = len(uuids)
    for name, listing in (("migrations", lambda: objects.MigrationList.get_by_filters(ctx, {})),
                          ("compute_nodes", lambda: objects.ComputeNodeList.get_all(ctx)),
                          ("services", lambda: objects.ServiceList.get_all(ctx))):
        try:
            rows = listing()
            for row in rows:
                row.obj_to_primitive()
            counts[name] = len(rows)
        except Exception as error:
            failures.append(f"{name}: {type(error).__name__}: {error}")
    return {"counts": counts, "failures": failures}


class Recorder:
    """A collaborator whose every call is recorded (with the instance it concerns) and answered
    by `answers`, or None."""

    def __init__(self, name: str, calls: list, answers: dict | None = None):
        self._name, self._calls, self._answers = name, calls, answers or {}

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append({"who": self._name, "method": method, "uuid": _instance_uuid(args, kwargs)})
            answer = self._answers.get(method)
            return answer(*args, **kwargs) if callable(answer) else answer
        return call


def _instance_uuid(args: tuple, kwargs: dict) -> str | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, objects.Instance):
            return value.uuid
        if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
            return value
    return None


def start(url: str, spec: dict) -> dict:
    """nova-compute's start on the host's records as they are now, as init_host runs it."""
    from nova.compute import manager, power_state
    from nova.network import model as network_model
    from nova.scheduler.client import report
    from nova.virt import hardware

    configure(url, spec["host"], spec.get("resume_guests_state_on_host_boot", False))
    ctx = nova_context.get_admin_context()
    calls: list[dict] = []
    domains = {uuid: int(state) for uuid, state in spec["domains"].items()}

    def get_info(instance: Any, *_args: Any, **_kwargs: Any) -> Any:
        if instance.uuid not in domains:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return hardware.InstanceInfo(state=domains[instance.uuid])

    def gone(instance: Any, *_args: Any, **_kwargs: Any) -> None:
        domains.pop(instance.uuid, None)

    def running(_context: Any, instance: Any, *_args: Any, **_kwargs: Any) -> None:
        domains[instance.uuid] = power_state.RUNNING

    def shut_off(instance: Any, *_args: Any, **_kwargs: Any) -> None:
        domains[instance.uuid] = power_state.SHUTDOWN

    driver = Recorder("driver", calls, {
        "get_info": get_info, "list_instance_uuids": lambda: list(domains), "list_instances": lambda: [],
        "destroy": lambda _ctx, instance, *a, **k: gone(instance), "reboot": running, "power_on": running,
        "resume_state_on_host_boot": running, "power_off": shut_off, "instance_exists": lambda i: i.uuid in domains,
        "capabilities": None,
    })
    placement = Recorder("placement", calls, {"remove_provider_tree_from_instance_allocation": True,
                                              "delete_allocation_for_instance": True})
    report.SchedulerReportClient = lambda *_args, **_kwargs: placement  # made by the manager's constructor
    compute = manager.ComputeManager(compute_driver="fake.FakeDriver")
    compute.host = spec["host"]
    compute.driver = driver
    compute.network_api = Recorder("network", calls, {
        "get_instance_nw_info": lambda *a, **k: network_model.NetworkInfo([])})
    compute.volume_api = Recorder("volume", calls)
    compute.reportclient = placement
    compute.rt = Recorder("resource_tracker", calls)
    compute.query_client = Recorder("scheduler", calls)
    compute.share_manager = Recorder("shares", calls, {"get_share_info": lambda *a, **k: objects.ShareMappingList()})
    node_cache = {cn.uuid: cn for cn in objects.ComputeNodeList.get_all_by_host(ctx, spec["host"])}
    errors = []
    evacuated = compute._destroy_evacuated_instances(ctx, node_cache)
    instances = objects.InstanceList.get_by_host(ctx, spec["host"], expected_attrs=[
        "info_cache", "metadata", "system_metadata", "numa_topology", "flavor"])
    for instance in instances:
        if instance.uuid in evacuated:
            continue
        try:
            compute._init_instance(ctx, instance)
        except Exception as error:  # _init_instance lets some failures out: nova-compute's start would stop
            errors.append(f"{instance.uuid}: {type(error).__name__}: {error}")
    return {"calls": calls, "evacuations": sorted(evacuated), "errors": errors, "domains": domains}


def main() -> None:
    command, url, *rest = sys.argv[1:]
    spec = json.loads(Path(rest[0]).read_text()) if rest else {}
    commands = {"build": lambda: build(url, spec), "load": lambda: load(url), "start": lambda: start(url, spec)}
    result = commands[command]()
    sys.stdout.write(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
