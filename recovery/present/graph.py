"""The compiled machine as a picture (Mermaid or Graphviz dot) for policy review."""

from collections import Counter, defaultdict

from recovery.core.machine import RecoveryMachine
from states.policy import POLICY

_PRIORITY = {rule.name: index for index, rule in enumerate(POLICY)}


def takeable_edges(machine: RecoveryMachine) -> set[tuple[str, str, str]]:
    """(source, rule, dest) of every transition some walk can take.

    The machine compiles a transition for every case a state's triple admits,
    but a walk takes the first that matches: a transition behind one whose
    guard reads no fact (it always matches) is never taken from that entry
    point. Walks enter a state at rule 0 (the start) or after the continuing
    rule that led there, so entry points are found in rule order.
    """
    entries: dict[str, set[int]] = defaultdict(lambda: {0})
    by_rule: dict[int, list[tuple[str, object, str]]] = defaultdict(list)
    for state in machine.machine.states:
        for rule_index, guard, dest in machine.transitions_from(state):
            by_rule[rule_index].append((state, guard, dest))
    blocked_after: dict[str, list[int]] = defaultdict(list)  # rule indexes whose guard always holds, per state
    found = set()
    for rule_index in sorted(by_rule):
        unconditional_here: set[str] = set()
        for state, guard, dest in by_rule[rule_index]:
            blocked = blocked_after[state]
            reachable = state not in unconditional_here and any(
                entry <= rule_index and not any(entry <= b < rule_index for b in blocked) for entry in entries[state]
            )
            if reachable:
                found.add((state, guard.rule.name, dest))
                if not guard.rule.stop:
                    entries[dest].add(rule_index + 1)
            if guard.always:
                unconditional_here.add(state)
        for state in unconditional_here:
            blocked_after[state].append(rule_index)
    return found


def edges(machine: RecoveryMachine, vm_state: str | None = None, task_state: str | None = None,
          power_state: str | None = None) -> list[tuple[str, str, str]]:
    """Takeable (source, rule, dest) transitions leaving a state that matches the filters."""
    wanted = (vm_state, task_state, power_state)
    return sorted(
        edge for edge in takeable_edges(machine)
        if all(want is None or want == part for want, part in zip(wanted, edge[0].split("/"), strict=True))
    )


def summary(edge_list: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """One edge per pair of vm_states, labelled with each rule between them (in priority order)
    and how many state triples take it, one rule per line.

    The full graph has some 13,000 edges; this one has a few dozen, within what Mermaid renders
    by default (500 edges, 50,000 characters) and few enough to read.
    """
    counts = Counter((source.split("/")[0], rule, dest.split("/")[0]) for source, rule, dest in edge_list)
    rules: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, rule, dest in sorted(counts, key=lambda edge: (edge[0], edge[2], _PRIORITY[edge[1]])):
        rules[source, dest].append(f"{rule} ({counts[source, rule, dest]})")
    return [(source, "\n".join(labels), dest) for (source, dest), labels in sorted(rules.items())]


def _node_id(state: str) -> str:
    return "s_" + "".join(ch if ch.isalnum() else "_" for ch in state)


def mermaid(edge_list: list[tuple[str, str, str]]) -> str:
    lines = ["stateDiagram-v2"]
    states = sorted({s for s, _, _ in edge_list} | {d for _, _, d in edge_list})
    lines += [f'    state "{s}" as {_node_id(s)}' for s in states]
    lines += [f"    {_node_id(s)} --> {_node_id(d)}: {'<br/>'.join(label.splitlines())}" for s, label, d in edge_list]
    return "\n".join(lines)


_DOT_NEWLINE = "\\n"
"""A line break inside a Graphviz label."""


def dot(edge_list: list[tuple[str, str, str]]) -> str:
    lines = ["digraph recovery {", "    rankdir=LR;", "    node [shape=box, fontsize=10];"]
    lines += [f'    "{s}" -> "{d}" [label="{_DOT_NEWLINE.join(label.splitlines())}"];' for s, label, d in edge_list]
    lines.append("}")
    return "\n".join(lines)
