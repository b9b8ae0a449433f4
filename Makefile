# vmha — run as root on Debian 12.  `make demo` and `make test` install what they need.

SHELL        := /bin/bash
PYTHON       := /usr/bin/python3
VENV         := .venv
VPY          := $(VENV)/bin/python
DESTDIR      ?=
OCF_DIR      := $(DESTDIR)/usr/lib/ocf/resource.d/vmha
PY_DIR       := $(DESTDIR)/usr/lib/python3/dist-packages
SBIN_DIR     := $(DESTDIR)/usr/sbin
AGENTS       := VirtualMachine GuestService HypervisorHealth

# Debian packages: the cluster stack, libvirt + QEMU, the Python bindings the agents use,
# and what the lab builds its guest image from.
DEB_PACKAGES := pacemaker corosync pcs pacemaker-cli-utils resource-agents fence-agents \
                libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils \
                python3-libvirt python3-lxml python3-venv libxml2-utils \
                busybox-static qemu-guest-agent cpio kmod iproute2 procps util-linux bindfs \
                postgresql-15 mariadb-server-core mariadb-client-core openssl

.PHONY: all deps venv lint typecheck test pytest test-py39 install install-deb uninstall bench bench-failover bench-storage bench-db bench-tools bench-soak demo clean

all: test

# Installs only what is missing, so a second run costs a dpkg query.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    if echo " $$missing " | grep -q ' postgresql-15 ' && [ ! -e /etc/postgresql-common/createcluster.d/vmha-tests.conf ]; then \
	        mkdir -p /etc/postgresql-common/createcluster.d && \
	        echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/vmha-tests.conf; \
	    fi; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.done: requirements-dev.txt
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: deps $(VENV)/.done

lint: venv
	$(VENV)/bin/ruff check $(wildcard lib agents bin tests bench packaging/tools)
	$(VENV)/bin/ruff format --check $(wildcard lib agents bin tests bench packaging/tools)

typecheck: venv
	$(VENV)/bin/mypy --exclude 'lib/vmha/lab/' lib
	# the lab runs on the machine that hosts it, Debian 12's Python 3.11; the rest on 3.9 and later
	$(VENV)/bin/mypy --python-version 3.11 lib/vmha/lab

install: deps
	install -d -m 755 $(OCF_DIR) $(PY_DIR) $(SBIN_DIR)
	for a in $(AGENTS); do install -m 755 agents/$$a $(OCF_DIR)/$$a; done
	rm -rf $(PY_DIR)/vmha
	cp -r lib/vmha $(PY_DIR)/vmha
	find $(PY_DIR)/vmha -name __pycache__ -prune -exec rm -rf {} +
	find $(PY_DIR)/vmha -type d -exec chmod 755 {} + ; find $(PY_DIR)/vmha -type f -exec chmod 644 {} +
	$(PYTHON) -m compileall -q $(PY_DIR)/vmha
	install -m 755 bin/vmha $(SBIN_DIR)/vmha

uninstall:
	rm -rf $(OCF_DIR) $(PY_DIR)/vmha $(SBIN_DIR)/vmha

# The freshly built .deb, installed the way users install it: the lab tests and the demo run
# the packaged agents, so they prove the package. (dpkg -i: reinstalls even the same version.)
install-deb: deps deb
	dpkg -i $(DEB_FILE)

pytest: venv install-deb
	VMHA_LAB_AGENT=vmha $(VPY) -m pytest tests

test: lint typecheck lint-packages pytest test-py39

# Python 3.9 (RHEL 9's): the .deb installed with apt-get in a Debian 11 root filesystem
# (cached under PY39_CACHE, keyed by tests/py39/packages.txt and requirements.txt), the
# packaged agents run there, then the unit and contract tests; then, in a fresh copy of the
# root filesystem, the packaged agents again from the .el9 RPM's payload (Python 3.9's
# site-packages). All with Debian 11's /usr/bin/python3, in a private mount + PID namespace
# (tests/py39/README.md).
PY39_CACHE   ?= /var/cache/vmha/py39
test-py39: venv deb rpm
	@root=$$(tests/py39/rootfs.sh $(PY39_CACHE)) && tests/py39/run.sh "$$root" $(DEB_FILE) && \
	    tests/py39/run.sh "$$root" $(RPM_TOP)/RPMS/noarch/vmha-$(PKG_VERSION)-1.el9.noarch.rpm

bench: venv install-deb
	$(VPY) bench/monitor.py --agent /usr/lib/ocf/resource.d/vmha/VirtualMachine

bench-failover: venv install-deb
	PYTHONPATH=lib $(PYTHON) bench/failover.py --rounds 5

bench-storage: venv install-deb
	PYTHONPATH=lib $(PYTHON) bench/storage_failover.py --rounds 3

bench-db: venv install-deb
	PYTHONPATH=lib $(PYTHON) bench/db_failover.py --rounds 3

# the operator's tools on a healthy 2-host lab, beside crm_mon and pcs status; and vmha plan
# over synthetic CIBs of 2 to 32 hosts (no lab)
bench-tools: venv install-deb
	PYTHONPATH=lib $(PYTHON) bench/operator_tools.py
	$(PYTHON) bench/plan_scale.py --json

# a long soak: three rounds of every fault kind; SEED=N replays one
bench-soak: venv install-deb
	PYTHONPATH=lib $(PYTHON) -m vmha.cli lab soak --faults 30 $(if $(SEED),--seed $(SEED))

demo: deps install-deb
	/usr/sbin/vmha lab demo

clean: packages-clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

# deb, rpm, lint-packages, packages-deps, packages-clean (last: its targets must not be the default)
include packaging/packaging.mk
