# orchestrator-agent
#
#   make              build build/orchestrator-agent
#   make check        build and run every test (SANITIZE=1: under ASan+UBSan)
#   make demo         the main job on a throwaway local PostgreSQL
#   make install      PREFIX=/usr/local DESTDIR= (binary, man page, sample
#                     config, systemd units, tmpfiles.d)
#   make deb          build/orchestrator-agent_VERSION_ARCH.deb (dpkg-dev only)
#   make deps         install build and test dependencies (Debian packages)

PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR		?= $(PREFIX)/lib/systemd/system
TMPFILESDIR	?= $(PREFIX)/lib/tmpfiles.d
DESTDIR		?=

CC		?= cc
SANITIZE	?= 0
PKGS		:= libpq json-c inih libcrypto zlib
# Headers only: agent/dl.c loads these at first use, so that an idle worker
# does not carry them (and their dependencies) in memory.
DL_PKGS		:= libcurl libmicrohttpd libzstd
PKG_CFLAGS	:= $(shell pkg-config --cflags $(PKGS) $(DL_PKGS) 2>/dev/null)
PKG_LIBS	:= $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN		:= -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith \
		   -Wstrict-prototypes -Wmissing-prototypes -Wvla
HARDEN		:= -fstack-protector-strong -fstack-clash-protection \
		   -fcf-protection -fPIE
ifeq ($(SANITIZE),1)
BUILD		:= build/sanitize
OPT		:= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
		   -fno-sanitize-recover=all
SANLDFLAGS	:= -fsanitize=address,undefined
else
BUILD		:= build
OPT		:= -O2 -g -D_FORTIFY_SOURCE=2
SANLDFLAGS	:=
endif

# -iquote: agent/sched.h must not shadow the system's <sched.h>.
ALL_CFLAGS	= -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(OPT) $(PKG_CFLAGS) \
		  -I$(BUILD) -iquote agent $(CFLAGS)
ALL_LDFLAGS	= -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(SANLDFLAGS) $(LDFLAGS)

