#!/bin/sh
# deb-test.sh PACKAGE.deb (make deb-test; .ci/run runs it as root).
#
# Lints the package (lintian: no error may remain), installs it into a
# throwaway root (dpkg --root) and purges it there, installs it on this
# machine with dpkg, and checks what an operator sees: the files where the
# package says, the password hint, nothing started or enabled,
# `ovs-agent check-config` and `ovs-agent status` from the installed
# paths, the manual pages and the completion. Then an agent started by the
# installed init script (on a configuration of the test's own: unix socket
# only, sim engine, everything under a temporary folder) runs a domain,
# and the test checks that stopping the agent, reinstalling (an upgrade)
# and removing the package all leave that domain's ovs-vmm running, and
# that a restarted agent finds it again. Last, the purge leaves nothing of
# the package: every file, directory, unit state and rc.d link it made is
# gone, and a state directory that still holds a domain is kept.
#
# It restores the machine whatever happens: the processes it started are
# stopped by their pids and the package is purged. It refuses to run where
# ovs-agent is installed already (as a package or by make install).
set -eu

deb=${1:?usage: packaging/deb-test.sh PACKAGE.deb}
[ -f "$deb" ] || { echo "deb-test: $deb: no such package" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "deb-test: needs root (dpkg -i)" >&2; exit 1; }
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check DESCRIPTION COMMAND...: COMMAND must succeed
	d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
die() {
	bad "$*"
	exit 1
}

if dpkg-query -W -f='${db:Status-Status}' ovs-agent 2>/dev/null | grep -qv '^not-installed$'; then
	echo "deb-test: the package ovs-agent is on this machine already; deb-test installs and purges it: remove it first" >&2
	exit 1
fi
for p in /usr/sbin/ovs-agent /usr/sbin/ovs-vmm /usr/bin/ovm /usr/lib/ovs /etc/ovs-agent /etc/init.d/ovs-agent /var/lib/ovs-agent /var/log/ovs-agent; do
	if [ -e "$p" ]; then
		echo "deb-test: $p exists (make install?); deb-test would take it over: remove it first" >&2
		exit 1
	fi
done

