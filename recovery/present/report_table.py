"""The run report laid out for people: a table fitted to the terminal's width, with the
warnings, the downtime, the tiers and the totals around it (the document is recovery.present.report's).
Data (uuids, names, states, errors, reasons, hosts) is printed as plain text, never as rich markup,
with control characters escaped (`printable`)."""

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from recovery.core.documents import format_action
from recovery.core.metadata import format_duration
from recovery.core.outcomes import Outcome
from recovery.core.printable import printable
from recovery.present.report import ordered

_OUTCOME_STYLE = {Outcome.OK: "green", Outcome.FAILED: "bold red", Outcome.SKIPPED: "dim",
                  Outcome.CONFLICT: "yellow", Outcome.NOT_STARTED: "yellow", Outcome.INTERRUPTED: "bold red",
                  Outcome.CHANGED: "yellow", Outcome.UNPLANNED: "yellow", Outcome.NOT_READY: "yellow"}
UUID_WIDTH = 36
WIDE_LAYOUT_MIN_WIDTH = 180
"""Below this many columns the table drops the path and stacks each instance's recovery in one column."""


def _error_lines(item: dict) -> list[Text]:
    """The error's first line, cut to the cell's width rather than wrapped; --json and explain keep it whole."""
    lines = (item["error"] or "").strip().splitlines()
    return [Text(printable(lines[0]), style="red", no_wrap=True, overflow="ellipsis")] if lines else []


def _outcome_word(item: dict) -> Text:
    return Text(item["outcome"], style=_OUTCOME_STYLE[item["outcome"]])


def _plain(text: str) -> Text:
    return Text(printable(text))


def _state(item: dict) -> Text:
    return _plain(f"{item['vm_state']}/{item['task_state'] or 'none'}/{item['power_state']}")


def _actions(item: dict) -> Text:
    text = Text()
    for index, action in enumerate(item["actions"]):
        if index:
            text.append(", ")
        text.append(printable(f"{format_action(action)}: "))
        text.append(action["outcome"], style=_OUTCOME_STYLE.get(action["outcome"], ""))
    return text or Text("no actions", style="dim")


def _tier(item: dict) -> Text:
    return _plain("-" if item["tier"] is None else f"{item['tier']} ({item['ready']})")


def _instance_table(title: str, instances: list[dict], width: int, tiers: bool) -> Table:
    """Every uuid whole on one line: narrower terminals lose columns, never the uuid."""
    table = Table(title=_plain(title), box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
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
            outcome = Group(_outcome_word(item), *_error_lines(item))
            cells = (_plain(item["state"] or "?"), _plain(path), _actions(item), outcome, _state(item))
            table.add_row(_plain(item["uuid"]), *((_tier(item),) if tiers else ()), *cells)
        return table
    table.add_column("start state → now; actions", overflow="fold")
    for item in instances:
        states = Text.assemble(_plain(f"{item['state'] or '?'} → "), _state(item), "  ", _outcome_word(item))
        table.add_row(_plain(item["uuid"]), *((_tier(item),) if tiers else ()), Group(states, _actions(item),
                                                                               *_error_lines(item)))
    return table


def _downtime(seconds: float | None) -> str:
    """The line above the table: how long the host was down before this run, by its last heartbeat."""
    if seconds is None:
        return "host was down: unknown (no heartbeat recorded)"
    return f"host was down {format_duration(seconds)} (since its last heartbeat)"


def print_report(doc: dict, console: Console) -> None:
    """The run report as `run_json` builds it, laid out for the console's width."""
    for warning in doc["warnings"]:
        console.print(Text.assemble(("warning:", "yellow"), " ", _plain(warning)))
    console.print(_downtime(doc["host_down_seconds"]), highlight=False)
    title = f"compute-recover run on {doc['host']}" + (" (dry run: nothing changed)" if doc["dry_run"] else "")
    if doc["instances"]:
        console.print(_instance_table(title, doc["instances"], console.width, ordered(doc)))
    else:
        console.print(_plain(f"{title}: no instances on this host"))
    for domain in doc["domains"]:
        console.print(_plain(f"domain {domain['name']} ({domain['uuid']}): {domain['action']} — {domain['reason']}"))
    if doc["halted"]:
        console.print(Text.assemble(("run stopped early:", "bold red"), " ", _plain(
            f"{doc['halted']} — instances not reached were left as they were, for the next run")))
    if doc["network_error"]:
        console.print(Text(printable(doc["network_error"]), style="bold red"))  # it says what failed
    if ordered(doc):
        console.print(_plain("; ".join(_tier_line(tier) for tier in doc["tiers"])))
    shown = {k: v for k, v in doc["totals"].items() if v or k in ("instances", Outcome.OK, Outcome.FAILED)}
    console.print(", ".join(f"{k} {v}" for k, v in shown.items()) + f" in {doc['seconds']:.2f} s", highlight=False)


def _tier_line(tier: dict) -> str:
    project = f"project {tier['project']} " if tier.get("project") is not None else ""
    line = f"{project}tier {tier['priority']}: {tier['instances']} to start"
    if tier["began"] is not None:
        line += f", began at {tier['began']:.2f} s, done at {tier['ended']:.2f} s"
    return line + (f", {tier['not_ready']} not ready" if tier["not_ready"] else "")
