# orchestrator-agent
#
#   make              build build/orchestrator-agent
#   make check        build and run every test (SANITIZE=1: under ASan+UBSan)
#   make demo         the main job on a throwaway local PostgreSQL
#   make install      PREFIX=/usr/local DESTDIR=
#   make deps         install build and test dependencies (Debian packages)

PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DESTDIR		?=

CC		?= cc
SANITIZE	?= 0
PKGS		:= libpq json-c inih libcrypto libcurl libsystemd libzstd zlib
PKG_CFLAGS	:= $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
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

ALL_CFLAGS	= -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(OPT) $(PKG_CFLAGS) \
		  -I$(BUILD) -Iagent $(CFLAGS)
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

.PHONY: FORCE all check check-run demo demo-run install uninstall deps deps-quiet clean

all: $(BIN)

$(BUILD)/.dir:
	@mkdir -p $(BUILD)/tests && touch $@

$(BUILD)/%.o: agent/%.c agent/*.h | $(BUILD)/.dir
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The list itself is a prerequisite, so a removed migration rebuilds too.
$(BUILD)/migrations.list: FORCE | $(BUILD)/.dir
	@echo '$(MIGRATIONS)' | cmp -s - $@ || echo '$(MIGRATIONS)' > $@

$(BUILD)/migrations_gen.c: agent/embed-sql.sh $(MIGRATIONS) $(BUILD)/migrations.list | $(BUILD)/.dir
	agent/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

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
	tests/terraform/check.sh
	tests/check-install.sh
	tests/fakegcs/run-tests.sh
	PGTEST_FSYNC=on tests/pgtest.sh run $(BUILD)/restart-tests --jobs 1
	tests/pgtest.sh run $(BUILD)/integration-tests $(CRITERION_ARGS)

demo: deps-quiet
	@$(MAKE) --no-print-directory demo-run

demo-run: $(BIN)
	rm -rf .demo
	tests/pgtest.sh --dir .demo run tests/demo.sh $(abspath $(BIN))

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/orchestrator-agent
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/orchestrator-agent
	install -m 0644 docs/orchestrator-agent.8 $(DESTDIR)$(MANDIR)/man8/orchestrator-agent.8
	install -m 0640 docs/agent.ini.example $(DESTDIR)$(SYSCONFDIR)/orchestrator-agent/agent.ini.example

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/orchestrator-agent \
		$(DESTDIR)$(MANDIR)/man8/orchestrator-agent.8 \
		$(DESTDIR)$(SYSCONFDIR)/orchestrator-agent/agent.ini.example

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
