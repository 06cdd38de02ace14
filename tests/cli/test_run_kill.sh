#!/usr/bin/env bash
# test_run_kill STAGE — kill -9 `vesalius run` while STAGE runs (ingest, pretrain, finetune-mae,
# finetune-scratch or validate), rerun, and the rerun ends with the same report.json (apart from
# its run_time line) as an uninterrupted run of the same study on the same files.
set -u
V=${VESALIUS:?}
stage=${1:?stage}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
. "$(dirname "$0")/tiny_study.sh"
study "$t/a"; study "$t/b"
"$V" run "$t/a/study.yaml" 2>/dev/null; check "uninterrupted run" 0 $?
# How long the stage ran uninterrupted: kill a quarter of the way in (at most 0.2 s in, so a loaded
# machine running the tests in parallel still lands the kill inside the stage).
ms=$(/usr/bin/python3 -c "
import json; ev = [json.loads(l) for l in open('$t/a/out/run.jsonl')]
from datetime import datetime
ts = {e['event']: datetime.fromisoformat(e['time'].rstrip('Z')) for e in ev if e.get('stage') == '$stage'}
print(int((ts['stage.done'] - ts['stage.start']).total_seconds() * 1000 / 4))")
# The kill must land while STAGE runs (started, not recorded): when it lands after, the run is
# tried again from scratch with half the delay, at most 5 times.
landed=0
for attempt in 1 2 3 4 5; do
  rm -rf "$t/b/out"
  "$V" run "$t/b/study.yaml" 2>/dev/null & pid=$!
  # (up to 5 minutes: the stages before validate take a minute or more alone, longer beside
  # other tests)
  for _ in $(seq 30000); do [ -f "$t/b/out/stages/$stage.started" ] && break; sleep 0.01; done
  [ -f "$t/b/out/stages/$stage.started" ] || { echo "FAIL: $stage never started"; exit 1; }
  sleep "$(awk -v m="$ms" 'BEGIN{printf "%.3f", (m > 200 ? 200 : m) / 1000}')"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  sleep 0.2 # the stage dies with the runner (PR_SET_PDEATHSIG)
  if [ -f "$t/b/out/stages/$stage.started" ] && [ ! -f "$t/b/out/stages/$stage.json" ]; then landed=1; break; fi
  ms=$((ms / 2))
done
[ $landed = 1 ] && echo "ok: killed during $stage (attempt $attempt)" || { echo "FAIL: the kill never landed during $stage"; fails=$((fails + 1)); }
"$V" run "$t/b/study.yaml" 2>/dev/null; check "rerun after kill -9 during $stage" 0 $?
if diff <(grep -v '"run_time"' "$t/a/out/report/report.json") <(grep -v '"run_time"' "$t/b/out/report/report.json") >/dev/null; then
  echo "ok: the same report.json as the uninterrupted run"
else
  echo "FAIL: report.json differs after kill -9 during $stage"; fails=$((fails + 1))
fi
echo "$fails failed"
[ "$fails" -eq 0 ]
