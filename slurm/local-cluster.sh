#!/usr/bin/env bash
# A throwaway one-node Slurm cluster on this host, for the tests and for trying the sbatch scripts
# without a cluster (Debian's slurm-wlm and munge; munged, slurmctld and slurmd run as daemons here).
#   slurm/local-cluster.sh start     writes /etc/slurm/slurm.conf (CPUs and memory from this machine,
#                                    select/cons_tres, MpiDefault=pmix) and gres.conf (4 GPUs as GRES
#                                    `gpu`, on /dev/tty0-3 as Slurm's own test suite declares them, so
#                                    that --gpus-per-task / --gres=gpu:N are scheduled and set
#                                    CUDA_VISIBLE_DEVICES per task; the ranks run on emulated GPUs,
#                                    LIDARTRAIN_CUDA_EMULATION=1), starts munged, slurmctld, slurmd, and
#                                    waits until the node is idle
#   slurm/local-cluster.sh stop      stops the daemons and removes what start wrote
#   slurm/local-cluster.sh status    sinfo
# It refuses to touch a Slurm configuration it did not write. Needs root (as CI and these machines are).
set -euo pipefail
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
GPU_FILES=/dev/tty[0-3]
MARK="# written by lidartrain slurm/local-cluster.sh"
STATE=/var/spool/lidartrain-slurm
LOGS=/var/log/lidartrain-slurm

die() { echo "local-cluster: $*" >&2; exit 1; }

ours() { [ ! -e "$CONF" ] || head -1 "$CONF" | grep -qx "$MARK"; }

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(env -u OMP_NUM_THREADS nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
  cat >"$CONF.tmp" <<CONFEOF
$MARK
ClusterName=lidartrain-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
ReturnToService=2
JobRequeue=1
KillWait=30
SchedulerType=sched/backfill
GresTypes=gpu
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:4 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONFEOF
  mv "$CONF.tmp" "$CONF"
  printf '%s\nName=gpu File=%s\n' "$MARK" "$GPU_FILES" >"$GRES_CONF"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  [ -s /etc/munge/munge.key ] || mungekey -c
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged does not answer (munge -n | unmunge)"
}

wait_idle() {
  for _ in $(seq 1 100); do
    state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
    case "$state" in idle | mixed | allocated) return ;; esac
    sleep 0.2
  done
  die "the node is not up: sinfo says '${state:-nothing}' (logs in $LOGS)"
}

stop_daemons() {
  for daemon in slurmd slurmctld; do
    pkill -x "$daemon" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || return 0
    sleep 0.1
  done
  pkill -KILL -x slurmd 2>/dev/null || true
  pkill -KILL -x slurmctld 2>/dev/null || true
}

case "${1:-}" in
  start)
    [ "$(id -u)" -eq 0 ] || die "needs root"
    command -v slurmctld >/dev/null && command -v munged >/dev/null ||
      die "slurm-wlm and munge are not installed (apt-get install slurm-wlm munge)"
    ours || die "$CONF exists and was not written by this script: not touching it"
    if pgrep -x slurmctld >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
      wait_idle
      echo "local-cluster: already running"
      exit 0
    fi
    stop_daemons
    write_conf
    start_munge
    slurmctld -i
    slurmd
    wait_idle
    echo "local-cluster: up: $(sinfo -h -o '%P %D node %c CPUs %m MB %T')"
    ;;
  stop)
    ours || die "$CONF exists and was not written by this script: not touching it"
    stop_daemons
    rm -f "$CONF" "$GRES_CONF"
    rm -rf "$STATE"
    echo "local-cluster: stopped"
    ;;
  status)
    if pgrep -x slurmctld >/dev/null; then sinfo; else echo "local-cluster: not running"; exit 3; fi
    ;;
  *)
    echo "usage: slurm/local-cluster.sh start|stop|status" >&2
    exit 2
    ;;
esac
