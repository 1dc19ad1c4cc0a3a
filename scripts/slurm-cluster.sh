#!/usr/bin/env bash
# Bring up / tear down a real single-node Slurm cluster on this machine, for
# tests of the SLURM path of the workflow (Debian/Ubuntu, run as root; no
# systemd needed). Installs slurm-wlm and munge with apt-get when missing.
#
#   scripts/slurm-cluster.sh up [--force]   install if needed, start, wait for an idle node
#   scripts/slurm-cluster.sh down           cancel jobs, stop the daemons this script started
#   scripts/slurm-cluster.sh status         say whether it is up; sinfo and squeue (exit 0 up, 3 down)
#   scripts/slurm-cluster.sh env            print `export SLURM_CONF=...` when a non-default conf is used
#
# Environment:
#   SNAKESWEEP_SLURM_DIR      scratch folder for state, spool, pid and log files
#                             (default /tmp/snakesweep-slurm)
#   SNAKESWEEP_SLURM_CONF     where to write slurm.conf (default /etc/slurm/slurm.conf,
#                             the path Debian's Slurm reads, so sbatch/squeue need no SLURM_CONF)
#   SNAKESWEEP_SLURM_TIMEOUT  seconds `up` waits for the node to turn idle (default 60)
#   SNAKESWEEP_SLURM_CPUS     advertise this many CPUs instead of the real count
#                             (oversubscribes the machine; default: what `slurmd -C` reports)
set -euo pipefail

readonly DEFAULT_CONF=/etc/slurm/slurm.conf
readonly MARKER='# Managed by snakesweep scripts/slurm-cluster.sh'
SCRATCH=${SNAKESWEEP_SLURM_DIR:-/tmp/snakesweep-slurm}
CONF=${SNAKESWEEP_SLURM_CONF:-$DEFAULT_CONF}
TIMEOUT=${SNAKESWEEP_SLURM_TIMEOUT:-60}
FORCE=0

LOG_DIR=$SCRATCH/log
RUN_DIR=$SCRATCH/run
MUNGE_DIR=$SCRATCH/munge
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
if [[ $CONF != "$DEFAULT_CONF" ]]; then
    export SLURM_CONF=$CONF
fi

usage() {
    sed -n '2,18s/^# \{0,1\}//p' "$0"
}

say() { printf 'slurm-cluster: %s\n' "$*"; }
warn() { printf 'slurm-cluster: %s\n' "$*" >&2; }
die() {
    warn "ERROR: $*"
    exit 1
}

# Print the last lines of a log file to stderr, for a daemon that failed.
show_tail() {
    local file=$1
    if [[ -s $file ]]; then
        warn "---- last lines of $file ----"
        tail -n 25 "$file" >&2 || true
        warn "----"
    else
        warn "(no log at $file)"
    fi
}

# ---------------------------------------------------------------- processes

# pid from a pid file if that process is alive and runs the named program.
live_pid() {
    local pidfile=$1 name=$2 pid comm
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    printf '%s\n' "$pid"
}

