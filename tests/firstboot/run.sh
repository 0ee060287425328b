#!/usr/bin/env bash
# run.sh - the VM's first boot, end to end, in a booted container
# (make check-firstboot; part of make check).
#
# A Debian 12 root (tests/firstboot/root.sh, cached under build/firstboot)
# is booted with systemd-nspawn -b: systemd 252 as PID 1, cloud-init 22.4
# with the NoCloud datasource reading the project's own
# provision/cloud-init.yaml as user-data (the file Terraform sends), and
# PostgreSQL 15 under systemd.  Google is the project's fake
# (tests/fakegcs/server.py) inside a network namespace this test makes: the
# metadata server at 169.254.169.254:80 (metadata.google.internal in the
# root's /etc/hosts, as on GCE), Cloud Storage holding the packages and
# receiving backups, Secret Manager holding the password.  A second
# namespace, joined by a veth pair, plays Cloud Run's connector (10.8.0.3 in
# oa-connector-cidr 10.8.0.0/28) and a host outside it (10.9.0.3).  Nothing
# here connects to a non-loopback address from the host's own namespace.
#
# The packages are built with `make deb` from a clone of HEAD (committed
# work only), at HEAD and at one empty commit after it: two versions, the
# second newer.
#
# Asserted, in order: cloud-init done without errors and no failed unit;
# PostgreSQL with the role, database and schema, the password working from
# the connector range only; worker 1 active (Type=notify: after READY) and
# the timers scheduled; a task inserted as the orchestrator does is
# finished; the backup unit leaves a dump in the bucket that verifies;
# doctor exits 0; a second boot converges with nothing redone or lost; a
# newer package in the metadata is installed without a reboot and the worker
# runs it; a tampered package and an older one are refused while the newer
# keeps running, and doctor says so.
#
# Cleans up every process, mount, namespace and cgroup it made, also when
# it fails.  Skipped, saying why, where a container cannot boot (not root,
# no systemd-nspawn); under CI=true a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD

