"""--help in groups for the long commands (`run`, `plan`, `agent`, `explain`, `runs`): what a command reads,
what it does, what it prints, and what keeps it safe, so that an operator finds an option by what it is
for rather than in a list of thirty. docs/commands.md groups them alike."""

import click

READS = "What it reads"
DOES = "What it does"
OUTPUT = "Output"
SAFETY = "Safety"
OTHER = "Other options"

GROUP_OF: dict[str, str] = {
    **dict.fromkeys(("config", "scenario", "host", "node", "db_url", "journal_db_url", "libvirt_uri",
                     "nova_conf_files", "nova_conf_dir", "plan_path", "facts_text", "instances_path"), READS),
    **dict.fromkeys(("resume_guests_state_on_host_boot", "destroy_after_evacuate", "running_deleted_instance_action",
                     "resume_policy", "max_downtime", "concurrency", "tier_timeout", "readiness_budget",
                     "plug_vifs_command", "network_apply_command", "live", "report_interval",
                     "sync_power_state_interval", "update_resources_interval", "lifecycle_event_delay"), DOES),
    **dict.fromkeys(("output_format", "as_json", "columns", "outcomes", "failed", "changes", "detailed_exitcode",
                     "out", "metrics_textfile", "metrics_port", "metrics_address", "brief", "limit"), OUTPUT),
    **dict.fromkeys(("dry_run", "lock_timeout", "stop_timeout", "db_timeout", "probe_networks", "on_degraded",
                     "start_wait"), SAFETY),
}
"""Each option's group, by its parameter name (the same option is in the same group in every command)."""

ORDER = (READS, DOES, OUTPUT, SAFETY, OTHER)


def option_groups(ctx: click.Context, command: click.Command) -> list[tuple[str, list[tuple[str, str]]]]:
    """The command's help records (flags, help) by group, in ORDER; --help and any option not in GROUP_OF
    under OTHER."""
    grouped: dict[str, list[tuple[str, str]]] = {title: [] for title in ORDER}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None and isinstance(param, click.Option):  # arguments: click's format_arguments
            grouped[GROUP_OF.get(param.name, OTHER)].append(record)
    return [(title, records) for title, records in grouped.items() if records]


class GroupedCommand(click.Command):
    """A click command whose --help lists its options in groups (option_groups)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, records in option_groups(ctx, self):
            with formatter.section(title):
                formatter.write_dl(records)
