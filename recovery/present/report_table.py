"""The run report laid out for people: a table fitted to the terminal's width, with the
warnings, the downtime, the tiers and the totals around it (the document is recovery.present.report's)."""

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from recovery.core.documents import format_action
from recovery.core.metadata import format_duration
from recovery.core.outcomes import Outcome
from recovery.present.report import ordered

_OUTCOME_STYLE = {Outcome.OK: "green", Outcome.FAILED: "bold red", Outcome.SKIPPED: "dim",
                  Outcome.CONFLICT: "yellow", Outcome.NOT_STARTED: "yellow", Outcome.INTERRUPTED: "bold red",
                  Outcome.CHANGED: "yellow", Outcome.UNPLANNED: "yellow", Outcome.NOT_READY: "yellow",
                  Outcome.HANDED_OFF: "cyan"}
LEFT_TO_NOVA_COMPUTE = "; left to nova-compute: "
"""Where a handed-off instance's reason says what nova-compute's start is left to do (states.policy.hand_off)."""
UUID_WIDTH = 36
WIDE_LAYOUT_MIN_WIDTH = 180
"""Below this many columns the table drops the path and stacks each instance's recovery in one column."""


def _error_lines(item: dict) -> list[Text]:
    """The error's first line, cut to the cell's width rather than wrapped; --json and explain keep it whole."""
    lines = (item["error"] or "").strip().splitlines()
    return [Text(lines[0], style="red", no_wrap=True, overflow="ellipsis")] if lines else []


def _left_lines(item: dict) -> list[Text]:
    """A handed-off instance: what is left to nova-compute, on one line cut to the cell's width."""
    _, found, left = (item["reason"] or "").partition(LEFT_TO_NOVA_COMPUTE)
    if item["outcome"] != "handed-off" or not found:
        return []
    return [Text(f"left to nova-compute: {left}", style="cyan", no_wrap=True, overflow="ellipsis")]


def _outcome_word(item: dict) -> Text:
    return Text(item["outcome"], style=_OUTCOME_STYLE[item["outcome"]])


def _state(item: dict) -> str:
    return f"{item['vm_state']}/{item['task_state'] or 'none'}/{item['power_state']}"


def _actions(item: dict) -> Text:
    text = Text()
    for index, action in enumerate(item["actions"]):
        if index:
            text.append(", ")
        text.append(f"{format_action(action)}: ")
        text.append(action["outcome"], style=_OUTCOME_STYLE.get(action["outcome"], ""))
    return text or Text("no actions", style="dim")


def _tier(item: dict) -> str:
    return "-" if item["tier"] is None else f"{item['tier']} ({item['ready']})"


def _instance_table(title: str, instances: list[dict], width: int, tiers: bool) -> Table:
    """Every uuid whole on one line: narrower terminals lose columns, never the uuid."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("instance", no_wrap=True, min_width=UUID_WIDTH)
    if tiers:
        table.add_column("tier", no_wrap=True)
    if width >= WIDE_LAYOUT_MIN_WIDTH:
        table.add_column("start state", no_wrap=True)
        table.add_column("path")
        table.add_column("actions", overflow="fold")
        table.add_column("outcome", max_width=30)
        table.add_column("now", no_wrap=True)
        for item in instances:
            path = " → ".join(step["rule"] for step in item["path"]) or "-"
            outcome = Group(_outcome_word(item), *_error_lines(item), *_left_lines(item))
            cells = (item["state"] or "?", path, _actions(item), outcome, _state(item))
            table.add_row(item["uuid"], *((_tier(item),) if tiers else ()), *cells)
        return table
    table.add_column("start state → now; actions", overflow="fold")
    for item in instances:
        states = Text.assemble(f"{item['state'] or '?'} → {_state(item)}  ", _outcome_word(item))
        recovery = Group(states, _actions(item), *_error_lines(item), *_left_lines(item))
        table.add_row(item["uuid"], *((_tier(item),) if tiers else ()), recovery)
    return table


def _downtime(seconds: float | None) -> str:
    """The line above the table: how long the host was down before this run, by its last heartbeat."""
    if seconds is None:
        return "host was down: unknown (no heartbeat recorded)"
    return f"host was down {format_duration(seconds)} (since its last heartbeat)"


def print_report(doc: dict, console: Console) -> None:
    """The run report as `run_json` builds it, laid out for the console's width."""
    for warning in doc["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(_downtime(doc["host_down_seconds"]), highlight=False)
    title = f"compute-recover run on {doc['host']}" + (" (dry run: nothing changed)" if doc["dry_run"] else "")
    if doc["instances"]:
        console.print(_instance_table(title, doc["instances"], console.width, ordered(doc)))
    else:
        console.print(f"{title}: no instances on this host", highlight=False)
    for domain in doc["domains"]:
        console.print(f"domain {domain['name']} ({domain['uuid']}): {domain['action']} — {domain['reason']}",
                      highlight=False)
    if doc["halted"]:
        console.print(f"[bold red]run stopped early:[/] {doc['halted']} — instances not reached were left as they "
                      "were, for the next run", highlight=False)
    if doc["network_error"]:
        console.print(f"[bold red]{escape(doc['network_error'])}[/]", highlight=False)  # it says what failed
    if ordered(doc):
        console.print("; ".join(_tier_line(tier) for tier in doc["tiers"]), highlight=False)
    shown = {k: v for k, v in doc["totals"].items() if v or k in ("instances", Outcome.OK, Outcome.FAILED)}
    console.print(", ".join(f"{k} {v}" for k, v in shown.items()) + f" in {doc['seconds']:.2f} s", highlight=False)


def _tier_line(tier: dict) -> str:
    line = f"tier {tier['priority']}: {tier['instances']} to start"
    if tier["began"] is not None:
        line += f", began at {tier['began']:.2f} s, done at {tier['ended']:.2f} s"
    return line + (f", {tier['not_ready']} not ready" if tier["not_ready"] else "")
