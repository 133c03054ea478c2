"""The run report: one JSON document for machines, a table for people."""

from rich.console import Console
from rich.table import Table

from recovery.boot import RunResult
from recovery.render import action_json, format_action, path_json


def run_json(result: RunResult) -> dict:
    instances = []
    for r in result.instances:
        decision = r.decision
        instances.append({
            "uuid": r.uuid,
            "state": decision.start_state if decision else None,
            "path": path_json(decision) if decision else [],
            "actions": [{**action_json(a.action), "outcome": a.outcome, "error": a.error} for a in r.actions],
            "outcome": r.outcome,
            "error": r.error,
            "reason": decision.reason if decision else None,
            "vm_state": r.vm_state,
            "task_state": r.task_state,
            "power_state": result.power_states.get(r.uuid, "nostate"),
        })
    return {
        "run_id": result.run_id,
        "host": result.settings.host,
        "dry_run": result.settings.dry_run,
        "warnings": result.warnings,
        "instances": instances,
        "domains": [d.__dict__ for d in result.domains],
        "network_error": result.network_error,
        "halted": result.halted,
        "totals": result.totals,
        "seconds": round(result.seconds, 3),
    }


_OUTCOME_STYLE = {"ok": "green", "failed": "bold red", "skipped": "dim", "conflict": "yellow",
                  "not-started": "yellow", "interrupted": "bold red"}


def print_run(result: RunResult, console: Console) -> None:
    doc = run_json(result)
    for warning in doc["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    title = f"compute-recover run on {doc['host']}" + (" (dry run: nothing changed)" if doc["dry_run"] else "")
    table = Table(title=title, show_lines=False, expand=False)
    for column in ("instance", "start state", "path", "actions", "outcome", "now"):
        table.add_column(column, overflow="fold")
    for item in doc["instances"]:
        actions = ", ".join(f"{format_action(a)}:{a['outcome']}" for a in item["actions"]) or "-"
        now = f"{item['vm_state']}/{item['task_state'] or 'none'}/{item['power_state']}"
        outcome = item["outcome"] + (f"\n{item['error']}" if item["error"] else "")
        table.add_row(item["uuid"], item["state"] or "?", " → ".join(s["rule"] for s in item["path"]) or "-",
                      actions, f"[{_OUTCOME_STYLE[item['outcome']]}]{outcome}[/]", now)
    console.print(table)
    for domain in doc["domains"]:
        console.print(f"domain {domain['name']} ({domain['uuid']}): {domain['action']} — {domain['reason']}",
                      highlight=False)
    if doc["halted"]:
        console.print(f"[bold red]run stopped early:[/] {doc['halted']} — instances not reached were left as they "
                      "were, for the next run", highlight=False)
    if doc["network_error"]:
        console.print(f"[bold red]network apply failed:[/] {doc['network_error']}", highlight=False)
    totals = doc["totals"]
    console.print(", ".join(f"{k} {v}" for k, v in totals.items()) + f" in {doc['seconds']:.2f} s", highlight=False)
