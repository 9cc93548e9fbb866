#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to try linguamix's SLURM path for real (and for CI):
#
#   scripts/slurm-local.sh up       install (apt, when missing) and start munge, MariaDB + slurmdbd, slurmctld
#                                   and slurmd; wait until the node is idle
#   scripts/slurm-local.sh status   exit 0 when every daemon is alive and the node answers
#   scripts/slurm-local.sh down     cancel the cluster's jobs and stop every daemon it started, by PID
#
# Needs root (the daemons, /etc/slurm/slurm.conf) and, the first time, apt. Without systemd the packages'
# service scripts start nothing, so the daemons are started here, each writing a pid file under the state
# folder. Settings (environment):
#   SLURM_LOCAL_DIR         state folder: config, logs, spool, database (default: $TMPDIR or /tmp, /linguamix-slurm)
#   SLURM_LOCAL_ACCOUNTING  1 (default): slurmdbd on MariaDB, so `sacct` works; 0: no accounting
#   SLURM_LOCAL_DB_PORT     MariaDB's port on 127.0.0.1 (default 3306)
# Two partitions share the node: `cpu` (default) and `high`, whose jobs preempt `cpu` jobs (requeued).
# Facts behind the settings: ../shared/docs/slurm_local.md and docs/slurm.md.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-${TMPDIR:-/tmp}/linguamix-slurm}
ACCOUNTING=${SLURM_LOCAL_ACCOUNTING:-1}
DB_PORT=${SLURM_LOCAL_DB_PORT:-3306}
CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)  # stop order; started in reverse

say() { echo "slurm-local: $*" >&2; }
die() { say "$*"; exit 1; }

