#!/usr/bin/env bash
# test_run_threads — a study without `threads:` runs on all cores (the key's default, 0, as for
# `-j 0`): `vesalius run` resolves 0 before it starts a stage, so ingest is not handed
# --threads=0 (#17: it exited 2 on it) and pretraining records the count it ran with (OpenMP's,
# here OMP_NUM_THREADS); `-j 0` is accepted by every command; shard bytes do not depend on it.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
"$V" demo-cohort --out "$t/c" --unlabeled 3 --labeled 0 --radiographs 0 --matrix 40 --slices 14:16 --seed 21 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
cat >"$t/study.yaml" <<YAML
name: threads-test
output: $t/out
deid:
  key_file: $t/site.key
ingest:
  sources: [$t/c/dicom]
pretrain:
  crop: [16, 32, 32]
  patch: [8, 8, 8]
  dim: 16
  depth: 1
  heads: 2
  dec_dim: 8
  dec_depth: 1
  dec_heads: 2
  batch: 2
  steps: 3
  warmup_steps: 1
YAML
OMP_NUM_THREADS=3 "$V" run "$t/study.yaml" --stages ingest,pretrain 2>"$t/log"; check "run of a study without threads:" 0 $?
[ -s "$t/out/stages/ingest.json" ] && [ -s "$t/out/stages/pretrain.json" ] && echo "ok: both stages recorded" \
  || { echo "FAIL: a stage record is missing"; fails=$((fails + 1)); }
grep -q '"threads": "3"' "$t/out/pretrain/settings.json" && echo "ok: pretraining ran on all (3) cores and recorded it" \
  || { echo "FAIL: pretrain settings: $(grep threads "$t/out/pretrain/settings.json")"; fails=$((fails + 1)); }
# -j 0 is the default; the shards are the same bytes as with one thread and as the run's
for j in 0 1; do
  OMP_NUM_THREADS=3 "$V" -j $j ingest "$t/c/dicom" --out "$t/j$j" --key "$t/site.key" 2>"$t/log.$j"; check "ingest -j $j" 0 $?
  (cd "$t/j$j/shards" && sha256sum -- *.h5) >"$t/j$j.sums"
done
(cd "$t/out/ingest/shards" && sha256sum -- *.h5) >"$t/run.sums"
[ -s "$t/run.sums" ] && cmp -s "$t/run.sums" "$t/j0.sums" && cmp -s "$t/run.sums" "$t/j1.sums" \
  && echo "ok: the same shard bytes from the run, -j 0 and -j 1" || { echo "FAIL: shards differ"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
