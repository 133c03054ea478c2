"""The run report laid out for people: a table fitted to the terminal's width, with the
warnings, the downtime, the tiers and the totals around it (the document is recovery.present.report's).
Data (uuids, names, states, errors, reasons, hosts) is printed as plain text, never as rich markup,
with control characters escaped (`printable`)."""

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from recovery.core.documents import format_action
from recovery.core.metadata import format_duration
from recovery.core.outcomes import Outcome
from recovery.core.printable import printable
from recovery.present.plain_table import CellLine, two_column_lines
from recovery.present.report import ordered, shown_text

_OUTCOME_STYLE = {Outcome.OK: "green", Outcome.FAILED: "bold red", Outcome.SKIPPED: "dim",
                  Outcome.CONFLICT: "yellow", Outcome.NOT_STARTED: "yellow", Outcome.INTERRUPTED: "bold red",
                  Outcome.CHANGED: "yellow", Outcome.UNPLANNED: "yellow", Outcome.NOT_READY: "yellow",
                  Outcome.HANDED_OFF: "cyan"}
LEFT_TO_NOVA_COMPUTE = "; left to nova-compute: "
"""Where a handed-off instance's reason says what nova-compute's start is left to do (states.policy.hand_off)."""
UUID_WIDTH = 36
WIDE_LAYOUT_MIN_WIDTH = 180
"""Below this many columns the table drops the path and stacks each instance's recovery in one column."""


def _error_lines(item: dict) -> list[CellLine]:
    """The error whole, wrapped to the cell: the value it names (a bad row's) is what matters most."""
    error = (item["error"] or "").strip()
    return [CellLine(((printable(error), "red"),), overflow="fold")] if error else []


def _left_lines(item: dict) -> list[CellLine]:
    """A handed-off instance: what is left to nova-compute, on one line cut to the cell's width."""
    _, found, left = (item["reason"] or "").partition(LEFT_TO_NOVA_COMPUTE)
    if item["outcome"] != "handed-off" or not found:
        return []
    return [CellLine(((printable(f"left to nova-compute: {left}"), "cyan"),), overflow="ellipsis", no_wrap=True)]


def _plain(text: str) -> Text:
    return Text(printable(text))


def _state(item: dict) -> str:
    return f"{item['vm_state']}/{item['task_state'] or 'none'}/{item['power_state']}"


NO_ACTIONS = CellLine((("no actions", "dim"),))


def _actions(item: dict, planned: bool) -> CellLine:
    """The actions with their outcomes; a plan's (a dry run's) as what it would do."""
    if not item["actions"]:
        return NO_ACTIONS
    if planned:
        return CellLine(((printable(", ".join(format_action(action) for action in item["actions"])), ""),))
    pieces: list[tuple[str, str]] = []
    for index, action in enumerate(item["actions"]):
        pieces.append((printable(("" if index == 0 else ", ") + f"{format_action(action)}: "), ""))
        pieces.append((action["outcome"], _OUTCOME_STYLE.get(action["outcome"], "")))
    return CellLine(tuple(pieces))


def _names(item: dict) -> list[CellLine]:
    """The names an operator knows an instance by (display name, libvirt domain), if any."""
    names = " / ".join(name for name in (item.get("name"), item.get("domain")) if name)
    return [CellLine(((printable(names), "dim"),), overflow="fold")] if names else []


def _end(item: dict, planned: bool) -> str:
    """The state it is in now, or, in a plan, the state it would end in."""
    return item["would_be"] or _state(item) if planned else _state(item)


def _verdict(item: dict, planned: bool) -> tuple[str, str]:
    """The outcome word and its style; a plan's whether it would change anything."""
    if planned and item["outcome"] == Outcome.SKIPPED:
        return ("would change", "yellow") if item["would_change"] else ("no change", "dim")
    return item["outcome"], _OUTCOME_STYLE[item["outcome"]]


def _tier(item: dict) -> str:
    return printable("-" if item["tier"] is None else f"{item['tier']} ({item['ready']})")


def _tier_lines(item: dict, tiers: bool) -> list[CellLine]:
    """The tier and readiness in the stacked cell, for a guest started in an ordered restart."""
    return [CellLine((("tier ", ""), (_tier(item), "")))] if tiers and item["tier"] is not None else []


def _texts(lines: list[CellLine]) -> list[Text]:
    return [line.text() for line in lines]