say() { echo "firstboot: $*" >&2; }
skip() {
	if [ "${CI:-}" = true ]; then
		say "FAIL: cannot run in CI: $*"
		exit 1
	fi
	echo "firstboot: skipped: $*"
	echo "firstboot: 0 passed, 0 failed, 1 skipped"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "booting a container needs root (CI runs as root)"
for c in systemd-nspawn debootstrap ip nsenter git dpkg-deb; do
	command -v "$c" >/dev/null || skip "$c is not installed (make deps installs systemd-container and debootstrap)"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || skip "the kernel has no overlay filesystem"

root=$top/build/firstboot/root
tests/firstboot/root.sh "$root"

t=$(mktemp -d /tmp/oa-firstboot.XXXXXX)
id=$$
vm=oa-fb-$id cl=oa-fbc-$id
# shellcheck source=tests/firstboot/cgroup.sh
. tests/firstboot/cgroup.sh
cg=oa-firstboot-$id
fake='' nspawn=''

# --- cleanup: processes by PID, the overlay, the namespaces, the cgroups.
stop_container() {
	[ -n "$nspawn" ] || return 0
	# SIGTERM asks nspawn to shut the container down cleanly.
	kill -TERM "$nspawn" 2>/dev/null || true
	for _ in $(seq 60); do
		kill -0 "$nspawn" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$nspawn" 2>/dev/null || true
	wait "$nspawn" 2>/dev/null || true
	nspawn=''
}
cleanup() {
	local rc=$?
	set +e
	if [ "$rc" -ne 0 ] && [ -n "$nspawn" ] && [ -n "${pid1:-}" ]; then
		say "the installer's journal in the container (last 60 lines):"
		vm journalctl --no-pager -n 60 -u orchestrator-agent-install.service \
			-u orchestrator-agent-install-watch.service >&2
	fi
	stop_container
	cg_remove "$cg"
	[ -z "$fake" ] || { kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null; }
	mountpoint -q "$t/merged" && umount "$t/merged"
	ip netns del "$vm" 2>/dev/null
	ip netns del "$cl" 2>/dev/null
	if [ "$rc" -ne 0 ] && [ -f "$t/console.log" ]; then
		say "the container's console (last 40 lines):"
		tail -n 40 "$t/console.log" >&2
	fi
	if [ -n "${FIRSTBOOT_KEEP:-}" ]; then
		say "kept $t"
	else
		rm -rf "$t"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the two packages: HEAD, and one commit later.
say "building the packages from a clone of HEAD"
# A clean make: not the calling make's flags (SANITIZE=1 and the like).
unset MAKEFLAGS MAKELEVEL MFLAGS SANITIZE
git clone -q "$top" "$t/src"
deb1=$(make -C "$t/src" --no-print-directory -s -j2 deb | tail -n 1)
deb1=$t/src/$deb1
cp "$deb1" "$t/"
deb1=$t/${deb1##*/}
git -C "$t/src" -c user.name=firstboot -c user.email=firstboot@example.invalid \
	commit -q --allow-empty -m "firstboot: a newer commit"
deb2=$t/src/$(make -C "$t/src" --no-print-directory -s -j2 deb | tail -n 1)
v1=$(dpkg-deb -f "$deb1" Version) v2=$(dpkg-deb -f "$deb2" Version)
dpkg --compare-versions "$v2" gt "$v1" || {
	say "FAIL: make deb at two commits gave versions $v1 and $v2; the second must be newer"
	exit 1
}
say "packages: $v1 and $v2"

# --- network: the VM's namespace (fakes and container) and a client's.
ip netns add "$vm"
ip netns add "$cl"
ip -n "$vm" link set lo up
ip -n "$vm" addr add 169.254.169.254/32 dev lo
ip -n "$cl" link set lo up
ip link add "fbv$id" netns "$vm" type veth peer name "fbc$id" netns "$cl"
ip -n "$vm" addr add 10.128.0.2/24 dev "fbv$id"
ip -n "$vm" link set "fbv$id" up
ip -n "$vm" route add 10.8.0.0/28 dev "fbv$id"
ip -n "$vm" route add 10.9.0.3/32 dev "fbv$id"
ip -n "$cl" addr add 10.8.0.3/28 dev "fbc$id"
ip -n "$cl" addr add 10.9.0.3/32 dev "fbc$id"
ip -n "$cl" link set "fbc$id" up
ip -n "$cl" route add 10.128.0.0/24 dev "fbc$id" src 10.8.0.3

# --- Google: metadata, Cloud Storage and Secret Manager in the VM's namespace.
ip netns exec "$vm" /usr/bin/python3 tests/fakegcs/server.py --host 0.0.0.0 --port 80 \
	--port-file "$t/fake.port" --data-dir "$t/fake" 2>"$t/fake.log" &
fake=$!
for _ in $(seq 100); do [ -s "$t/fake.port" ] && break; sleep 0.1; done
[ -s "$t/fake.port" ] || { say "FAIL: the fake server did not start: $(cat "$t/fake.log")"; exit 1; }
# c METHOD PATH [CURL-ARGS...]: the fake's control API, from inside.
c() { ip netns exec "$vm" curl -fsS -X "$1" "http://127.0.0.1/_fake/$2" "${@:3}"; }
cj() { c "$1" "$2" -H 'Content-Type: application/json' -d "$3" >/dev/null; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# publish DEB [SHA]: upload DEB to the artifacts bucket and point the
# metadata at it, as terraform apply does.
publish() {
	local obj=packages/${1##*/}
	c POST "object/oa-artifacts/$obj" --data-binary "@$1" >/dev/null
	cj POST config "{\"metadata\":{\"attributes\":{\"oa-agent-package\":\"gs://oa-artifacts/$obj\",\"oa-agent-sha256\":\"${2:-$(sha "$1")}\"}}}"
}
pw=$(openssl rand -hex 18)
cj POST config "{\"buckets\":{\"oa-artifacts\":{},\"oa-backups\":{}},
	\"secrets\":{\"projects/fake-project/secrets/pg-password\":[\"$pw\"]},
	\"metadata\":{\"ip\":\"10.128.0.2\",\"instance_name\":\"orchestrator-postgres-vm\",
	\"attributes\":{\"oa-db-name\":\"orchestrator\",\"oa-db-user\":\"orchestrator\",
	\"oa-password-secret\":\"projects/fake-project/secrets/pg-password\",
	\"oa-backup-target\":\"gs://oa-backups/backups\",\"oa-connector-cidr\":\"10.8.0.0/28\",
	\"oa-workers\":\"1\"}}}"
publish "$deb1"

# --- the container's root: the cached image under an overlay, plus what
# GCE would give it (the user-data) and the test's configuration.
mkdir -p "$t/upper" "$t/work" "$t/merged"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$t/upper,workdir=$t/work" "$t/merged"
m=$t/merged
mkdir -p "$m/var/lib/cloud/seed/nocloud"
cp provision/cloud-init.yaml "$m/var/lib/cloud/seed/nocloud/user-data"
printf 'instance-id: oa-firstboot-%s\nlocal-hostname: orchestrator-postgres-vm\n' "$id" \
	>"$m/var/lib/cloud/seed/nocloud/meta-data"
# The fake's Cloud Storage for every unit (the agent's and the installer's
# STORAGE_EMULATOR_HOST); Secret Manager in agent.ini, which bootstrap
# keeps; a handler for the seed's task type.
mkdir -p "$m/etc/systemd/system.conf.d" "$m/etc/orchestrator-agent"
printf '[Manager]\nDefaultEnvironment=STORAGE_EMULATOR_HOST=http://127.0.0.1:80\n' \
	>"$m/etc/systemd/system.conf.d/oa-firstboot.conf"
cat >"$m/etc/orchestrator-agent/agent.ini" <<'EOF'
[gcs]
secretmanager_endpoint = http://127.0.0.1:80

[handler.consumer_triage]
kind = exec
command = /bin/cat
timeout_seconds = 30
EOF

# boot: systemd-nspawn -b in the VM's namespace, in cgroups of its own.
boot() {
	: >"$t/console.log"
	(
		cg_enter "$cg"
		exec systemd-nspawn -q -D "$m" -b --register=no --keep-unit \
			--network-namespace-path="/run/netns/$vm" -M orchestrator-postgres-vm \
			</dev/null >>"$t/console.log" 2>&1
	) &
	nspawn=$!
	pid1=''
	for _ in $(seq 100); do
		pid1=$(pgrep -P "$nspawn" -x systemd || true)
		[ -n "$pid1" ] && break
		sleep 0.2
	done
	[ -n "$pid1" ] || { say "FAIL: the container's systemd did not start"; exit 1; }
	# Up when systemd says the boot is over (running or degraded); its
	# bus may not answer in the first moments.
	local state='' n=600
	while [ "$n" -gt 0 ]; do
		state=$(vm systemctl is-system-running 2>/dev/null || true)
		case $state in running | degraded | maintenance | stopping) break ;; esac
		sleep 0.5
		n=$((n - 1))
	done
	say "booted: ${state:-no answer from systemd in the container}"
}
# vm COMMAND...: run in the container (all its namespaces), clean environment.
# The fake's Cloud Storage, as the units have it (DefaultEnvironment).
vm() {
	nsenter -t "$pid1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
		STORAGE_EMULATOR_HOST=http://127.0.0.1:80 "$@"
}
psql_vm() { vm runuser -u postgres -- psql -X -qAt -d orchestrator -c "$1"; }
# wait_for SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
	local n=$(($1 * 2))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
		n=$((n - 1))
	done
	return 1
}

passed=0 failed=0
fail() { say "FAIL: $*"; failed=$((failed + 1)); }
# expect WHAT COMMAND...: a table row run as a check.
expect() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
	else
		fail "$what: $(printf '%s' "$out" | tail -n 15)"
	fi
}
eq() { [ "$1" = "$2" ] || { echo "got '$1', expected '$2'"; return 1; }; }
has() { [[ $1 == *"$2"* ]] || { echo "'$2' not in: $1"; return 1; }; }
no_failed_units() { eq "$(vm systemctl --failed --no-legend --plain)" ""; }
cloud_init_done() {
	local s e
	s=$(vm cloud-init status --long)
	e=$(vm cat /run/cloud-init/result.json | jq -c '.v1.errors')
	if ! has "$s" "status: done" || ! eq "$e" "[]"; then
		echo "$s"
		echo "errors: $e"
		vm sh -c 'grep -E "WARNING|ERROR|Traceback" /var/log/cloud-init.log | tail -n 20'
		return 1
	fi
}
client_psql() { # FROM-ADDRESS PASSWORD
	ip -n "$cl" route replace 10.128.0.0/24 dev "fbc$id" src "$1"
	ip netns exec "$cl" env PGPASSWORD="$2" PGCONNECT_TIMEOUT=5 \
		psql -X -qAt "host=10.128.0.2 dbname=orchestrator user=orchestrator" -c 'select 42' 2>&1
}
worker_pid() { vm systemctl show -P MainPID orchestrator-agent-worker@1.service; }
# shellcheck disable=SC2016 # dpkg-query's format
installed() { vm dpkg-query -W -f='${Version}' orchestrator-agent; }
state_json() { vm cat /var/lib/orchestrator-agent-install/state.json; }
timers_scheduled() {
	local out u
	out=$(vm systemctl list-timers --all --no-legend --plain 'orchestrator-agent-*')
	for u in backup maintain metrics; do
		grep -E "orchestrator-agent-$u\.timer" <<<"$out" | grep -qv '^n/a' ||
			{ echo "timer $u not scheduled: $out"; return 1; }
	done
}
task_finished() {
	eq "$(psql_vm "SELECT status FROM tasks WHERE task_id = '$1'")" finished
}
insert_task() {
	# The seed's client INSERT, as the orchestrator on Cloud Run runs it.
	psql_vm "INSERT INTO tasks (task_id, skill_name, task_type, status, source_repo, target_repo, change_event, relationship_config) VALUES ('$1', 'trigger_consumer_triage', 'consumer_triage', 'queued', 'owner/source', 'owner/consumer', '{\"commit_sha\":\"abc\"}', '{\"interface_files\":[\"api.py\"]}')"
}

# ============================================================ first boot
say "first boot"
boot
expect "cloud-init done without errors" cloud_init_done
expect "no failed unit" no_failed_units
expect "the installer installed $v1" eq "$(installed)" "$v1"
expect "PostgreSQL is running" vm systemctl is-active postgresql@15-main.service
expect "role and database" eq "$(psql_vm "SELECT count(*) FROM pg_roles r JOIN pg_database d ON d.datdba = r.oid WHERE r.rolname = 'orchestrator' AND d.datname = 'orchestrator'")" 1
expect "schema current" eq "$(psql_vm "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('tasks', 'task_history', 'workers')")" 3
expect "the password works from the connector range" eq "$(client_psql 10.8.0.3 "$pw")" 42
expect "a wrong password is refused" has "$(client_psql 10.8.0.3 wrong || true)" "password authentication failed"
expect "outside the connector range is refused" has "$(client_psql 10.9.0.3 "$pw" || true)" "no pg_hba.conf entry"
unit_state() { echo "$(vm systemctl show -P Type "$1") $(vm systemctl show -P ActiveState "$1")"; }
expect "worker 1 is active (Type=notify: after READY)" eq "$(unit_state orchestrator-agent-worker@1.service)" "notify active"
expect "the timers are scheduled" timers_scheduled
insert_task fb-task-1
expect "a task inserted as the orchestrator does is finished" wait_for 30 task_finished fb-task-1
expect "the backup unit succeeds" vm systemctl start orchestrator-agent-backup.service
expect "the backup is in the bucket" has "$(c GET objects/oa-backups)" '"name": "backups/'
expect "the backup verifies" vm runuser -u orchestrator-agent -- orchestrator-agent backup verify latest
expect "the maintain unit succeeds" vm systemctl start orchestrator-agent-maintain.service
expect "the metrics unit succeeds" vm systemctl start orchestrator-agent-metrics.service
doctor_ok() { vm orchestrator-agent doctor >"$t/doctor.out" 2>&1 || { grep -v '\[✓\]' "$t/doctor.out"; return 1; }; }
expect "doctor exits 0" doctor_ok

# ============================================================ second boot
say "second boot"
backups_before=$(c GET objects/oa-backups | jq -c '[.items[].name]')
stop_container
boot
expect "second boot: no failed unit" no_failed_units
expect "second boot: nothing reinstalled" has "$(vm journalctl -b -u orchestrator-agent-install.service --no-pager -o cat)" "is installed already"
expect "second boot: still $v1" eq "$(installed)" "$v1"
expect "second boot: the task is still finished" task_finished fb-task-1
expect "second boot: the backups are all there" eq "$(c GET objects/oa-backups | jq -c '[.items[].name]')" "$backups_before"
expect "second boot: worker 1 is active" vm systemctl is-active orchestrator-agent-worker@1.service
insert_task fb-task-2
expect "second boot: a new task is finished" wait_for 30 task_finished fb-task-2

# ============================================================ upgrade
say "upgrade to $v2 through the metadata"
old_pid=$(worker_pid)
publish "$deb2"
installed_is() { eq "$(installed)" "$1"; }
expect "the newer package is installed without a reboot" wait_for 120 installed_is "$v2"
worker_runs() {
	eq "$(psql_vm "SELECT version FROM workers WHERE stopped_at IS NULL AND pid = $(worker_pid)")" "$1"
}
expect "the worker runs $v2" wait_for 60 worker_runs "$v2"
expect "the worker was restarted" test "$(worker_pid)" != "$old_pid"
insert_task fb-task-3
expect "after the upgrade a task is finished" wait_for 30 task_finished fb-task-3

# ============================================================ refusals
last_result() { eq "$(state_json | jq -r .last.result)" "$1"; }
say "a tampered package"
# Terraform published deb1's sha256; the object holds other bytes.
cp "$deb1" "$t/orchestrator-agent_tampered.deb"
printf 'x' >>"$t/orchestrator-agent_tampered.deb"
pid_before=$(worker_pid)
publish "$t/orchestrator-agent_tampered.deb" "$(sha "$deb1")"
expect "the tampered package is refused" wait_for 120 last_result refused
expect "refusal names the sha256" has "$(state_json | jq -r .last.message)" "sha256"
expect "after the tamper $v2 stays" eq "$(installed)" "$v2"
expect "after the tamper the worker keeps running" eq "$(worker_pid)" "$pid_before"
expect "doctor shows the refusal" has "$(vm orchestrator-agent doctor 2>&1 || true)" "refused"

say "an older package"
publish "$deb1"
older_refused() { has "$(state_json | jq -r .last.message)" "older than the installed"; }
expect "the older package is refused" wait_for 120 older_refused
expect "after the older package $v2 stays" eq "$(installed)" "$v2"
expect "after the older package the worker keeps running" eq "$(worker_pid)" "$pid_before"
insert_task fb-task-4
expect "after the refusals a task is finished" wait_for 30 task_finished fb-task-4

echo "firstboot: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
