#!/usr/bin/env bash
# test_mpi_ingest — `vesalius ingest` across ranks (pipeline/cmd_ingest.c): on a small demo
# cohort of CT, MR and radiograph series plus a damaged file and a series missing a slice, 1 rank under mpirun, 2 and 3
# ranks each write shards byte-identical to one process's (every file compared), the same
# catalog (every table dumped; runs.started_at and runs.finished_at, the only timestamps, left
# out) and the same summary; the bad inputs are quarantined alike; a linkage table gets one
# process's rows (as a set: each rank adds its own); kill -9 of a worker rank
# frozen mid-run (SIGSTOP, once the first shard is sealed and the catalog holds fewer volumes
# than the full run) ends every rank, and a rerun reaches the uninterrupted state; a rerun with
# nothing new exits 5 under mpirun too; a locked folder and a missing source fail every rank with
# one process's exit code; verify is clean and verify-deid finds none of the
# cohort's planted identifiers in the output folders.
set -u
. "$(dirname "$0")/mpi_env.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$V" demo-cohort --out "$t/c" --unlabeled 10 --labeled 4 --radiographs 2 --matrix 64 --slices 16:24 --seed 11 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
# bad inputs: a damaged file (rejected by the reader, on rank 0's scan) and a series with a
# missing slice (rejected when a worker assembles it)
f=$(ls "$t"/c/dicom/unlabeled/s0001/*.dcm | head -1); head -c 700 "$f" >"$t/c/dicom/unlabeled/truncated.dcm"
rm "$t/c/dicom/unlabeled/s0002/im0000.dcm" # the 11th of 18 slices (the check below fails if it is not a gap)
opts=(--key "$t/k" --shard-mb 1 -j 1)

# the catalog's contents, table by table in row order; runs without its two timestamps
dump() {
  for tb in meta shards volumes sources dropped_shards; do
    echo "== $tb"; sqlite3 "$1/catalog.sqlite" "SELECT * FROM $tb ORDER BY rowid" || echo "(no table $tb)"
  done
  echo "== runs"; sqlite3 "$1/catalog.sqlite" "SELECT id, params, status, n_volumes, n_rejected, n_skipped FROM runs ORDER BY id"
}
# the same, without the run each row came from (a killed run and its rerun are two runs)
dump_state() {
  sqlite3 "$1/catalog.sqlite" "SELECT name, sequence, n_volumes FROM shards ORDER BY rowid;
    SELECT id, series_key, shard_id, modality, checksum, shape, n_sources, state FROM volumes ORDER BY rowid;
    SELECT source_key, size, mtime_ns, content_hash, instance_key, state, reason, series_key, volume_id FROM sources ORDER BY rowid"
}
# every shard of $2 equal to $3's, byte for byte, and no other file
same_shards() {
  local a b ok=1
  a=$(cd "$2/shards" && ls); b=$(cd "$3/shards" && ls)
  [ -n "$a" ] && [ "$a" = "$b" ] || ok=0
  for f in $a; do cmp -s "$2/shards/$f" "$3/shards/$f" || ok=0; done
  if [ $ok = 1 ]; then echo "ok: $1 ($(echo $a | wc -w) shards)"; else echo "FAIL: $1"; fails=$((fails + 1)); fi
}

"$V" ingest "$t/c/dicom" --out "$t/one" "${opts[@]}" 2>"$t/one.log"; check "one process (the damaged file rejected)" 4 $?
dump "$t/one" >"$t/one.cat"
n_full=$(sqlite3 "$t/one/catalog.sqlite" "SELECT count(*) FROM volumes")
mods=$(sqlite3 "$t/one/catalog.sqlite" "SELECT group_concat(m) FROM (SELECT DISTINCT modality m FROM volumes ORDER BY m)")
[ "$mods" = "CT,DX,MR" ] && [ "$n_full" -ge 12 ] && echo "ok: $n_full volumes of $mods" || { echo "FAIL: volumes '$n_full' of '$mods'"; fails=$((fails + 1)); }
contains "the damaged file is quarantined" "$t/one.cat" "|rejected|length field points past the end"
contains "the series missing a slice is quarantined" "$t/one.cat" "|rejected|missing slices"
for n in 1 2 3; do
  $M -n $n "$V" ingest "$t/c/dicom" --out "$t/r$n" "${opts[@]}" 2>"$t/r$n.log"; check "$n rank(s) under mpirun" 4 $?
  same_shards "$n rank(s): shards byte-identical to one process" "$t/one" "$t/r$n"
  dump "$t/r$n" >"$t/r$n.cat"; same "$n rank(s): catalog equal to one process" "$t/one.cat" "$t/r$n.cat"
  same "$n rank(s): summary equal to one process" "$t/one/ingest-summary.json" "$t/r$n/ingest-summary.json"
  same "$n rank(s): settings equal to one process" "$t/one/settings.json" "$t/r$n/settings.json"
done
contains "rank 0 says what it wrote" "$t/r3.log" "volumes written"
# a linkage table: every rank adds its own rows; as a set they are one process's
"$V" ingest "$t/c/dicom" --out "$t/l1" "${opts[@]}" --linkage "$t/l1.db" 2>/dev/null; check "one process, linkage table" 4 $?
$M -n 3 "$V" ingest "$t/c/dicom" --out "$t/l3" "${opts[@]}" --linkage "$t/l3.db" 2>/dev/null; check "3 ranks, linkage table" 4 $?
sqlite3 "$t/l1.db" "SELECT * FROM linkage ORDER BY kind, original" >"$t/l1.rows"; sqlite3 "$t/l3.db" "SELECT * FROM linkage ORDER BY kind, original" >"$t/l3.rows"
[ -s "$t/l1.rows" ] && same "3 ranks: the linkage table's rows are one process's" "$t/l1.rows" "$t/l3.rows" || { echo "FAIL: no linkage rows"; fails=$((fails + 1)); }
same_shards "3 ranks with a linkage table: shards byte-identical" "$t/l1" "$t/l3"

# kill -9 of a worker mid-run: freeze every rank once the first shard is sealed, check the
# catalog holds fewer volumes than the full run, kill a worker, let the others go on
$M -n 3 "$V" ingest "$t/c/dicom" --out "$t/kill" "${opts[@]}" >"$t/kill.log" 2>&1 & pid=$!
for _ in $(seq 3000); do ls "$t"/kill/shards/shard-*.h5 >/dev/null 2>&1 && break; sleep 0.01; done
ranks=$(pgrep -P $pid -f "$t/kill")
[ -n "$ranks" ] && kill -STOP $ranks
at=$(sqlite3 "$t/kill/catalog.sqlite" ".timeout 3000" "SELECT count(*) FROM volumes" 2>/dev/null)
[ -n "$ranks" ] && [ -n "$at" ] && [ "$at" -lt "$n_full" ] && echo "ok: ranks frozen mid-run ($at of $n_full volumes in the catalog)" || { echo "FAIL: not caught mid-run (ranks '$ranks', $at of $n_full volumes)"; fails=$((fails + 1)); }
victim=""
for p in $ranks; do
  r=$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
  [ -n "$r" ] && [ "$r" != 0 ] && victim=$p
done
if [ -z "$victim" ]; then echo "FAIL: no worker rank to kill"; fails=$((fails + 1)); else kill -9 "$victim"; fi
kill -CONT $ranks 2>/dev/null
timeout 60 tail --pid=$pid -f /dev/null; wait $pid; rc=$?
[ $rc != 0 ] && [ $rc != 4 ] && echo "ok: the job ends when a worker is killed (exit $rc)" || { echo "FAIL: the job finished despite the kill (exit $rc)"; fails=$((fails + 1)); }
none_left "no rank left running" "$t/kill"
$M -n 3 "$V" ingest "$t/c/dicom" --out "$t/kill" "${opts[@]}" 2>"$t/rerun.log"; check "rerun after kill -9" 4 $?
same_shards "killed and rerun: shards byte-identical to the uninterrupted run" "$t/one" "$t/kill"
dump_state "$t/one" >"$t/one.state"; dump_state "$t/kill" >"$t/kill.state"
same "killed and rerun: catalog equal to the uninterrupted run (but for run ids)" "$t/one.state" "$t/kill.state"

# reruns: the damaged file is rejected again (exit 4, as one process); gone, nothing is new (5:
# the incomplete series stays in the catalog as rejected, unchanged)
"$V" ingest "$t/c/dicom" --out "$t/one" "${opts[@]}" 2>/dev/null; check "rerun, damaged file still there, one process" 4 $?
$M -n 3 "$V" ingest "$t/c/dicom" --out "$t/r3" "${opts[@]}" 2>/dev/null; check "rerun, damaged file still there, 3 ranks" 4 $?
rm "$t/c/dicom/unlabeled/truncated.dcm"
"$V" ingest "$t/c/dicom" --out "$t/one" "${opts[@]}" 2>/dev/null; check "rerun with nothing new, one process" 5 $?
$M -n 3 "$V" ingest "$t/c/dicom" --out "$t/r3" "${opts[@]}" 2>/dev/null; check "rerun with nothing new, 3 ranks" 5 $?
same_shards "reruns left the shards alone" "$t/one" "$t/r3"
dump "$t/one" >"$t/one.cat"; dump "$t/r3" >"$t/r3.cat"; same "catalogs equal after the reruns" "$t/one.cat" "$t/r3.cat"

# failures every rank agrees on: another run holds the folder (6), a source that is not there
flock "$t/r3/.lock" sleep 30 & holder=$!
for _ in $(seq 100); do flock -n "$t/r3/.lock" true 2>/dev/null || break; sleep 0.05; done
$M -n 3 "$V" ingest "$t/c/dicom" --out "$t/r3" "${opts[@]}" 2>"$t/locked.log"; check "3 ranks, the folder locked by another run" 6 $?
kill $holder; wait $holder 2>/dev/null
"$V" ingest "$t/nothing" --out "$t/none1" "${opts[@]}" 2>/dev/null; rc1=$?; [ $rc1 != 0 ] || { echo "FAIL: a missing source passed"; fails=$((fails + 1)); }
$M -n 3 "$V" ingest "$t/nothing" --out "$t/none3" "${opts[@]}" 2>"$t/none3.log"; check "3 ranks, a missing source: one process's exit" $rc1 $?
none_left "no rank left after the failures" "$t/none3"

for d in r2 r3 kill; do "$V" verify "$t/$d" >/dev/null 2>&1; check "verify $d" 0 $?; done
"$V" verify-deid "$t/r2" "$t/r3" "$t/kill" --phi-list "$t/c/phi.txt" >"$t/deid.log" 2>&1; check "verify-deid: no planted identifier in the outputs" 0 $?
if grep -F -f <(awk 'length >= 6' "$t/c/phi.txt") "$t"/r*.log "$t/kill.log" "$t/rerun.log" >/dev/null; then echo "FAIL: a log holds a planted identifier"; fails=$((fails + 1)); else echo "ok: logs clean"; fi

[ $fails = 0 ] && echo "all ok" || { echo "$fails failure(s)"; exit 1; }
