# compute-recover: set-up, demo, test, bench, lint.
# `make demo` and `make test` each set everything up first: Debian packages via apt when missing, then .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/compute-recover
STAMP := $(VENV)/.installed
DEMO_DB := sqlite:///build/demo/demo.sqlite
NOVA_VERSION := 34.0.0
NOVA_VENV := build/nova-venv
NOVA_STAMP := $(NOVA_VENV)/.installed
# libvirt-python compiles against libvirt-dev (found through pkg-config) and Python's headers;
# systemd-python (--log-to journal) against libsystemd-dev.
SYSTEM_PACKAGES := libvirt-dev libsystemd-dev pkg-config gcc
# The suite starts a throwaway PostgreSQL 15 server and a throwaway MariaDB server of its own, and a
# libvirtd of its own (when none runs) with QEMU guests sitting in firmware (SeaBIOS comes with qemu-system-x86);
# it watches the progress bar in an 80-column tmux terminal.
TEST_SYSTEM_PACKAGES := tmux postgresql mariadb-server libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
	qemu-system-x86 qemu-utils

# Install the Debian packages named in $(1) that are missing; silent when none are.
define apt_ensure
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo=sudo; fi; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: setup setup-test demo test bench lint docs clean

# Byte-compile the project's own modules at every set-up: the editable install leaves them as
# sources, and where PYTHONDONTWRITEBYTECODE is set (as on these machines) Python never caches them,
# so every `compute-recover` process compiled its 40 or so modules again (0.1 CPU-s a start; a fleet of runs
# starts one process per host). Only stale files are compiled again; an installed wheel has its own.
setup: $(STAMP)
	@$(PY) -m compileall -q recovery states

$(STAMP): pyproject.toml
	$(call apt_ensure,$(SYSTEM_PACKAGES))
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(MAKE) --no-print-directory apt-python-venv
	@$(PYTHON) -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
		2>/dev/null || $(MAKE) --no-print-directory apt-python-dev
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

.PHONY: apt-python-venv apt-python-dev
apt-python-venv:
	$(call apt_ensure,python3-venv)
apt-python-dev:
	$(call apt_ensure,python3-dev)

setup-test: setup $(NOVA_STAMP)
	$(call apt_ensure,$(TEST_SYSTEM_PACKAGES))
	@$(MAKE) --no-print-directory libvirt-qemu-account

# Nova's own code is a judge in the suite (tests/run/test_nova_judge.py runs tests/support/nova_judge.py in
# it): Nova's schema migrations build cell databases, Nova's objects fill and read them, Nova's
# ComputeManager start acts on them. It lives in a
# virtualenv of the suite's own, so the product's dependencies stay clean; the drivers are those the
# suite's MariaDB and PostgreSQL servers need. Tests skip the Nova-judged cases while it is missing.
$(NOVA_STAMP):
	@test -x $(NOVA_VENV)/bin/python || $(PYTHON) -m venv $(NOVA_VENV)
	@echo "installing nova==$(NOVA_VERSION) into $(NOVA_VENV) (a few minutes, once)"
	@$(NOVA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		'nova==$(NOVA_VERSION)' pymysql 'psycopg2-binary'
	@touch $(NOVA_STAMP)

# libvirtd's qemu driver runs guests as libvirt-qemu in group kvm (the owner of /dev/kvm); Debian's
# libvirt-daemon-system would create them, but it pulls in systemd and firewalld, which the suite
# does not need.
.PHONY: libvirt-qemu-account
libvirt-qemu-account:
	@if ! id libvirt-qemu >/dev/null 2>&1; then \
		echo "creating the libvirt-qemu user (group kvm) that libvirtd runs QEMU guests as"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo=sudo; fi; \
		getent group kvm >/dev/null || $$sudo groupadd --system kvm; \
		getent group libvirt-qemu >/dev/null || $$sudo groupadd --system libvirt-qemu; \
		$$sudo useradd --system --gid kvm --groups libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
			--shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu; \
	fi

# Each part of the demo fits an 80x24 terminal (tests/cli/test_demo.py holds it to that): the table of every
# instance is what `plan` and `run` print without the filters used here.
demo: setup
	@rm -rf build/demo && mkdir -p build/demo
	@echo "== set up: the power-outage scenario's records (fixtures/power-outage) into SQLite =="
	@$(CLI) db upgrade --db $(DEMO_DB)
	@$(CLI) scenario load fixtures/power-outage --db $(DEMO_DB)
	@echo
	@echo "== look, read only (plan --changes): each guest a run would change, and the =="
	@echo "== state it would end in (guests resumed: --resume-guests-state-on-host-boot) =="
	@$(CLI) plan --scenario fixtures/power-outage --db $(DEMO_DB) --resume-guests-state-on-host-boot \
		--changes -f value -c name -c would_be
	@echo
	@echo "== act (run --failed: only the guests not recovered; each domain; totals) =="
	-@$(CLI) run --scenario fixtures/power-outage --db $(DEMO_DB) --resume-guests-state-on-host-boot --failed
	@echo
	@echo "== ask why (explain --brief): the run's rules and reason; --live: what now =="
	@$(CLI) explain soft-reboot-became-hard --db $(DEMO_DB) --brief --live \
		--libvirt-uri test://$(CURDIR)/fixtures/power-outage/libvirt.xml

test: setup-test lint
	@$(VENV)/bin/pytest

# `make bench` measures everything; `make bench PARTS="decide host-boot"` only those parts (python -m tests.benchmark --help).
bench: setup-test
	@$(PY) -m tests.benchmark $(PARTS)

# docs/policy.md, docs/commands.md and the man pages in man/ (click-man; the wheel installs them) from the code.
docs: setup
	@$(PY) -m recovery.cli.docs

# ruff, then the layers (import-linter, contracts in pyproject.toml; docs/architecture.md).
lint: setup
	@$(VENV)/bin/ruff check recovery states tests
	@$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) build *.egg-info