def _instance_table(title: str, instances: list[dict], width: int, tiers: bool, planned: bool) -> Table:
    """Every uuid whole on one line: narrower terminals stack the rest in one cell, never cut the uuid. A
    plan shows the state each instance would end in where a run shows the state it is in now."""
    table = Table(title=_plain(title), box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("instance", no_wrap=True, min_width=UUID_WIDTH)
    if width >= WIDE_LAYOUT_MIN_WIDTH:
        if tiers:
            table.add_column("tier", no_wrap=True)
        table.add_column("start state", no_wrap=True)
        table.add_column("path")
        table.add_column("would do" if planned else "actions", overflow="fold")
        table.add_column("plan" if planned else "outcome", max_width=30)
        table.add_column("would be" if planned else "now", no_wrap=True)
        for item in instances:
            path = " → ".join(step["rule"] for step in item["path"]) or "-"
            outcome = Group(Text(*_verdict(item, planned)), *_texts(_error_lines(item) + _left_lines(item)))
            cells = (_plain(item["state"] or "?"), _plain(path), _actions(item, planned).text(), outcome,
                     _plain(_end(item, planned)))
            table.add_row(Group(_plain(item["uuid"]), *_texts(_names(item))),
                          *((Text(_tier(item)),) if tiers else ()), *cells)
        return table
    table.add_column(_narrow_header(planned), overflow="fold")
    for uuid, cell in _narrow_rows(instances, tiers, planned):
        table.add_row(uuid.text(), Group(*_texts(cell)))
    return table


def _narrow_header(planned: bool) -> str:
    return "start state → would be; would do" if planned else "start state → now; actions"


def _narrow_rows(instances: list[dict], tiers: bool, planned: bool) -> list[tuple[CellLine, list[CellLine]]]:
    """Each instance as the narrow layout shows it: its uuid, and the lines stacked beside it."""
    rows = []
    for item in instances:
        states = CellLine(((printable(f"{item['state'] or '?'} → {_end(item, planned)}  "), ""),
                           _verdict(item, planned)))
        rows.append((CellLine(((printable(item["uuid"]), ""),)),
                     [states, _actions(item, planned), *_tier_lines(item, tiers), *_error_lines(item),
                      *_left_lines(item), *_names(item)]))
    return rows


def _print_instances(console: Console, title: str, instances: list[dict], tiers: bool, planned: bool) -> None:
    """The instance table; where no style is shown (a pipe, a file) and the layout is the narrow one, written
    as plain lines laid out as rich would lay them out (recovery.present.plain_table), at a part of the cost."""
    if not console.is_terminal and console.width < WIDE_LAYOUT_MIN_WIDTH:
        lines = two_column_lines(printable(title), ("instance", _narrow_header(planned)),
                                 _narrow_rows(instances, tiers, planned), console.width, UUID_WIDTH)
        if lines is not None:
            console.file.write("".join(line + "\n" for line in lines))
            return
    console.print(_instance_table(title, instances, console.width, tiers, planned))


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
    planned = doc["dry_run"]
    title = (f"compute-recover plan for {doc['host']} (nothing was changed)" if planned
             else f"compute-recover run on {doc['host']}")
    if doc["instances"]:
        _print_instances(console, title, doc["instances"], ordered(doc), planned)
    elif "shown" in doc:
        console.print(f"{title}: no instance of {shown_text(doc['shown'])}", highlight=False)
    else:
        console.print(_plain(f"{title}: no instances on this host"))
    for domain in doc["domains"]:  # the reason on lines of its own: at 80 columns it is never cut mid-phrase
        console.print(_plain(f"domain {domain['name']} ({domain['uuid']}): {domain['action']}"))
        console.print(Padding(_plain(domain["reason"]), (0, 0, 0, 2)))
    if doc["halted"]:
        console.print(Text.assemble(("run stopped early:", "bold red"), " ", _plain(
            f"{doc['halted']} — instances not reached were left as they were, for the next run")))
    if doc["network_error"]:
        console.print(Text(printable(doc["network_error"]), style="bold red"))  # it says what failed
    if ordered(doc):
        console.print(_plain("; ".join(_tier_line(tier) for tier in doc["tiers"])))
    if "shown" in doc:
        console.print(f"shown: {doc['shown']['instances']} of {doc['totals']['instances']} instances "
                      f"({shown_text(doc['shown'])})", highlight=False)
    console.print(_totals(doc), highlight=False)


def _totals(doc: dict) -> str:
    """The run's totals; a plan's say how many instances it would change."""
    totals = doc["totals"]
    if doc["dry_run"]:
        kept = {k: v for k, v in totals.items() if v and k not in ("instances", Outcome.SKIPPED, Outcome.OK)}
        return (f"would change {doc['would_change']} of {totals['instances']} instances"
                + "".join(f", {k} {v}" for k, v in kept.items()) + f" (planned in {doc['seconds']:.2f} s)")
    shown = {k: v for k, v in totals.items() if v or k in ("instances", Outcome.OK, Outcome.FAILED)}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) + f" in {doc['seconds']:.2f} s"


def _tier_line(tier: dict) -> str:
    project = f"project {tier['project']} " if tier.get("project") is not None else ""
    line = f"{project}tier {tier['priority']}: {tier['instances']} to start"
    if tier["began"] is not None:
        line += f", began at {tier['began']:.2f} s, done at {tier['ended']:.2f} s"
    return line + (f", {tier['not_ready']} not ready" if tier["not_ready"] else "")
