# vmha packages.  Run from the repository root, included by the main Makefile
# (`include packaging/packaging.mk`) or alone (`make -f packaging/packaging.mk deb`):
#
#   make deb             build/packages/deb/vmha_<version>_all.deb (+ .dsc, .changes)
#   make rpm             build/packages/rpm/RPMS/noarch/vmha-<version>-1.<target>.noarch.rpm
#                        (+ SRPM), one per RPM_TARGETS entry: el9 (Python 3.9), el10 (3.12)
#   make lint-packages   both, then lintian and rpmlint; any error or unexplained warning fails
#   make packages-deps   the Debian packages the above need (apt-get, only what is missing)
#   make packages-clean  remove build/packages
#
# pkg-man, pkg-install and pkg-clean are the steps debian/rules and the spec run inside a
# package build (in a copy of the tree); they install nothing on this machine by themselves.
#
# The version comes from lib/vmha/__init__.py only: debian/changelog and the spec's Version
# are generated into build/packages/src at build time.

PKG_PYTHON   ?= /usr/bin/python3
# The agents to package: the main Makefile's AGENTS when this file is included from it, so one
# list serves `make install` and the packages. Alone (and inside a package build, where the
# tree holds only the listed agents), every file in agents/.
AGENTS       ?= $(sort $(notdir $(wildcard agents/*)))
# vmha's tools with a page of their own (vmha-TOOL.8, from `vmha TOOL --help`)
TOOLS        := plan status

PKG_VERSION  := $(shell $(PKG_PYTHON) -I packaging/tools/version.py package 2>/dev/null)
PKG_BUILD    := build/packages
PKG_SRC      := $(PKG_BUILD)/src/vmha-$(PKG_VERSION)
DEB_DIR      := $(PKG_BUILD)/deb
DEB_FILE     := $(DEB_DIR)/vmha_$(PKG_VERSION)_all.deb
RPM_TOP      := $(PKG_BUILD)/rpm
# HOME for rpmbuild and rpmlint: Debian's rpm keeps its database in ~/.rpmdb, which would
# otherwise appear in root's home.
RPM_HOME     := $(PKG_BUILD)/rpm-home
# One RPM per target distribution, each for the /usr/bin/python3 of that distribution: the
# agents run /usr/bin/python3 -I, so the library goes to *that* interpreter's site-packages
# and the package requires python(abi) = its version (it refuses to install on another one
# instead of failing at run time). The target's name is the RPM's dist tag:
#   el9   RHEL 9 and rebuilds (Rocky, Alma, CentOS Stream 9, Oracle): Python 3.9
#   el10  RHEL 10 and rebuilds: Python 3.12
# Another target: make rpm RPM_TARGETS="el9 el10 fc42" RPM_PYTHON3_VERSION_fc42=3.13
RPM_TARGETS  ?= el9 el10
RPM_PYTHON3_VERSION_el9  ?= 3.9
RPM_PYTHON3_VERSION_el10 ?= 3.12
RPM_FILES    = $(foreach t,$(RPM_TARGETS),$(RPM_TOP)/RPMS/noarch/vmha-$(PKG_VERSION)-1.$(t).noarch.rpm)
SRPM_FILES   = $(foreach t,$(RPM_TARGETS),$(RPM_TOP)/SRPMS/vmha-$(PKG_VERSION)-1.$(t).src.rpm)
RPM_STAMP    := $(RPM_TOP)/.stamp
# One maintainer line for debian/control, debian/changelog and the spec's %changelog.
PKG_MAINTAINER = $(shell sed -n 's/^Maintainer: *//p' packaging/debian/control)
# Package dates (changelogs, man pages, tarball mtimes) from the last commit: reproducible.
PKG_EPOCH    = $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

# What building and linting the packages needs on Debian 12 (debian/control's Build-Depends,
# rpmbuild, the linters). man-db: the package test opens the installed pages with `man`. Not
# build-essential: nothing is compiled (dpkg-buildpackage --ignore-builtin-builddeps), and
# fakeroot neither (Rules-Requires-Root: no).
PKG_DEB_PACKAGES := debhelper dh-python dpkg-dev lintian rpm rpmlint man-db \
                    python3-lxml python3-libvirt

PKG_INPUTS   := $(shell find agents bin lib/vmha packaging README.md -type f \
                    ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null)

# Inside a package build: where pkg-man writes and pkg-install reads the man pages, and where
# the library goes (overridden by the spec with %{python3_sitelib}).
PKG_MAN_DIR  := build/man
PKG_PYLIB    ?= /usr/lib/python3/dist-packages
PKG_OCF_DIR  := /usr/lib/ocf/resource.d/vmha

.PHONY: deb rpm lint-packages packages-deps packages-clean pkg-man pkg-install pkg-clean

deb: $(DEB_FILE)
rpm: $(RPM_STAMP)

# Installs only what is missing, so a second run costs a dpkg query.
packages-deps:
	@missing=$$(for p in $(PKG_DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# The source tree both packages build from: the listed agents, the command, the library, the
# README and packaging/, plus debian/ and vmha.spec carrying the generated version (in place
# of the templates, so `rpmbuild -ta` finds one spec).
$(PKG_BUILD)/src/.stamp: $(PKG_INPUTS)
	@test -n "$(PKG_VERSION)" || { echo "no version in lib/vmha/__init__.py" >&2; exit 1; }
	rm -rf $(PKG_BUILD)/src
	mkdir -p $(PKG_SRC)/agents
	for a in $(AGENTS); do install -m 755 agents/$$a $(PKG_SRC)/agents/$$a || exit 1; done
	tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude=packaging/debian --exclude=packaging/rpm/vmha.spec \
	    bin lib/vmha packaging README.md | tar -x --no-same-owner -C $(PKG_SRC)
	cp -R packaging/debian $(PKG_SRC)/debian
	SOURCE_DATE_EPOCH=$(PKG_EPOCH) $(PKG_PYTHON) -I packaging/tools/version.py \
	    debian-changelog "$(PKG_MAINTAINER)" > $(PKG_SRC)/debian/changelog
	SOURCE_DATE_EPOCH=$(PKG_EPOCH) $(PKG_PYTHON) -I packaging/tools/version.py \
	    rpm-spec packaging/rpm/vmha.spec "$(PKG_MAINTAINER)" > $(PKG_SRC)/vmha.spec
	touch $@

# MAKEFLAGS and friends are dropped so the package build does not inherit this make's
# command line (DESTDIR=..., -j jobserver descriptors).
$(DEB_FILE): $(PKG_BUILD)/src/.stamp | packages-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)
	cp -R $(PKG_SRC) $(DEB_DIR)/
	cd $(DEB_DIR)/vmha-$(PKG_VERSION) && \
	    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL dpkg-buildpackage --build=full -us -uc --ignore-builtin-builddeps
	@ls -l $(DEB_DIR)/*.deb

# $(call rpm_build,TARGET,PYTHON_VERSION): one recipe line.
define rpm_build
@test -n "$(2)" || { echo "no RPM_PYTHON3_VERSION_$(1) for the RPM target $(1)" >&2; exit 1; }
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL SOURCE_DATE_EPOCH=$(PKG_EPOCH) HOME=$(abspath $(RPM_HOME)) \
	    rpmbuild -ba --nodeps --quiet --define "_topdir $(abspath $(RPM_TOP))" \
	    --define "dist .$(1)" --define "python3_version $(2)" \
	    --define "python3_sitelib /usr/lib/python$(2)/site-packages" \
	    --define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
	    --define "__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}" \
	    $(RPM_TOP)/SPECS/vmha.spec

endef

# One rpmbuild per target, each with that target's dist tag and Python: python3_version and
# python3_sitelib are defined on the command line, so they win over a build host's own
# python3 macros too (the host's Python is not the target's).
$(RPM_STAMP): $(PKG_BUILD)/src/.stamp | packages-deps
	@test -n "$(RPM_TARGETS)" || { echo "RPM_TARGETS is empty" >&2; exit 1; }
	rm -rf $(RPM_TOP)
	mkdir -p $(RPM_TOP)/SOURCES $(RPM_TOP)/SPECS
	tar -c --sort=name --mtime=@$(PKG_EPOCH) --owner=0 --group=0 --numeric-owner \
	    -C $(PKG_BUILD)/src vmha-$(PKG_VERSION) | gzip -n -9 > $(RPM_TOP)/SOURCES/vmha-$(PKG_VERSION).tar.gz
	cp $(PKG_SRC)/vmha.spec $(RPM_TOP)/SPECS/vmha.spec
	mkdir -p $(RPM_HOME)
	$(foreach t,$(RPM_TARGETS),$(call rpm_build,$(t),$(RPM_PYTHON3_VERSION_$(t))))
	@ls -l $(RPM_FILES) $(SRPM_FILES)
	touch $@

# --nodeps above: the build dependencies are Debian packages (packages-deps), which rpm's
# own database does not know about. __brp_compress: Debian's brp-compress is a bash script
# (read -d '') run by /bin/sh, i.e. dash, so it would leave the man pages uncompressed.

# lintian: on the .changes (source package, .deb and .buildinfo); warnings fail unless an
# override with its reason is in debian/vmha.lintian-overrides or debian/source/.
# rpmlint --strict, once per RPM target (one run sees its SRPM and RPM: two SRPMs of one name
# in a run are "multiple-specfiles"): every message fails unless packaging/rpm/vmha.rpmlintrc filters it
# (rpmlint.toml: Fedora's man page compression and licence list, which Debian's lacks).
lint-packages: deb rpm
	lintian --fail-on error,warning --display-info --pedantic --display-experimental --show-overrides \
	    $(DEB_DIR)/vmha_$(PKG_VERSION)_$$(dpkg --print-architecture).changes
	mkdir -p $(RPM_HOME)
	set -e; for t in $(RPM_TARGETS); do \
	    HOME=$(abspath $(RPM_HOME)) rpmlint --strict \
	        --config packaging/rpm/rpmlint.toml --rpmlintrc packaging/rpm/vmha.rpmlintrc \
	        $(RPM_TOP)/SPECS/vmha.spec $(RPM_TOP)/SRPMS/vmha-$(PKG_VERSION)-1.$$t.src.rpm \
	        $(RPM_TOP)/RPMS/noarch/vmha-$(PKG_VERSION)-1.$$t.noarch.rpm; \
	done

packages-clean:
	rm -rf $(PKG_BUILD)

# --- inside a package build (debian/rules, the spec) ------------------------------------

pkg-man:
	mkdir -p $(PKG_MAN_DIR)
	for a in $(AGENTS); do \
	    $(PKG_PYTHON) -I packaging/tools/manpage.py agent agents/$$a \
	        -o $(PKG_MAN_DIR)/ocf_vmha_$$a.7 $(addprefix --agent ,$(AGENTS)) || exit 1; done
	$(PKG_PYTHON) -I packaging/tools/manpage.py command bin/vmha -o $(PKG_MAN_DIR)/vmha.8 \
	    $(addprefix --agent ,$(AGENTS))
	for t in $(TOOLS); do \
	    $(PKG_PYTHON) -I packaging/tools/manpage.py tool bin/vmha $$t -o $(PKG_MAN_DIR)/vmha-$$t.8 || exit 1; done

pkg-install: pkg-man
	install -d -m 755 $(DESTDIR)$(PKG_OCF_DIR) $(DESTDIR)$(PKG_PYLIB) $(DESTDIR)/usr/sbin \
	    $(DESTDIR)/usr/share/man/man7 $(DESTDIR)/usr/share/man/man8
	for a in $(AGENTS); do install -m 755 agents/$$a $(DESTDIR)$(PKG_OCF_DIR)/$$a || exit 1; done
	rm -rf $(DESTDIR)$(PKG_PYLIB)/vmha
	tar -C lib -c --exclude=__pycache__ --exclude='*.pyc' vmha | \
	    tar -x --no-same-owner --no-same-permissions -C $(DESTDIR)$(PKG_PYLIB)
	find $(DESTDIR)$(PKG_PYLIB)/vmha -type d -exec chmod 755 {} +
	find $(DESTDIR)$(PKG_PYLIB)/vmha -type f -exec chmod 644 {} +
	install -m 755 bin/vmha $(DESTDIR)/usr/sbin/vmha
	for a in $(AGENTS); do \
	    install -m 644 $(PKG_MAN_DIR)/ocf_vmha_$$a.7 $(DESTDIR)/usr/share/man/man7/ || exit 1; done
	install -m 644 $(PKG_MAN_DIR)/vmha.8 $(DESTDIR)/usr/share/man/man8/vmha.8
	for t in $(TOOLS); do \
	    install -m 644 $(PKG_MAN_DIR)/vmha-$$t.8 $(DESTDIR)/usr/share/man/man8/ || exit 1; done

pkg-clean:
	rm -rf $(PKG_MAN_DIR)
	find . -name __pycache__ -prune -exec rm -rf {} +