pid_of() {  # the pid a daemon recorded, if that process is alive
    local f=$DIR/run/$1.pid
    [[ -s $f ]] || return 1
    local pid
    pid=$(tr -dc '0-9' < "$f")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll the command until it succeeds
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

install_packages() {
    local want=(slurm-wlm munge)
    [[ $ACCOUNTING == 1 ]] && want+=(slurmdbd mariadb-server)
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    if [[ $ACCOUNTING == 1 ]]; then
        command -v slurmdbd >/dev/null || missing+=(slurmdbd)
        command -v mariadbd >/dev/null || missing+=(mariadb-server)
    fi
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >/dev/null || die "apt-get update failed"
    timeout 600 apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
        || die "apt-get install ${want[*]} failed"
}

write_configs() {
    mkdir -p "$DIR"/{etc,run,log,spool/ctld,spool/slurmd}
    chmod 755 "$DIR"
    local node
    node=$(slurmd -C | head -n 1)  # NodeName=... CPUs=... RealMemory=...
    local name=${node#NodeName=}
    name=${name%% *}
    local acct="AccountingStorageType=accounting_storage/none"
    [[ $ACCOUNTING == 1 ]] && acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"
    cat > "$CONF" <<EOF
# written by linguamix scripts/slurm-local.sh (state folder $DIR)
ClusterName=linguamix
SlurmctldHost=$name
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# requeued jobs may start again after cred_expire seconds (default 120)
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=5
MailProg=/bin/true
KillWait=10
MinJobAge=600
ReturnToService=2
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$acct
$node State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2
EOF
    if [[ $ACCOUNTING == 1 ]]; then
        cat > "$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
        chmod 600 "$DIR/etc/slurmdbd.conf"
    fi
    # clients (sbatch, squeue, sacct, submitit) read /etc/slurm/slurm.conf
    mkdir -p /etc/slurm
    if [[ -e /etc/slurm/slurm.conf && ! -L /etc/slurm/slurm.conf ]]; then
        mv /etc/slurm/slurm.conf /etc/slurm/slurm.conf.before-linguamix
        say "moved the existing /etc/slurm/slurm.conf to slurm.conf.before-linguamix"
    fi
    ln -sfn "$CONF" /etc/slurm/slurm.conf
}

start_munge() {
    pid_of munged >/dev/null && return 0
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    wait_for 10 munged test -s /run/munge/munged.pid || die "munged did not start (see /var/log/munge/munged.log)"
    cp /run/munge/munged.pid "$DIR/run/munged.pid"
}

start_accounting() {
    if ! pid_of mariadbd >/dev/null; then
        local data=$DIR/mysql
        if [[ ! -d $data/mysql ]]; then
            mkdir -p "$data"
            chown mysql:mysql "$data"
            mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=normal \
                --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $DIR/log/mariadb-install.log)"
        fi
        touch "$DIR/log/mariadb.log"
        chown mysql:mysql "$DIR/log/mariadb.log" "$DIR/run"
        setsid mariadbd --no-defaults --user=mysql --datadir="$data" --socket="$DIR/run/mysqld.sock" \
            --pid-file="$DIR/run/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
            --innodb-buffer-pool-size=32M --log-error="$DIR/log/mariadb.log" </dev/null >/dev/null 2>&1 &
        wait_for 60 mariadb mariadb-admin --socket="$DIR/run/mysqld.sock" -uroot ping \
            || die "MariaDB did not start (see $DIR/log/mariadb.log)"
        mariadb --socket="$DIR/run/mysqld.sock" -uroot <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
    fi
    if ! pid_of slurmdbd >/dev/null; then
        slurmdbd || die "slurmdbd did not start (see $DIR/log/slurmdbd.log)"
        wait_for 30 slurmdbd sacctmgr -n show cluster || die "slurmdbd does not answer (see $DIR/log/slurmdbd.log)"
        sacctmgr -i -Q add cluster linguamix >/dev/null 2>&1 || true  # exists already on a restart
    fi
}

node_state() { sinfo -h -N -o %t 2>/dev/null | head -n 1; }

cmd_up() {
    [[ $(id -u) == 0 ]] || die "needs root (it starts the SLURM daemons and writes /etc/slurm/slurm.conf)"
    local t0=$SECONDS
    install_packages
    write_configs
    start_munge
    [[ $ACCOUNTING == 1 ]] && start_accounting
    pid_of slurmctld >/dev/null || slurmctld || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    wait_for 30 slurmctld scontrol ping || die "slurmctld does not answer (see $DIR/log/slurmctld.log)"
    pid_of slurmd >/dev/null || slurmd || die "slurmd did not start (see $DIR/log/slurmd.log)"
    wait_for 60 "the node" sh -c 'sinfo -h -N -o %t | grep -Eq "^(idle|mix|alloc)"' \
        || die "the node is not idle (sinfo: $(node_state)); see $DIR/log/slurmd.log"
    say "up in $((SECONDS - t0)) s: node $(sinfo -h -N -o '%N (%c CPUs, %m MB): %t' | head -n 1);" \
        "partitions $(sinfo -h -o %P | paste -sd ' '); accounting $([[ $ACCOUNTING == 1 ]] && echo on || echo off);" \
        "state in $DIR"
}

cmd_status() {
    local ok=0 d
    local with_db=""
    grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF" 2>/dev/null && with_db="mariadbd slurmdbd"
    for d in munged $with_db slurmctld slurmd; do
        if pid=$(pid_of "$d"); then echo "$d running (pid $pid)"; else echo "$d not running"; ok=1; fi
    done
    local state=""
    [[ $ok == 0 ]] && state=$(node_state || true)  # sinfo waits for a controller that is not there
    echo "node: ${state:-no answer}"
    [[ $state =~ ^(idle|mix|alloc|comp) ]] || ok=1
    return $ok
}

cmd_down() {
    [[ -d $DIR/run ]] || { say "nothing to stop ($DIR/run does not exist)"; return 0; }
    if pid_of slurmctld >/dev/null; then  # a job's processes outlive slurmd: end the jobs first
        scancel --full --quiet --user "$(id -un)" 2>/dev/null || true
        scancel --quiet --state=PENDING 2>/dev/null || true
        wait_for 40 "jobs to end" sh -c '[ -z "$(squeue -h -t R,CG,S -o %i)" ]' \
            || say "jobs still ending: $(squeue -h -o '%i %T' | tr '\n' ' ')"
    fi
    local d pid
    for d in "${DAEMONS[@]}"; do
        pid=$(pid_of "$d") || continue
        kill "$pid" 2>/dev/null || true
        wait_for 15 "$d to stop" sh -c "! kill -0 $pid" || { say "$d (pid $pid) did not stop: SIGKILL"; kill -9 "$pid" 2>/dev/null || true; }
        rm -f "$DIR/run/$d.pid"
        say "stopped $d (pid $pid)"
    done
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status   (state folder: $DIR)" >&2; exit 2 ;;
esac