# Send TERM to a pid, wait up to N seconds, then KILL.
stop_pid() {
    local pid=$1 name=$2 wait_s=${3:-15} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < wait_s * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    warn "$name (pid $pid) ignored SIGTERM for ${wait_s}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Wait up to N seconds for a pid to exit.
wait_exit() {
    local pid=$1 wait_s=$2 i
    for ((i = 0; i < wait_s * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- install

have_slurm() {
    local b
    for b in slurmctld slurmd sbatch squeue sinfo scontrol munged munge unmunge; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

install_slurm() {
    have_slurm && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "Slurm is not installed and apt-get is not available: install slurm-wlm and munge by hand"
    local start=$SECONDS apt_log=$LOG_DIR/apt-install.log
    say "installing slurm-wlm and munge with apt-get (log: $apt_log) ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; } \
        >"$apt_log" 2>&1; then
        show_tail "$apt_log"
        die "apt-get install slurm-wlm munge failed"
    fi
    have_slurm || die "apt-get finished but Slurm/munge binaries are still missing (see $apt_log)"
    say "installed in $((SECONDS - start))s"
}

# ---------------------------------------------------------------- munge

munge_works() {
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

ensure_munge_key() {
    local key=/etc/munge/munge.key
    [[ -s $key ]] && return 0
    say "creating $key"
    install -d -o munge -g munge -m 0700 /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$key"
    else
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
    chown munge:munge "$key"
    chmod 0400 "$key"
}

start_munge() {
    if munge_works; then
        if live_pid "$MUNGE_DIR/munged.pid" munged >/dev/null; then
            say "munged already running (started by this script)"
        else
            say "munged already running (not started by this script; leaving it alone)"
        fi
        return 0
    fi
    ensure_munge_key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 "$MUNGE_DIR"
    # munged's own directories, in case a package's init script never ran.
    install -d -o munge -g munge -m 0700 /var/lib/munge
    install -d -o munge -g munge -m 0700 /var/log/munge
    say "starting munged as user munge"
    if ! runuser -u munge -- munged \
        --log-file="$MUNGE_DIR/munged.log" \
        --pid-file="$MUNGE_DIR/munged.pid" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        >"$MUNGE_DIR/munged.stdout" 2>&1; then
        cat "$MUNGE_DIR/munged.stdout" >&2 || true
        show_tail "$MUNGE_DIR/munged.log"
        die "munged failed to start"
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        munge_works && return 0
        sleep 0.2
    done
    show_tail "$MUNGE_DIR/munged.log"
    die "munged started but 'munge -n | unmunge' does not succeed"
}

stop_munge() {
    local pid
    if pid=$(live_pid "$MUNGE_DIR/munged.pid" munged); then
        say "stopping munged (pid $pid)"
        stop_pid "$pid" munged 10
    fi
}

# ---------------------------------------------------------------- slurm.conf

conf_is_ours() {
    [[ -f $1 ]] && head -n 1 "$1" | grep -qF "$MARKER"
}

# The node line from `slurmd -C`, with RealMemory lowered a bit so that jobs
# with memory requests fit next to the OS.
node_line() {
    local line mem reserve cpus
    line=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') ||
        die "'slurmd -C' did not print a NodeName line"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    [[ -n $mem ]] || die "no RealMemory in: $line"
    reserve=$((mem / 20))
    ((reserve < 256)) && reserve=256
    ((mem - reserve >= 256)) && mem=$((mem - reserve))
    line=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$mem/" <<<"$line")
    if [[ -n ${SNAKESWEEP_SLURM_CPUS:-} ]]; then
        cpus=$SNAKESWEEP_SLURM_CPUS
        [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "SNAKESWEEP_SLURM_CPUS must be a positive integer"
        line=$(sed -E 's/ (CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+//g' <<<"$line")
        line="$line CPUs=$cpus"
    fi
    printf '%s NodeAddr=127.0.0.1 State=UNKNOWN\n' "$line"
}

node_name() {
    slurmd -C 2>/dev/null | sed -n '1s/^NodeName=\([^ ]*\).*/\1/p'
}

render_conf() {
    local node host overrides=""
    node=$(node_line)
    host=$(node_name)
    [[ -n ${SNAKESWEEP_SLURM_CPUS:-} ]] && overrides="SlurmdParameters=config_overrides"
    cat <<EOF
$MARKER
# (rewritten by '$0 up'; a foreign slurm.conf is only replaced with --force,
# after a backup). Single node, root, no cgroups, no accounting database.
ClusterName=snakesweep
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
$overrides

# All state, spool, pid and log files live in the scratch folder.
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No slurmdbd: sacct cannot answer, so clients must poll with squeue.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log

# Scheduling tuned for fast tests.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs that ask for no memory get this much per CPU instead of the whole node.
DefMemPerCPU=1000

# Finished jobs stay visible to squeue for 5 minutes (squeue-based polling).
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
ReturnToService=2
# Batch jobs may be requeued (node failure, 'scontrol requeue'); a requeued
# job waits cred_expire seconds (Slurm's default: 120) before it can start
# again; job step credentials must be used within that time too.
JobRequeue=1
AuthInfo=cred_expire=10

$node
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

conf_is_foreign() {
    [[ -e $CONF ]] && ! conf_is_ours "$CONF"
}

# Fail early (before starting anything) on a slurm.conf this script did not write.
check_conf() {
    if conf_is_foreign && ((!FORCE)); then
        die "$CONF exists and was not written by this script; re-run with --force to back it up and replace it"
    fi
    return 0
}

write_conf() {
    local dir backup tmp
    dir=$(dirname "$CONF")
    if conf_is_foreign; then
        check_conf
        backup="$CONF.snakesweep-backup.$(date +%Y%m%d%H%M%S)"
        cp -p "$CONF" "$backup"
        say "backed up foreign $CONF to $backup"
    fi
    mkdir -p "$dir"
    tmp=$(mktemp "$dir/.slurm.conf.XXXXXX")
    render_conf >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$CONF"
    say "wrote $CONF"
}

# ---------------------------------------------------------------- slurm daemons

daemon_args() {
    # Daemons read the default path unless told otherwise.
    if [[ $CONF != "$DEFAULT_CONF" ]]; then
        printf '%s\n' -f "$CONF"
    fi
}

ctld_responds() {
    timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'
}

node_state() {
    timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1
}

# Pids of running slurmctld/slurmd processes that this script did not start.
foreign_daemons() {
    local name ours p
    for name in slurmctld slurmd; do
        ours=$(live_pid "$RUN_DIR/$name.pid" "$name" || true)
        for p in $(pgrep -x "$name" || true); do
            [[ $p == "$ours" ]] && continue
            # A daemon forks while it starts; ignore children of our daemon.
            [[ -n $ours && $(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ') == "$ours" ]] && continue
            printf '%s %s\n' "$name" "$p"
        done
    done
}

# Refuse to start next to Slurm daemons that this script does not own (after
# giving ones that are shutting down, e.g. just after `down`, time to exit).
check_foreign_daemons() {
    local found i
    for ((i = 0; i < 20; i++)); do
        found=$(foreign_daemons)
        [[ -z $found ]] && return 0
        sleep 0.5
    done
    die "Slurm daemon(s) not started by this script are running: $(tr '\n' ' ' <<<"$found")- stop them first"
}

start_daemon() {
    local name=$1 pid
    local -a args
    mapfile -t args < <(daemon_args)
    if pid=$(live_pid "$RUN_DIR/$name.pid" "$name"); then
        say "$name already running (pid $pid)"
        return 0
    fi
    say "starting $name"
    if ! "$name" "${args[@]}" </dev/null >"$LOG_DIR/$name.stdout" 2>&1; then
        cat "$LOG_DIR/$name.stdout" >&2 || true
        show_tail "$LOG_DIR/$name.log"
        die "$name failed to start"
    fi
}

# Wait until `check` succeeds or the deadline passes; fail with the daemon log.
wait_for() {
    local what=$1 deadline=$2 log=$3 daemon=$4
    shift 4
    until "$@"; do
        if ! live_pid "$RUN_DIR/$daemon.pid" "$daemon" >/dev/null; then
            sleep 1
            if ! live_pid "$RUN_DIR/$daemon.pid" "$daemon" >/dev/null; then
                show_tail "$log"
                die "$daemon exited while waiting for $what"
            fi
        fi
        if ((SECONDS >= deadline)); then
            show_tail "$log"
            die "timed out after ${TIMEOUT}s waiting for $what"
        fi
        sleep 0.5
    done
}

node_ready() {
    local state
    state=$(node_state)
    case $state in
        idle | mixed | allocated | completing) return 0 ;;
        down* | drain*)
            # A node left down by an earlier run: put it back in service.
            timeout 10 scontrol update nodename="$(node_name)" state=resume >/dev/null 2>&1 || true
            return 1
            ;;
        *) return 1 ;;
    esac
}

# slurmd answers, and the controller sees the node as usable.
node_up() {
    timeout 10 scontrol show slurmd >/dev/null 2>&1 && node_ready
}

is_up() {
    live_pid "$RUN_DIR/slurmctld.pid" slurmctld >/dev/null &&
        live_pid "$RUN_DIR/slurmd.pid" slurmd >/dev/null &&
        ctld_responds &&
        node_up
}

print_locations() {
    say "logs: $LOG_DIR (slurmctld.log, slurmd.log, jobcomp.log), munged: $MUNGE_DIR/munged.log"
    say "conf: $CONF"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local start=$SECONDS deadline
    ((EUID == 0)) || die "must run as root (it installs packages and starts munged/slurmd)"
    mkdir -p "$LOG_DIR" "$RUN_DIR" "$SCRATCH/state" "$SCRATCH/spool"
    install_slurm
    start=$SECONDS
    if is_up; then
        say "already up: node $(node_name) is $(node_state)"
        print_locations
        return 0
    fi
    check_foreign_daemons
    live_pid "$RUN_DIR/slurmctld.pid" slurmctld >/dev/null || check_conf
    start_munge
    # Keep the conf and jobs of a running controller; otherwise (re)write the conf and
    # start from an empty job state, so that jobs of a cluster that was killed (not
    # stopped with `down`) are not recovered and requeued into this one.
    if ! live_pid "$RUN_DIR/slurmctld.pid" slurmctld >/dev/null; then
        write_conf
        find "$SCRATCH/state" -mindepth 1 -delete
    fi
    if ! live_pid "$RUN_DIR/slurmd.pid" slurmd >/dev/null; then
        find "$SCRATCH/spool" -mindepth 1 -delete
    fi
    deadline=$((SECONDS + TIMEOUT))
    start_daemon slurmctld
    wait_for "slurmctld to answer 'scontrol ping'" "$deadline" "$LOG_DIR/slurmctld.log" slurmctld ctld_responds
    start_daemon slurmd
    wait_for "node $(node_name) to be idle" "$deadline" "$LOG_DIR/slurmd.log" slurmd node_up
    say "up in $((SECONDS - start))s: node $(node_name) is $(node_state)"
    print_locations
}

cancel_all_jobs() {
    local ids i
    ids=$(timeout 10 squeue -h -o '%A' 2>/dev/null || true)
    [[ -n $ids ]] || return 0
    say "cancelling jobs: $(tr '\n' ' ' <<<"$ids")"
    # shellcheck disable=SC2086  # one word per job id
    timeout 10 scancel $ids 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        [[ -z $(timeout 10 squeue -h -t running,completing -o '%A' 2>/dev/null || true) ]] && return 0
        sleep 0.5
    done
    warn "jobs still running after cancel; shutting down anyway"
}

cmd_down() {
    local ctld slurmd_pid
    ((EUID == 0)) || die "must run as root"
    ctld=$(live_pid "$RUN_DIR/slurmctld.pid" slurmctld || true)
    slurmd_pid=$(live_pid "$RUN_DIR/slurmd.pid" slurmd || true)
    if [[ -z $ctld && -z $slurmd_pid ]] && ! live_pid "$MUNGE_DIR/munged.pid" munged >/dev/null; then
        say "not running (nothing started by this script)"
        return 0
    fi
    if [[ -n $ctld ]] && ctld_responds; then
        cancel_all_jobs
        say "scontrol shutdown"
        timeout 15 scontrol shutdown >/dev/null 2>&1 || true
    fi
    if [[ -n $slurmd_pid ]] && ! wait_exit "$slurmd_pid" 15; then
        stop_pid "$slurmd_pid" slurmd 10
    fi
    if [[ -n $ctld ]] && ! wait_exit "$ctld" 15; then
        stop_pid "$ctld" slurmctld 10
    fi
    stop_munge
    say "down (state and logs kept in $SCRATCH)"
}

cmd_status() {
    local pid name
    for name in slurmctld slurmd; do
        if pid=$(live_pid "$RUN_DIR/$name.pid" "$name"); then
            say "$name: running (pid $pid)"
        else
            say "$name: not running"
        fi
    done
    if pid=$(live_pid "$MUNGE_DIR/munged.pid" munged); then
        say "munged: running (pid $pid)"
    elif command -v munge >/dev/null 2>&1 && munge_works; then
        say "munged: running (not started by this script)"
    else
        say "munged: not running"
    fi
    print_locations
    if have_slurm && is_up; then
        say "status: UP"
        timeout 10 sinfo || true
        timeout 10 squeue || true
        return 0
    fi
    say "status: DOWN"
    return 3
}

cmd_env() {
    if [[ $CONF != "$DEFAULT_CONF" ]]; then
        printf 'export SLURM_CONF=%q\n' "$CONF"
    fi
}

main() {
    local cmd="" arg
    for arg in "$@"; do
        case $arg in
            --force) FORCE=1 ;;
            -h | --help | help)
                usage
                return 0
                ;;
            up | down | status | env)
                [[ -z $cmd ]] || die "one command at a time (got '$cmd' and '$arg')"
                cmd=$arg
                ;;
            *)
                usage >&2
                die "unknown argument: $arg"
                ;;
        esac
    done
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
