#!/usr/bin/env bash
# Restore benchmark: `vigil restore` (backup verified first, the replaced state kept as a checked safety backup
# taken under the restore's lock) against the sqlite3 shell's `.restore` (SQLite's backup API, nothing kept,
# nothing verified), both into a live database while a steady writer commits every 5 ms (bench/backup/writer.py):
# wall time, and the writer's p99 and longest commit, WAL and rollback journal, measured in the same run.
#   bench/restore/run.sh [MiB]     (default 256)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --workspace   # never bench a stale binary
vigil="$PWD/target/release/vigil"
mib="${1:-256}"
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-restore-bench.XXXX")"
trap 'rm -rf "$work"' EXIT

# seconds of wall time of a command
seconds() {
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# restore_under_writer MODE TOOL: prints "seconds commits p99 max"
restore_under_writer() {
  local mode="$1" tool="$2" live="$work/live.db"
  rm -f "$work"/live* "$work/stop"
  cp "$work/source-$mode.db" "$live"
  python3 bench/backup/writer.py "$live" "$work/stop" > "$work/writer.out" &
  local writer=$!
  sleep 1
  local t
  if [ "$tool" = vigil ]; then
    t=$(seconds "$vigil" restore "$work/backup-$mode.db" "$live" --busy-timeout 60000)
  else
    t=$(seconds sqlite3 -cmd ".timeout 60000" "$live" ".restore '$work/backup-$mode.db'")
  fi
  sleep 1
  touch "$work/stop"
  wait "$writer"
  printf "%.3f %s\n" "$t" "$(cat "$work/writer.out")"
}

printf "%-8s %-16s %9s %8s %9s %9s\n" mode tool seconds commits "p99 ms" "max ms"
for mode in wal delete; do
  python3 "${VIGIL_MAKE_DB:-../shared/bench/make_db.py}" --out "$work/source-$mode.db" --mb "$mib" \
    $([ "$mode" = wal ] && echo --wal) >/dev/null
  # the writer's table is in the backup too, so that it keeps writing onto the restored database
  sqlite3 "$work/source-$mode.db" "CREATE TABLE IF NOT EXISTS bench_writer(id INTEGER PRIMARY KEY, at REAL)"
  "$vigil" backup "$work/source-$mode.db" "$work/backup-$mode.db" >/dev/null
  for tool in vigil "sqlite3 .restore"; do
    read -r t commits p99 max < <(restore_under_writer "$mode" "${tool%% *}")
    printf "%-8s %-16s %9s %8s %9s %9s\n" "$mode" "$tool" "$t" "$commits" "$p99" "$max"
  done
done