SRCS		:= $(wildcard agent/*.c)
LIB_OBJS	:= $(patsubst agent/%.c,$(BUILD)/%.o,$(filter-out agent/main.c,$(SRCS))) \
		   $(BUILD)/migrations_gen.o
BIN		:= $(BUILD)/orchestrator-agent
MIGRATIONS	:= $(sort $(wildcard sql/[0-9]*.sql))

UNIT_SRCS	:= $(wildcard tests/unit/*.c)
INTEG_SRCS	:= $(wildcard tests/integration/*.c)
RESTART_SRCS	:= $(wildcard tests/restart/*.c)
TEST_CFLAGS	= $(ALL_CFLAGS) -Itests $(shell pkg-config --cflags criterion 2>/dev/null)
TEST_LIBS	= $(shell pkg-config --libs criterion 2>/dev/null) $(PKG_LIBS)

.PHONY: FORCE all check check-run demo demo-run install uninstall deb deps deps-quiet clean

all: $(BIN)

$(BUILD)/.dir:
	@mkdir -p $(BUILD)/tests && touch $@

$(BUILD)/%.o: agent/%.c agent/*.h | $(BUILD)/.dir
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The list itself is a prerequisite, so a removed migration rebuilds too.
$(BUILD)/migrations.list: FORCE | $(BUILD)/.dir
	@echo '$(MIGRATIONS)' | cmp -s - $@ || echo '$(MIGRATIONS)' > $@

$(BUILD)/migrations_gen.c: agent/embed-sql.sh $(MIGRATIONS) $(BUILD)/migrations.list | $(BUILD)/.dir
	bash agent/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/migrations_gen.o: $(BUILD)/migrations_gen.c agent/migrate.h
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BIN): $(BUILD)/main.o $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%.o: tests/%.c tests/*.h agent/*.h | $(BUILD)/.dir
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(UNIT_SRCS) tests/helpers.c) $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS)

$(BUILD)/integration-tests: $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(INTEG_SRCS) tests/helpers.c tests/fake.c) $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS)

$(BUILD)/restart-tests: $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(RESTART_SRCS) tests/helpers.c) $(LIB_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS)

# Criterion forks per test; two jobs match the two-core CI machine.
CRITERION_ARGS	?= --jobs 2
export AGENT_BIN = $(abspath $(BIN))
export OA_SOURCE_DIR = $(abspath .)
export ASAN_OPTIONS = detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS = suppressions=$(abspath tests/lsan.supp):print_suppressions=0

# check and demo install dependencies first, then re-enter make so that
# pkg-config sees the freshly installed libraries.
check: deps-quiet
	@$(MAKE) --no-print-directory check-run

check-run: $(BIN) $(BUILD)/unit-tests $(BUILD)/integration-tests $(BUILD)/restart-tests
	$(BUILD)/unit-tests $(CRITERION_ARGS)
	+tests/check-install.sh
	tests/terraform/check.sh
	+tests/systemd/check.sh
	tests/provision/check.sh
	tests/provision/install.sh
	$(if $(filter 1,$(SANITIZE)),@echo "deb-check: skipped under SANITIZE=1 (the package holds the normal build)",+tests/deb/check.sh)
	tests/fakegcs/run-tests.sh
	PGTEST_FSYNC=on tests/pgtest.sh run $(BUILD)/restart-tests --jobs 1
	tests/pgtest.sh run $(BUILD)/integration-tests $(CRITERION_ARGS)

demo: deps-quiet
	@$(MAKE) --no-print-directory demo-run

demo-run: $(BIN)
	rm -rf .demo
	tests/pgtest.sh --dir .demo run tests/demo.sh $(abspath $(BIN))

UNITS		:= $(notdir $(wildcard systemd/*.service systemd/*.timer systemd/*.target))

# The units name /usr/bin/orchestrator-agent; other prefixes get BINDIR.
install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/orchestrator-agent \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/orchestrator-agent
	install -m 0644 docs/orchestrator-agent.8 $(DESTDIR)$(MANDIR)/man8/orchestrator-agent.8
	install -m 0644 docs/agent.ini.example $(DESTDIR)$(SYSCONFDIR)/orchestrator-agent/agent.ini.example
	for u in $(UNITS); do \
		sed 's|/usr/bin/orchestrator-agent|$(BINDIR)/orchestrator-agent|g' systemd/$$u \
			> $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 systemd/orchestrator-agent.tmpfiles $(DESTDIR)$(TMPFILESDIR)/orchestrator-agent.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/orchestrator-agent \
		$(DESTDIR)$(MANDIR)/man8/orchestrator-agent.8 \
		$(DESTDIR)$(SYSCONFDIR)/orchestrator-agent/agent.ini.example \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
		$(DESTDIR)$(TMPFILESDIR)/orchestrator-agent.conf

# A Debian package from `make install PREFIX=/usr` with dpkg-dev's tools
# (packaging/deb/; no debhelper), so the VM can build it from source.
# Scripts run through their interpreter: a source zip may lose exec bits.
VERSION		:= $(shell sed -n 's/^\#define AGENT_VERSION[[:space:]]*"\(.*\)"/\1/p' agent/version.h)

deb: $(BIN)
	$(if $(filter 1,$(SANITIZE)),$(error make deb: not with SANITIZE=1))
	rm -rf build/deb
	@$(MAKE) --no-print-directory -s install PREFIX=/usr \
		DESTDIR=$(abspath build/deb/debian/orchestrator-agent)
	sh packaging/deb/build.sh build/deb build $(VERSION)

deps:
	tests/deps.sh

# Quick when everything is present already.
deps-quiet:
	@tests/deps.sh --quiet

clean:
	rm -rf build .demo

# Queue benchmark: the worker against graphile-worker and pg-boss on one
# throwaway PostgreSQL with fsync on (bench/README.md; ~10 minutes).  Knobs
# pass through the environment, e.g. BENCH_TASKS=10000 BENCH_RUNS=1.
.PHONY: bench-queue bench-queue-run
bench-queue: deps-quiet
	@$(MAKE) --no-print-directory bench-queue-run

bench-queue-run: $(BIN)
	bench/queue/run.sh $(abspath $(BIN))

# Backup benchmark: agent backup vs pg_dump's floor and gzip-6 on a
# pgbench database (BENCH_SCALE=70, about 1 GB; bench/README.md).
.PHONY: bench-backup bench-backup-run
bench-backup: deps-quiet
	@$(MAKE) --no-print-directory bench-backup-run

bench-backup-run: $(BIN)
	bench/backup/run.sh $(abspath $(BIN))
