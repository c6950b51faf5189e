# ovs-agent — build, run and test.
#
#   make run     start an agent in the foreground on an embedded default
#                configuration (everything under ./.run, API on 127.0.0.1:8899)
#   make test    the whole test suite (unit, fuzz seeds, end to end)
#   make bench   benchmarks, reported against limits measured in the same run
#   make lint    gofmt check and go vet
#   make testguest  build the QEMU test guest (test/guest/build.sh), or find
#                it in its cache
#   make deb     the Debian package, bin/ovs-agent_VERSION_ARCH.deb
#                (packaging/deb.sh: nfpm, man pages, completion)
#   make deb-test  build it, lintian it, install it on this machine, try it
#                and purge it (root; packaging/deb-test.sh; .ci/run runs it)

GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
RUNDIR   ?= $(CURDIR)/.run
PREFIX   ?= /usr
TESTFLAGS ?=

CMDS := ovs-agent ovs-vmm ovm

.PHONY: all build run test bench lint fuzz install clean testguest deb deb-test

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/ovs-agent serve --run-dir $(RUNDIR)

test: lint
	$(GO) test -count=1 -timeout 15m $(TESTFLAGS) ./...

# bench: the qemu engine's benchmarks (test/bench_qemu*_test.go: plain
# QEMU and the engine moving the test guest, OVS_QEMU_BENCH_MOVES moves per
# size, default 3; boots and ACPI shutdowns) and the migration scenarios a-d
# on each memory backing, unpinned and pinned, with the QEMU anchor
# (test/bench_migration_test.go, BenchmarkScenarios: about 8 minutes) take
# minutes on tcg, hence the timeout of the test package.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 45m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# testguest prints the directory holding the test guest's vmlinux and initrd.
testguest:
	test/guest/build.sh

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ovs $(DESTDIR)/etc/ovs-agent $(DESTDIR)/lib/systemd/system $(DESTDIR)/etc/init.d
	install -m 0755 $(BIN)/ovs-agent $(DESTDIR)$(PREFIX)/sbin/ovs-agent
	install -m 0755 $(BIN)/ovs-vmm $(DESTDIR)$(PREFIX)/sbin/ovs-vmm
	install -m 0755 scripts/ovs-makerepo scripts/ovs-offlinerepo scripts/ovsrepositories $(DESTDIR)$(PREFIX)/lib/ovs/
	install -m 0755 scripts/ovsrepositories $(DESTDIR)/etc/init.d/ovsrepositories
	install -m 0755 $(BIN)/ovm $(DESTDIR)$(PREFIX)/bin/ovm
	install -m 0644 scripts/ovs-agent.service $(DESTDIR)/lib/systemd/system/ovs-agent.service
	install -m 0644 scripts/ovs-agent-api.socket scripts/ovs-agent-unix.socket scripts/ovsrepositories.service $(DESTDIR)/lib/systemd/system/
	install -m 0755 scripts/ovs-agent $(DESTDIR)/etc/init.d/ovs-agent
	test -e $(DESTDIR)/etc/ovs-agent/agent.ini || install -m 0600 config/agent.ini.example $(DESTDIR)/etc/ovs-agent/agent.ini

# deb: packaging/nfpm.yaml, packed by the nfpm tool go.mod names (go tool
# nfpm), with the binaries of build stripped, the manual pages and the
# completion scripts they write; DEB_VERSION, DEB_MAINTAINER override.
deb: build
	BIN=$(BIN) GO=$(GO) packaging/deb.sh $(BIN)

deb-test: deb
	packaging/deb-test.sh $(BIN)/ovs-agent_*.deb

clean:
	rm -rf $(BIN)
