#!/usr/bin/env bash
# Reports how this host differs from the shardlog OS profile (tuning/os/). Changes nothing:
# it only reads /proc/sys, ulimits and /sys.
#
# Usage: tuning/check.sh [--strict] [--data-dir DIR] [--profile FILE]
#   --strict       exit 1 when any setting differs (default: always exit 0 after reporting)
#   --data-dir DIR also check that DIR is on a filesystem where O_DIRECT works (not tmpfs)
#   --profile FILE sysctl profile to compare with (default: tuning/os/sysctl.conf)
set -u

here=$(cd "$(dirname "$0")" && pwd)
profile="$here/os/sysctl.conf"
strict=0
data_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --strict) strict=1 ;;
    --data-dir) data_dir="$2"; shift ;;
    --profile) profile="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -r "$profile" ] || { echo "check.sh: cannot read $profile" >&2; exit 2; }

# Limits: a current value at least as large as the profile's is fine.
at_least=" net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.core.rmem_max net.core.wmem_max \
net.core.netdev_max_backlog fs.aio-max-nr fs.file-max fs.nr_open net.ipv4.tcp_rmem net.ipv4.tcp_wmem "

differences=0
report() { # setting current wanted status
  printf '%-34s %-26s %-26s %s\n' "$1" "$2" "$3" "$4"
  case "$4" in DIFF*) differences=$((differences + 1)) ;; esac
}
normalize() { tr -s '[:space:]' ' ' | sed 's/^ //; s/ $//'; }
is_number() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
# every_at_least "4096 131072 33554432" "4096 131072 16777216": each field >= its counterpart.
every_at_least() {
  local -a have=($1) want=($2)
  [ "${#have[@]}" -eq "${#want[@]}" ] || return 1
  for i in "${!want[@]}"; do
    is_number "${have[$i]}" && is_number "${want[$i]}" && [ "${have[$i]}" -ge "${want[$i]}" ] || return 1
  done
}

echo "shardlog tuning check against $profile (read-only)"
report setting current profile status
report ------- ------- ------- ------

while IFS= read -r line || [ -n "$line" ]; do
  line=${line%%#*}
  case "$line" in *=*) ;; *) continue ;; esac
  key=$(printf '%s' "${line%%=*}" | normalize)
  wanted=$(printf '%s' "${line#*=}" | normalize)
  path="/proc/sys/$(printf '%s' "$key" | tr . /)"
  if [ ! -r "$path" ]; then
    report "$key" "(absent)" "$wanted" "unknown: not on this kernel or not visible here"
    continue
  fi
  current=$(normalize < "$path")
  if [ "$current" = "$wanted" ]; then
    report "$key" "$current" "$wanted" ok
  elif [[ "$at_least" == *" $key "* ]] && every_at_least "$current" "$wanted"; then
    report "$key" "$current" ">= $wanted" ok
  else
    report "$key" "$current" "$wanted" "DIFF"
  fi
done < "$profile"

# Process limits (tuning/os/limits.conf).
memlock=$(ulimit -l)
if [ "$memlock" = unlimited ]; then
  report "ulimit -l (memlock KiB)" "$memlock" unlimited ok
else
  report "ulimit -l (memlock KiB)" "$memlock" unlimited \
    "DIFF: io_uring buffers need shards x io_memory_bytes (glommio >= 512 KiB/shard)"
fi
nofile=$(ulimit -n)
if [ "$nofile" = unlimited ] || { is_number "$nofile" && [ "$nofile" -ge 1048576 ]; }; then
  report "ulimit -n (nofile)" "$nofile" ">= 1048576" ok
else
  report "ulimit -n (nofile)" "$nofile" ">= 1048576" "DIFF: segments + indexes + connections"
fi

# CPU frequency governor: "performance" keeps wake-up latency and throughput steady.
governors=$(cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor 2>/dev/null | sort -u | normalize)
if [ -z "$governors" ]; then
  report "cpu governor" "(no cpufreq)" performance "unknown: VM or fixed frequency"
elif [ "$governors" = performance ]; then
  report "cpu governor" "$governors" performance ok
else
  report "cpu governor" "$governors" performance DIFF
fi

# Informational: what shapes pinning and interrupts (see tuning/README.md).
thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
report "transparent hugepages" "${thp:-unknown}" "madvise|never" \
  "$(case "$thp" in madvise|never) echo ok ;; always) echo 'DIFF: khugepaged stalls' ;; *) echo unknown ;; esac)"
if pgrep -x irqbalance >/dev/null 2>&1; then irq=running; else irq="not running"; fi
report "irqbalance" "$irq" "(info)" "info: pin NIC IRQs away from shard CPUs instead"
report "cpus online" "$(nproc)" "(info)" "info: one shard per CPU (shard.shards = 0)"

if [ -n "$data_dir" ]; then
  fs=$(stat -f -c %T "$data_dir" 2>/dev/null || echo missing)
  case "$fs" in
    tmpfs|ramfs|missing) report "data dir filesystem" "$fs" "ext4|xfs" \
      "DIFF: O_DIRECT is silently off on tmpfs (glommio)" ;;
    *) report "data dir filesystem" "$fs" "ext4|xfs" ok ;;
  esac
fi

echo "$differences setting(s) differ from the profile."
if [ "$strict" = 1 ] && [ "$differences" -gt 0 ]; then exit 1; fi
exit 0
