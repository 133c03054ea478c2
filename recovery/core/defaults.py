"""Every default of a setting, written once: the options' defaults, the settings' and the adapters'
all read them here. Seconds unless said otherwise; Nova's name where the setting is Nova's."""

DEFAULT_CONCURRENCY = 4
"""Few guests start at once, so a host coming back does not cause a boot storm."""

DEFAULT_DB_TIMEOUT = 30.0
"""How long one database call may take (connect, statement, commit) before the database counts as failed."""

DEFAULT_TIER_TIMEOUT = 300.0
"""How long one tier of ordered restart waits for its guests to be ready before the next tier starts."""
MAX_TIER_TIMEOUT = 86_400.0

DEFAULT_READINESS_BUDGET = 900.0
"""How long one run waits for readiness in all (every project's tiers together), whatever the
instances' metadata says: three tier timeouts at the defaults."""

DEFAULT_PROBE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
"""Where readiness checks may connect: the private networks (RFC 1918, RFC 6598 shared space, IPv6
unique local) where tenants' guests usually have their fixed addresses. Public addresses are reached
only when the operator says so."""

DEFAULT_START_WAIT = 300.0
"""How long the agent waits for a database or libvirt that does not answer at start."""

DEFAULT_LOCK_TIMEOUT = 60.0
"""How long a run waits for another recovery of the same host to finish before giving up."""

DEFAULT_STOP_TIMEOUT = 60.0
"""How long a guest gets to shut down before it is destroyed (Nova's shutdown_timeout)."""

DEFAULT_REPORT_INTERVAL = 10.0
"""Between heartbeats (Nova's report_interval)."""

DEFAULT_SERVICE_DOWN_TIME = 60.0
"""Without a heartbeat for this long a service reads as down (Nova's service_down_time)."""

DEFAULT_SYNC_POWER_STATE_INTERVAL = 600.0
"""Between full power-state syncs (Nova's sync_power_state_interval)."""

DEFAULT_UPDATE_RESOURCES_INTERVAL = 60.0
"""Between updates of the compute node record (Nova's periodic tick)."""

DEFAULT_RECONNECT_INTERVAL = 5.0
"""Between attempts to reopen a lost libvirt connection."""
