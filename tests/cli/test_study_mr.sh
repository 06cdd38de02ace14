#!/usr/bin/env bash
# test_study_mr — an MR cohort through `vesalius run` with no code change: the tiny study of
# tiny_study.sh on a cohort whose labeled volumes are MR (T1-like, bias fields, no Hounsfield
# units), its study file changed only where a cohort must be (pretraining on MR). Pretraining
# reads MR volumes only; both arms are trained and tested on the MR volumes and the report
# compares them; nothing identifying leaks.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
TINY_LABELED_MODALITY=MR . "$(dirname "$0")/tiny_study.sh"
study "$t/a"
sed -i 's/^  modalities: \[CT\]$/  modalities: [MR]/' "$t/a/study.yaml"
grep -q '^  modalities: \[MR\]$' "$t/a/study.yaml"; check "the study file names MR for pretraining" 0 $?
"$V" run "$t/a/study.yaml" 2>"$t/log"; rc=$?
check "the MR study runs" 0 $rc
[ $rc = 0 ] || tail -5 "$t/log"
/usr/bin/python3 - "$t/a/out" <<'PY' || fails=$((fails + 1))
import csv, glob, json, sys
import h5py
out = sys.argv[1]
mod = {}
for f in glob.glob(out + '/ingest/shards/*.h5'):
    with h5py.File(f, 'r') as h:
        for k, d in h['volumes'].items():
            m = d.attrs['modality']
            mod[k] = m.decode() if isinstance(m, bytes) else str(m)
labeled = [row['series'] for row in csv.DictReader(open(out + '/finetune-mae/labels.csv'))]
test = {row['series'] for row in csv.DictReader(open(out + '/finetune-mae/predictions-mae.csv')) if row['set'] == 'test'}
pool = json.load(open(out + '/pretrain/pool.json'))
n_mr = sum(m == 'MR' for m in mod.values())
r = json.load(open(out + '/report/report.json'))
checks = [
    ('the cohort holds CT, MR and radiographs', {'CT', 'MR', 'DX'} <= set(mod.values())),
    ('every labeled volume is MR', len(set(labeled)) >= 4 and all(mod.get(s) == 'MR' for s in labeled)),
    ('pretraining read the MR volumes but the test patients\'',
     pool['volumes'] + pool['excluded_volumes'] == n_mr and pool['excluded_volumes'] == len(test) > 0),
    ('the report compares both arms on the MR test volumes',
     all(r['comparison'][a] is not None for a in ('mae', 'scratch'))
     and {c['series'] for c in r['cases']} == test),
]
for name, ok in checks:
    print(('ok: ' if ok else 'FAIL: ') + name)
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
"$V" verify-deid --phi-list "$t/c/phi.txt" "$t/a/out/ingest" "$t/a/out/report" "$t/a/out/logs" \
  "$t/a/out/run.jsonl" "$t/a/out"/finetune-*/*.csv "$t/a/out"/finetune-*/*.jsonl >/dev/null 2>&1
check "verify-deid finds no planted identifier in the outputs" 0 $?
echo "$fails failed"
[ "$fails" -eq 0 ]
