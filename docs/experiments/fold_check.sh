#!/usr/bin/env bash
# fold_check.sh OUT COHORT NAME [finetune options...] — train fold 0 of 5 with `vesalius finetune`
# on the shards of a finished run (OUT) and its cohort's labels, predict every labeled volume and
# print training vs held-out volume AUC and lesion hits (fold_eval.py). Writes /tmp/fold-NAME.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
V=${VESALIUS:-$here/../../build/vesalius}
out=$1; cohort=$2; name=$3; shift 3
o=/tmp/fold-$name; rm -rf "$o"; mkdir -p "$o"
"$V" finetune --shards "$out/ingest/shards" --labels "$cohort/labels/annotations.csv" \
  --volume-labels "$cohort/labels/volumes.csv" --key "$out/site.key" --out "$o" --fold 0 --folds 5 \
  --seed 2026 --log-level warn "$@" >"$o/ft.log" 2>&1
series=(); while IFS= read -r s; do series+=(--series "$s"); done < <(awk -F, 'NR>1{print $1}' "$o/labels.csv" | sort -u)
"$V" predict --model "$o"/*-fold0.det --shards "$out/ingest/shards" --out "$o/all.csv" --log-level warn "${series[@]}" >>"$o/ft.log" 2>&1
/usr/bin/python3 "$here/fold_eval.py" "$o/labels.csv" "$o/splits.csv" "$o/all.csv" 0