T=$(mktemp -d /tmp/ovs-agent-deb-test.XXXXXX)
agent_pid=
vmm_pid=
# What the package may touch outside its own files, before it came.
state_snapshot() {
	find /etc/systemd/system /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d /etc/rc6.d /etc/rcS.d \
		/var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
		/etc/ovs-agent /var/lib/ovs-agent /var/log/ovs-agent /usr/lib/ovs 2>/dev/null | sort
}
state_snapshot >"$T/before"

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
stop_pid() { # stop_pid PID: TERM, then KILL after 30 s
	alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null || true
	i=0
	while alive "$1" && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	alive "$1" && kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
	rc=$?
	stop_pid "$vmm_pid"
	if [ -f "$T/agent.pid" ]; then stop_pid "$(cat "$T/agent.pid")"; fi
	stop_pid "$agent_pid"
	if dpkg-query -W -f='${db:Status-Status}' ovs-agent 2>/dev/null | grep -qv '^not-installed$'; then
		dpkg -P ovs-agent >/dev/null 2>&1 || echo "deb-test: could not purge ovs-agent: dpkg -P ovs-agent" >&2
	fi
	rm -rf /var/lib/ovs-agent/deb-test-domain
	rmdir /var/lib/ovs-agent 2>/dev/null || true
	rm -rf "$T"
	echo "$passed passed, $failed failed"
	[ $rc -eq 0 ] && [ $failed -eq 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- lintian
if lintian --fail-on error "$deb" >"$T/lintian" 2>&1; then
	ok "lintian: no errors ($(grep -c '^W:' "$T/lintian" || true) warnings)"
else
	bad "lintian found errors"
fi
grep -v '^running with root privileges' "$T/lintian" | sed 's/^/  lintian: /' || true

# --- into a throwaway root (dpkg --root: the maintainer scripts run here
# with DPKG_ROOT set and must touch nothing outside it)
R="$T/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
: >"$R/var/lib/dpkg/status"
if dpkg --root="$R" --force-script-chrootless --force-depends -i "$deb" >"$T/root-install" 2>&1; then
	ok "dpkg --root: install into a throwaway root"
	check "  its state directory is made there, 0700" test "$(stat -c %a "$R/var/lib/ovs-agent" 2>/dev/null)" = 700
	check "  the password hint is printed" grep -q "ovs-agent configure" "$T/root-install"
	out=$("$R/usr/sbin/ovs-agent" check-config --config "$R/etc/ovs-agent/agent.ini" 2>&1) && ok "  its ovs-agent check-config: $out" || bad "its ovs-agent check-config: $out"
	dpkg --root="$R" --force-script-chrootless -P ovs-agent >"$T/root-purge" 2>&1 && ok "  dpkg --root -P" || { cat "$T/root-purge"; bad "dpkg --root -P"; }
	left=$(find "$R" -mindepth 1 ! -path "$R/var/lib/dpkg*" ! -type d)
	[ -z "$left" ] && ok "  the purge leaves no file in the root" || bad "the root's purge left: $left"
	state_snapshot >"$T/after-root"
	cmp -s "$T/before" "$T/after-root" && ok "  nothing outside the root was touched" || bad "the root install touched: $(diff "$T/before" "$T/after-root" | grep '^[<>]' | tr '\n' ' ')"
else
	cat "$T/root-install"
	bad "dpkg --root -i"
fi

# --- install on this machine
dpkg -i "$deb" >"$T/install" 2>&1 || { cat "$T/install"; die "dpkg -i $deb"; }
ok "dpkg -i"
check "the password hint is printed" grep -q "ovs-agent configure" "$T/install"
for f in /usr/sbin/ovs-agent /usr/sbin/ovs-vmm /usr/bin/ovm /usr/lib/ovs/ovs-makerepo /usr/lib/ovs/ovs-offlinerepo \
	/usr/lib/ovs/ovsrepositories /etc/init.d/ovs-agent /etc/init.d/ovsrepositories; do
	check "$f is executable" test -x "$f"
done
for f in /lib/systemd/system/ovs-agent.service /lib/systemd/system/ovs-agent-api.socket /lib/systemd/system/ovs-agent-unix.socket \
	/lib/systemd/system/ovsrepositories.service /etc/logrotate.d/ovs-agent /usr/share/bash-completion/completions/ovm \
	/usr/share/zsh/vendor-completions/_ovm /usr/share/man/man8/ovs-agent.8.gz /usr/share/man/man1/ovm.1.gz \
	/usr/share/man/man8/ovs-vmm.8.gz /usr/share/man/man5/agent.ini.5.gz /usr/share/doc/ovs-agent/copyright; do
	check "$f is installed" test -f "$f"
done
check "/etc/ovs-agent/agent.ini is a conffile" grep -qx /etc/ovs-agent/agent.ini /var/lib/dpkg/info/ovs-agent.conffiles
check "agent.ini is the documented example" cmp -s /etc/ovs-agent/agent.ini "$(dirname "$0")/../config/agent.ini.example"
check "agent.ini is root's alone (0600)" test "$(stat -c %a /etc/ovs-agent/agent.ini)" = 600
check "the state directory /var/lib/ovs-agent is made, 0700" test "$(stat -c %a /var/lib/ovs-agent)" = 700
check "the log directory /var/log/ovs-agent is made" test -d /var/log/ovs-agent

# Nothing started, nothing enabled.
running_installed() {
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/ovs-agent ] && return 0
	done
	return 1
}
if running_installed; then bad "the install started an agent"; else ok "the install started no agent"; fi
if ls /etc/rc[2345].d/S*ovs-agent /etc/rc[2345].d/S*ovsrepositories >/dev/null 2>&1; then
	bad "the init scripts are enabled"
else
	ok "the init scripts are registered disabled"
fi
check "  (registered: K links)" sh -c 'ls /etc/rc0.d/K*ovs-agent /etc/rc6.d/K*ovs-agent' 
if [ -e /etc/systemd/system/multi-user.target.wants/ovs-agent.service ] || [ -e /etc/systemd/system/sockets.target.wants/ovs-agent-api.socket ]; then
	bad "the systemd units are enabled"
else
	ok "the systemd units are not enabled"
fi
out=$(logrotate -d -s "$T/logrotate.state" /etc/logrotate.d/ovs-agent 2>&1) && echo "$out" | grep -q "rotating pattern: /var/log/ovs-agent/\*.log" &&
	ok "logrotate -d reads /etc/logrotate.d/ovs-agent" || bad "logrotate -d /etc/logrotate.d/ovs-agent: $out"
check "systemd-analyze verify the installed units" systemd-analyze verify /lib/systemd/system/ovs-agent.service \
	/lib/systemd/system/ovs-agent-api.socket /lib/systemd/system/ovs-agent-unix.socket /lib/systemd/system/ovsrepositories.service

# The installed commands on the installed configuration.
out=$(/usr/sbin/ovs-agent check-config 2>&1) && ok "ovs-agent check-config: $out" || bad "ovs-agent check-config: $out"
set +e
out=$(/usr/sbin/ovs-agent status 2>&1)
code=$?
set -e
if [ $code -eq 3 ] && echo "$out" | grep -q "not running"; then ok "ovs-agent status: exit 3, $out"; else bad "ovs-agent status: exit $code (want 3): $out"; fi
check "ovm --help runs" /usr/bin/ovm --help
check "ovs-vmm runs (usage: exit 2)" sh -c '/usr/sbin/ovs-vmm; [ $? -eq 2 ]'

# Manual pages and completion.
for page in "8 ovs-agent" "1 ovm" "8 ovs-vmm" "5 agent.ini" "1 ovm-migrate" "8 ovs-agent-check-config"; do
	set -- $page
	check "man $1 $2 is found" man -w "$1" "$2"
done
MANWIDTH=80 man 1 ovm 2>/dev/null | col -b >"$T/ovm.txt" || true
check "man ovm shows the exit status" grep -q "The agent could not be reached" "$T/ovm.txt"
MANWIDTH=80 man 5 agent.ini 2>/dev/null | col -b >"$T/ini.txt" || true
check "man agent.ini documents state_dir" grep -q "state_dir = /var/lib/ovs-agent" "$T/ini.txt"
pages=0
noisy=0
for f in /usr/share/man/man*/ovs-agent*.gz /usr/share/man/man*/ovm*.gz /usr/share/man/man8/ovs-vmm.8.gz /usr/share/man/man5/agent.ini.5.gz; do
	pages=$((pages + 1))
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
	[ -z "$w" ] || { bad "man --warnings $f: $w"; noisy=$((noisy + 1)); }
done
[ $noisy -eq 0 ] && ok "man --warnings is silent on all $pages pages"
check "bash completes ovm" bash -c '. /usr/share/bash-completion/completions/ovm && complete -p ovm | grep -q __start_ovm'
check "bash completion lists ovm's commands" sh -c '/usr/bin/ovm __complete "" | grep -q "^migrate"'
check "the zsh completion is a #compdef file" sh -c 'head -1 /usr/share/zsh/vendor-completions/_ovm | grep -qx "#compdef ovm"'

# --- an agent of the installed init script, a domain, and what leaves it alone
mkdir -p "$T/state" "$T/files"
cat >"$T/agent.ini" <<INI
[server]
tcp_server = no
unix_socket = $T/agent.sock
[log]
file = $T/agent.log
[agent]
state_dir = $T/state
hypervisor = sim
memory_reserve = 0
file_dirs = $T/files
[relocation]
server = no
[repository]
enabled = no
INI
cat >"$T/files/debtest.cfg" <<CFG
name = 'debtest'
memory = 64
vcpus = 1
workload = 'dirty=1M/s,hot=4M,pattern=random,verify=1s'
on_crash = 'destroy'
CFG
# The installed init script on the test's configuration (its documented
# overrides); dpkg and the maintainer scripts never see them.
initd() {
	OVS_AGENT_CONFIG="$T/agent.ini" OVS_AGENT_PIDFILE="$T/agent.pid" OVS_AGENT_CONSOLE="$T/console.log" OVS_AGENT_WAIT=30 \
		/etc/init.d/ovs-agent "$@"
}
ovm() { "$T/ovm" --url "unix://$T/agent.sock" "$@"; }
cp /usr/bin/ovm "$T/ovm" # used after the package is gone

initd start >"$T/start" 2>&1 || { cat "$T/start" "$T/console.log" 2>/dev/null; die "/etc/init.d/ovs-agent start"; }
agent_pid=$(cat "$T/agent.pid")
ok "/etc/init.d/ovs-agent start (pid $agent_pid)"
out=$(/usr/sbin/ovs-agent status --config "$T/agent.ini" 2>&1) && ok "ovs-agent status: $(echo "$out" | head -1)" || bad "ovs-agent status on the running agent: $out"
ovm create "$T/files/debtest.cfg" >/dev/null 2>&1 && ovm start debtest >/dev/null 2>&1 || die "ovm create and start debtest: $(ovm start debtest 2>&1)"
vmm_pid=$(ovm -o json call domain.info debtest | sed -n 's/.*"vmm_pid": *\([0-9][0-9]*\).*/\1/p')
alive "$vmm_pid" && ok "domain debtest runs (ovs-vmm pid $vmm_pid)" || die "no ovs-vmm for debtest (pid '$vmm_pid')"

initd stop >/dev/null 2>&1 || bad "/etc/init.d/ovs-agent stop"
if alive "$agent_pid"; then bad "the init script's stop left the agent running"; else ok "the init script's stop stopped the agent"; fi
alive "$vmm_pid" && ok "  and left the domain's ovs-vmm running" || bad "the init script's stop killed the domain"

initd start >/dev/null 2>&1 || die "/etc/init.d/ovs-agent start, again"
agent_pid=$(cat "$T/agent.pid")
check "the restarted agent finds debtest running" sh -c "'$T/ovm' --url 'unix://$T/agent.sock' list | grep debtest | grep -q running"

# The operator enables the service (systemctl works offline here: it makes
# the links, and the init script's rc.d links through systemd-sysv-install);
# an upgrade must keep that, and the purge must take it away.
systemctl enable ovs-agent.service >/dev/null 2>&1 || bad "systemctl enable ovs-agent.service"
dpkg -i "$deb" >"$T/upgrade" 2>&1 || { cat "$T/upgrade"; die "dpkg -i again (an upgrade)"; }
ok "dpkg -i again (an upgrade)"
alive "$vmm_pid" && ok "  the domain's ovs-vmm runs on" || bad "the upgrade killed the domain"
check "  ovs-agent.service, enabled before, is enabled still" test -L /etc/systemd/system/multi-user.target.wants/ovs-agent.service

dpkg -r ovs-agent >"$T/remove" 2>&1 || { cat "$T/remove"; die "dpkg -r ovs-agent"; }
ok "dpkg -r ovs-agent"
alive "$vmm_pid" && ok "  the domain's ovs-vmm runs on" || bad "the removal killed the domain"
check "  the binaries are gone" sh -c '! test -e /usr/sbin/ovs-agent && ! test -e /usr/bin/ovm && ! test -e /usr/sbin/ovs-vmm && ! test -e /usr/lib/ovs'
check "  the conffiles stay" test -f /etc/ovs-agent/agent.ini -a -f /etc/init.d/ovs-agent -a -f /etc/logrotate.d/ovs-agent
check "  dpkg says config-files" sh -c 'dpkg-query -W -f="\${db:Status-Status}" ovs-agent | grep -qx config-files'

# The test's agent and domain go (by pid), then the purge.
stop_pid "$(cat "$T/agent.pid")"
stop_pid "$vmm_pid"
vmm_pid=
mkdir -p /var/lib/ovs-agent/tls /var/lib/ovs-agent/deb-test-domain
touch /var/lib/ovs-agent/agent.lock /var/lib/ovs-agent/tls/agent.pem
dpkg -P ovs-agent >"$T/purge" 2>&1 || { cat "$T/purge"; die "dpkg -P ovs-agent"; }
ok "dpkg -P ovs-agent"
check "  a state directory with a domain in it is kept, and said so" grep -q "is kept" "$T/purge"
check "  what the agent made for itself is gone" sh -c '! test -e /var/lib/ovs-agent/tls && ! test -e /var/lib/ovs-agent/agent.lock'
rm -rf /var/lib/ovs-agent/deb-test-domain
rmdir /var/lib/ovs-agent
state_snapshot >"$T/after"
if cmp -s "$T/before" "$T/after"; then
	ok "  nothing of the package is left (conffiles, directories, unit state, rc.d links)"
else
	bad "the purge left: $(diff "$T/before" "$T/after" | grep '^[<>]' | tr '\n' ' ')"
fi
leftover=
for f in $(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$'); do
	[ -e "$f" ] && leftover="$leftover $f"
done
[ -z "$leftover" ] && ok "  no file of the package is left" || bad "files left:$leftover"
check "  dpkg knows it no more" sh -c '! dpkg-query -W -f="\${db:Status-Status}" ovs-agent 2>/dev/null | grep -qv "^not-installed$"'
