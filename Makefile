# callguard — the table of contents. `make help` lists the targets.
# Two commands do everything on a fresh Debian machine as root (RUN-3):
#   make run    the whole service (Asterisk 22 + ARI app + PostgreSQL, reference site provisioned)
#   make test   every test, end-to-end ones included (sets the stack up itself)

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
ROOT := .build/asterisk-root
STACK := tools/stack.sh
DEB_PACKAGES := debootstrap sip-tester sox postgresql-15 postgresql-client-15 python3-venv tshark chromium chromium-driver prometheus fonts-ipafont-gothic baresip-core kamailio
CALLGUARD := $(VENV)/bin/callguard

.PHONY: help local-env deps venv svc-venv lock root db asterisk apps prometheus run cluster down status boot-unit boot-unit-remove test test-unit test-e2e lint bench sounds clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

# callguard.local.env (ignored by git): the sysadmin's settings, kept across runs, under make's
# environment (tools/local_env.sh). Checked first: a malformed line stops `make run` at once.
local-env: ## check callguard.local.env and say which of its settings are in effect
	@tools/local_env.sh check

deps: local-env .build/deps.stamp ## install the Debian packages the stack needs
.build/deps.stamp: Makefile
	@mkdir -p .build
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  apt-get -o DPkg::Lock::Timeout=900 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq $$missing >/dev/null; fi
	@touch $@

# Every Python dependency is pinned with hashes in requirements/*.lock (pip-compile from
# pyproject.toml: `make lock`); make installs only from them.
PIP := pip install -q --disable-pip-version-check
venv: $(VENV)/.installed ## create the virtualenv with callguard and its dev tools (tests, lint)
$(VENV)/.installed: pyproject.toml requirements/dev.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@mkdir -p .build
	@{ $(PY) -m $(PIP) --require-hashes -r requirements/dev.lock && \
	   $(PY) -m $(PIP) --no-deps -e . ; } >.build/pip.log 2>&1 || { tail -30 .build/pip.log; exit 1; }
	@touch $@

# The services run from their own virtualenv without the dev tools (SEC-4), on the system's
# Python: they run as their own user (`callguard`), who cannot reach an interpreter under
# /root (pyenv). A venv made from another interpreter is made again.
SVC_VENV := .build/svc-venv
SVC_PY := $(firstword $(wildcard /usr/bin/python3) python3)
ifneq ($(realpath $(SVC_VENV)/bin/python3),$(realpath $(SVC_PY)))
.PHONY: $(SVC_VENV)/.installed
endif
svc-venv: $(SVC_VENV)/.installed ## the services' virtualenv: runtime dependencies only
$(SVC_VENV)/.installed: pyproject.toml requirements/service.lock
	@mkdir -p .build && $(STACK) relocate  # a checkout out of others' reach: in the state dir
	@V=$$(readlink -f $(SVC_VENV)); \
	[ "$$(readlink -f "$$V/bin/python3")" = "$$(readlink -f "$$(command -v $(SVC_PY))")" ] || rm -rf "$$V"/*; \
	test -x "$$V/bin/python" || $(SVC_PY) -m venv "$$V"; \
	{ "$$V/bin/python" -m $(PIP) --require-hashes -r requirements/service.lock && \
	  "$$V/bin/python" -m $(PIP) --no-deps -e . ; } >.build/pip-svc.log 2>&1 || \
	  { tail -30 .build/pip-svc.log; exit 1; }
	@touch $@

lock: venv ## re-pin every Python dependency (requirements/*.lock) from pyproject.toml
	@$(VENV)/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe \
	  -o requirements/service.lock pyproject.toml
	@$(VENV)/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --extra dev \
	  -o requirements/dev.lock pyproject.toml

root: deps ## build the project-local Asterisk 22 root (skipped on a host with Asterisk)
	@if [ -x /usr/sbin/asterisk ]; then echo "system Asterisk found: $$(asterisk -V)"; \
	 else tools/build_asterisk_root.sh $(ROOT); fi

db: deps venv ## start the local PostgreSQL and apply migrations
	@$(STACK) secrets
	@$(STACK) pg-start
	@$(CALLGUARD) db upgrade

asterisk: root db svc-venv ## install asterisk_conf/ and sounds, start Asterisk
	@tools/cluster.sh down
	@$(STACK) asterisk-start

apps: asterisk ## provision the reference site, start the ARI app and the FastAGI fallback
	@$(CALLGUARD) site provision
	@$(CALLGUARD) site sync-asterisk
	@$(STACK) apps-start

prometheus: apps ## start Prometheus on loopback, scraping every part (alert rules shipped)
	@$(STACK) prometheus-start

run: prometheus ## run the whole service (idempotent) and say what runs where
	@$(CALLGUARD) status

# More than one node (issue 12): Kamailio on 127.0.0.1:5060 in front of NODES Asterisk nodes
# (127.0.0.11, .12, ...), each with its own ARI app, FastAGI fallback and API; one PostgreSQL.
NODES ?= 2
cluster: root db svc-venv ## run NODES (default 2) nodes behind Kamailio (stops the single node)
	@tools/cluster.sh up $(NODES)

down: ## stop everything `make run` or `make cluster` started
	@tools/cluster.sh down
	@$(STACK) prometheus-stop
	@$(STACK) apps-stop
	@$(STACK) asterisk-stop
	@$(STACK) pg-stop

status: ## show each part's state and PID (every node's too when a cluster runs)
	@$(STACK) status
	@tools/cluster.sh status

# At boot (tools/boot_unit.sh): a systemd unit whose start is this checkout's `make run`, whose
# stop is its `make down`. BOOT_UNIT=name (default callguard), BOOT_UNIT_DIR=dir (default
# /etc/systemd/system). As root; without systemd running it is written and says so.
boot-unit: ## as root: a systemd unit that runs `make run` at boot (BOOT_UNIT=callguard)
	@tools/boot_unit.sh install
boot-unit-remove: ## as root: remove that unit (the running stack is left as it is)
	@tools/boot_unit.sh remove

test: prometheus ## run every test (unit, end-to-end over SIP, security, reliability, cluster)
	@# Phase 2: Kamailio + 2 nodes, brought up and replaced by the single node again by the
	@# tests (issue 12); it runs even when phase 1 failed, and the target fails if either did.
	@rc=0; $(VENV)/bin/pytest -q -p no:cacheprovider --durations=15 -m "not cluster" tests || rc=$$?; \
	  $(VENV)/bin/pytest -q -p no:cacheprovider -m cluster tests/e2e/test_cluster.py || rc=$$?; \
	  exit $$rc

test-e2e: prometheus ## only the end-to-end tests over SIP (not the cluster phase; sets the stack up)
	@$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15 -m "not cluster" tests/e2e

test-unit: venv ## only the pure unit tests (no servers)
	@$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

lint: venv ## ruff and mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

# `make bench NODES=2` (NODES given): PERF-1 through Kamailio instead (issue 12, bench/cluster.py);
# BENCH_ARGS=--short for two small steps. Plain `make bench` is unchanged.
bench: apps ## benchmark the ARI path against a pure-dialplan baseline (PERF-*); NODES=2: through Kamailio
ifeq ($(origin NODES),file)
	@$(STACK) bench-install
	@$(PY) -m bench.run
else
	@$(PY) -m bench.cluster --nodes $(NODES) $(BENCH_ARGS)
endif

sounds: ## regenerate the Japanese prompts from sounds/manifest.tsv (Open JTalk)
	@bash tools/make_sounds.sh

clean: down ## remove the local state (database, logs, secrets); keeps the Asterisk root
	rm -rf "$$(readlink -f .run)" .run
