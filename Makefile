# netfate — the two commands a newcomer needs:
#   make demo   install what is missing, then run the demo on the embedded defaults
#   make test   install what is missing, then run every test tier (unit, netns, testbed)
# Both are safe to run again: installed parts are skipped.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages of the real components the tests and the demo start.
APT_PACKAGES := openvswitch-switch nftables dnsmasq-base ethtool iproute2 iperf3 \
	postgresql chromium chromium-driver freeradius freeradius-utils usbip busybox \
	isc-dhcp-client conntrack tcpdump procps psmisc ffmpeg iputils-ping minidlna openssl \
	python3 python3-venv curl nodejs libatomic1 \
	gerbera gupnp-tools python3-gi python3-zeroconf gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
	multicat nginx libnginx-mod-rtmp prometheus

.PHONY: demo test deps apt venv web lint unit netns testbed bench clean-testbed

demo: deps
	$(BIN)/netfate demo $(DEMO_ARGS)

test: deps lint
	NETFATE_ALL_TIERS=1 $(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS) tests

deps: apt venv web

# Browser libraries of the services' web apps (hls.js for the streaming player), from
# the npm registry at the versions their lockfiles pin, into each folder's
# node_modules (git-ignored; the app serves the files from there). Debian's `nodejs`
# has no npm; a Node.js that brings its own (it conflicts with Debian's npm) is kept.
WEB_DIRS := src/netfate/services/streaming/web
WEB_STAMPS := $(addsuffix /node_modules/.installed,$(WEB_DIRS))

web: $(WEB_STAMPS)

%/node_modules/.installed: %/package-lock.json %/package.json
	@command -v npm >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then echo "need root to install: npm" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; }
	npm ci --prefix $* --no-audit --no-fund --loglevel=error
	touch $@

# Packages' own services (minidlna, gerbera, freeradius, postgresql) must not start in the
# root namespace: the tests start their own. policy-rc.d (exit 101) forbids it
# during our install where the machine has no such policy already.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "need root to install: $$missing" >&2; exit 1; fi; \
		echo "installing Debian packages: $$missing"; \
		guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		rc=$$?; [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; [ $$rc = 0 ] || exit $$rc; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src/netfate

# One tier: the platform's tests (tests/TIER) and every service's (tests/services/NAME/TIER).
tier = tests/$(1) $(wildcard tests/services/*/$(1))

unit: venv
	$(BIN)/pytest -p no:cacheprovider $(call tier,unit) $(call tier,fuzz)

netns: deps
	NETFATE_ALL_TIERS=1 $(BIN)/pytest -p no:cacheprovider $(call tier,netns)

testbed: deps
	NETFATE_ALL_TIERS=1 $(BIN)/pytest -p no:cacheprovider $(call tier,testbed)

# The platform's benchmarks and every registered service's (their contracts'), as
# `netfate bench list` names them.
bench: deps
	@for b in $$($(BIN)/netfate bench list); do $(BIN)/netfate bench $$b --json; done

clean-testbed: venv
	$(BIN)/netfate testbed clean
