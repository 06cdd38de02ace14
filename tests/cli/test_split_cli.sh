#!/usr/bin/env bash
# test_split_cli — `vesalius split` and pretraining without the test patients: roles equal an
# independent Python reading of studies/splits.h; the same bytes on a rerun and for label files
# in another order; dev_share never moves a test patient; `vesalius pretrain --split` leaves out
# every volume of every test patient (two series per patient here), or none with
# --include-test; clear errors; no original UID in any output.
set -u
V=${VESALIUS:?}
TOOL=${1:?det_cohort}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$TOOL" "$t" 24 >"$t/out" 2>&1; check "cohort of 24 series, 12 patients" 0 $?
lab="--labels $t/annotations.csv --volume-labels $t/volumes.csv --key $t/site.key --shards $t/shards"
"$V" split $lab --seed 5 --out "$t/s1" 2>"$t/err"; check "split" 0 $?
grep -q "12 labeled patients (24 series)" "$t/err" && echo "ok: 12 patients of 24 series" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
/usr/bin/python3 "$here/split_check.py" "$t/s1/splits.csv" || fails=$((fails + 1))
/usr/bin/python3 - "$t/s1/splits.csv" <<'PY' || fails=$((fails + 1))
import sys
rows = [l.split(",") for l in open(sys.argv[1]).read().splitlines()[2:]]
# every patient has a positive series (det_cohort: series 2p positive, 2p+1 negative): 12 positive
# patients, test round(6) = 6, dev round(2.4) = 2, train 4
roles = [r[2] for r in rows]
ok = len(rows) == 12 and all(r[1] == "1" for r in rows) and (roles.count("test"), roles.count("dev"), roles.count("train")) == (6, 2, 4)
print(("ok" if ok else "FAIL") + ": 12 positive patients: 6 test, 2 dev, 4 train")
sys.exit(0 if ok else 1)
PY
"$V" split $lab --seed 5 --out "$t/s2" 2>/dev/null; check "rerun" 0 $?
cmp -s "$t/s1/splits.csv" "$t/s2/splits.csv"; check "a rerun writes the same bytes" 0 $?
{ head -1 "$t/volumes.csv"; tail -n +2 "$t/volumes.csv" | tac; } >"$t/vol-rev.csv"
{ head -1 "$t/annotations.csv"; tail -n +2 "$t/annotations.csv" | tac; } >"$t/ann-rev.csv"
"$V" split --labels "$t/ann-rev.csv" --volume-labels "$t/vol-rev.csv" --key "$t/site.key" --shards "$t/shards" \
  --seed 5 --out "$t/s3" 2>/dev/null; check "label files in another order" 0 $?
cmp -s "$t/s1/splits.csv" "$t/s3/splits.csv"; check "the same split from the same set in another order" 0 $?
"$V" split $lab --seed 5 --dev-share 0.4 --out "$t/s4" 2>/dev/null; check "another dev share" 0 $?
[ "$(grep ',test$' "$t/s1/splits.csv")" = "$(grep ',test$' "$t/s4/splits.csv")" ] && ! cmp -s "$t/s1/splits.csv" "$t/s4/splits.csv" \
  && echo "ok: dev_share moves dev patients, never a test patient" || { echo "FAIL: dev_share moved the test set"; fails=$((fails + 1)); }
"$V" split $lab --seed 6 --out "$t/s5" 2>/dev/null; check "another seed" 0 $?
cmp -s "$t/s1/splits.csv" "$t/s5/splits.csv"; check "another seed, another split" 1 $?
grep -q '"finetune.test_share": "0.5"' "$t/s1/settings.json" && echo "ok: settings.json records the shares" || { echo "FAIL: settings.json"; fails=$((fails + 1)); }
if grep -rq "1.2.826.0.1.3680043.99" "$t/s1"; then echo "FAIL: an original UID in the split"; fails=$((fails + 1)); else echo "ok: no original UID in the split"; fi

# pretraining leaves out every volume of the 6 test patients: 12 of 24
arch="--crop 16 --patch 8 --dim 16 --depth 1 --heads 2 --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 2 --steps 3 --warmup 1 -j 1 --log-level warn"
"$V" pretrain --shards "$t" --split "$t/s1/splits.csv" $arch --out "$t/p1" 2>"$t/err"; check "pretrain without the test patients" 0 $?
/usr/bin/python3 - "$t/p1/pool.json" 12 12 6 excluded <<'PY' || fails=$((fails + 1))
import json, sys
p = json.load(open(sys.argv[1]))
want = {"volumes": int(sys.argv[2]), "excluded_volumes": int(sys.argv[3]), "excluded_patients": int(sys.argv[4]), "test_patients": sys.argv[5]}
ok = all(p[k] == v for k, v in want.items()) and p["schema"] == "vesalius.pretrain.pool/1"
print(("ok" if ok else "FAIL") + ": pool.json %s" % {k: p[k] for k in want})
sys.exit(0 if ok else 1)
PY
"$V" pretrain --shards "$t" --split "$t/s1/splits.csv" --include-test $arch --out "$t/p2" 2>/dev/null; check "pretrain with the test patients" 0 $?
/usr/bin/python3 - "$t/p2/pool.json" 24 0 0 included <<'PY' || fails=$((fails + 1))
import json, sys
p = json.load(open(sys.argv[1]))
ok = (p["volumes"], p["excluded_volumes"], p["test_patients"]) == (24, 0, "included")
print(("ok" if ok else "FAIL") + ": --include-test keeps every volume")
sys.exit(0 if ok else 1)
PY
cmp -s "$t/p1/model.safetensors" "$t/p2/model.safetensors"; check "the pool changes the model" 1 $?
"$V" pretrain --shards "$t" $arch --out "$t/p3" 2>/dev/null; check "pretrain without a split" 0 $?
grep -q '"test_patients": "no split"' "$t/p3/pool.json" && echo "ok: pool.json says there was no split" || { echo "FAIL: pool.json without a split"; fails=$((fails + 1)); }

# errors
"$V" split --key "$t/site.key" --shards "$t/shards" --out "$t/x" 2>"$t/err"; check "no labels: usage error" 2 $?
"$V" split $lab --dev-share 0.6 --test-share 0.5 --out "$t/x" 2>"$t/err"; check "shares summing above 1" 2 $?
grep -q "test-share" "$t/err" && echo "ok: names the option" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
printf '# vesalius splits v1 k=5 seed=1 val_fraction=0.2\npatient,positive,fold,validation_folds\n' >"$t/old.csv"
"$V" pretrain --shards "$t" --split "$t/old.csv" $arch --out "$t/x" 2>"$t/err"; check "an old k-fold file" 1 $?
grep -q "old.csv: not a vesalius splits file of version 2" "$t/err" && echo "ok: says what the file is not" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
