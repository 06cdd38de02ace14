#!/usr/bin/env bash
# test_validate_report — `vesalius validate` end to end on a simulated 40-scan study (label
# budgets 10 and 20, 3 seeds, dev and test series): every budget x arm in every report, rerun
# determinism (byte-identical report.json apart from run_time), the documented schema, seeded
# bootstrap CIs that cover their estimates, provenance hashes recomputed independently, no
# planted identifier in any report, clear errors that keep an earlier report, and report.html
# rendered by headless Chromium (SVG plots in the DOM, a screenshot that is not blank).
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (got '$3', wanted '$2')"; fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
d=$t/study
/usr/bin/python3 "$here/../fixtures/validation_data.py" "$d" || { echo "FAIL: generator"; exit 1; }

validate() { # validate OUTDIR [EXTRA...]
  local out=$1; shift
  "$V" validate --labels "$d/labels.csv" --predictions "$d/predictions_mae.csv" \
    --predictions "$d/predictions_scratch.jsonl" --out "$out" \
    --train-log "$d/pretrain.log" --train-log finetune-mae="$d/finetune_mae.log" \
    --train-log finetune-scratch="$d/finetune_scratch.log" --preview mae-recon="$d/preview.png" \
    --study "$d/study.yaml" --shards "$d/shards" --seed 3 --operating-point 0.5 \
    --record-seed pretrain=11 --record-seed finetune=12 "$@"
}

validate "$t/r1" 2>"$t/err1"; expect "first run exits 0" 0 $?
sleep 1.1 # a different second in run_time
validate "$t/r2" --threads 1 2>/dev/null; rc=$?
# --threads changes the recorded thread count, so rerun with the same options for the byte check
validate "$t/r3" 2>/dev/null; expect "rerun exits 0" 0 $?
expect "run_time is one line" 1 "$(grep -c '"run_time"' "$t/r1/report.json")"
if cmp -s <(grep -v '"run_time"' "$t/r1/report.json") <(grep -v '"run_time"' "$t/r3/report.json"); then
  ok "rerun: report.json byte-identical apart from run_time"
else bad "rerun: report.json differs"; diff <(grep -v '"run_time"' "$t/r1/report.json") <(grep -v '"run_time"' "$t/r3/report.json") | head; fi
if cmp -s "$t/r1/report.json" "$t/r3/report.json"; then bad "run_time did not change between runs"; else ok "run_time holds the run's own times"; fi
expect "threads are recorded" 0 $(grep -q '"threads": 1,' "$t/r2/report.json"; echo $?)
grep -q "mae: AUC" "$t/err1" && ok "headline logged" || bad "headline not logged"

# the schema, the CIs and the hashes, checked in Python against hashlib and the shell
shards_sha=$(cd "$d/shards" && LC_ALL=C sha256sum $(LC_ALL=C ls *.h5) | sha256sum | cut -d' ' -f1)
validate "$t/r4" --seed 4 2>/dev/null; expect "other seed exits 0" 0 $?
/usr/bin/python3 - "$t" "$d" "$shards_sha" <<'PY' || fails=$((fails + 1))
import hashlib, json, sys
t, d, shards_sha = sys.argv[1:4]
r1 = json.load(open(t + "/r1/report.json")); r4 = json.load(open(t + "/r4/report.json"))
errs = []
def need(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond: errs.append(what)
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
need(r1["schema"] == "vesalius.validation.report" and r1["schema_version"] == 2, "schema name and version")
need([b["budget"] for b in r1["budgets"]] == [10, 20] and r1["headline_budget"] == 20 and r1["seeds"] == [0, 1, 2],
     "budgets 10 and 20 (headline 20), seeds 0-2")
for b in r1["budgets"]:
    for arm in ("mae", "scratch"):
        for m in ("auc", "cpm"):
            x = b[arm][m]
            need(len(x["per_seed"]) == 3 and abs(sum(x["per_seed"]) / 3 - x["mean"]) < 1e-9 and x["sd"] > 0
                 and x["ci95"][0] <= x["mean"] <= x["ci95"][1], "budget %d %s %s: mean of 3 seeds, sd, CI" % (b["budget"], arm, m))
    dd = b["difference_mae_minus_scratch"]["cpm"]
    need(abs(dd["value"] - (b["mae"]["cpm"]["mean"] - b["scratch"]["cpm"]["mean"])) < 1e-9, "budget %d: paired difference" % b["budget"])
need(r1["budgets"][1]["mae"]["auc"]["mean"] == r1["comparison"]["mae"]["auc"]["value"], "the headline is the largest budget")
need(r1["data"]["set"] == "test" and r1["data"]["n_series"] == 32 and r1["data"]["dev"]["n_series"] == 8
     and "early stopping" in r1["data"]["dev"]["use"], "test series counted, dev series marked as early stopping only")
for arm in ("mae", "scratch"):
    for m in ("auc", "cpm"):
        c = r1["comparison"][arm][m]
        need(set(c) >= {"value", "ci95"} and len(c["ci95"]) == 2, "comparison.%s.%s has value and ci95" % (arm, m))
        need(c["ci95"][0] <= c["value"] <= c["ci95"][1] and c["ci95"][0] < c["ci95"][1],
             "%s %s CI [%.3f, %.3f] covers %.3f" % (arm, m, c["ci95"][0], c["ci95"][1], c["value"]))
        need(c["n_resamples_defined"] > 950, "%s %s defined in most of 1000 resamples" % (arm, m))
        c4 = r4["comparison"][arm][m]
        need(c4["value"] == c["value"] and c4["ci95"] != c["ci95"], "%s %s: another seed moves the CI, not the value" % (arm, m))
need(r1["comparison"]["mae"]["cpm"]["value"] > r1["comparison"]["scratch"]["cpm"]["value"],
     "the simulated MAE detector wins on CPM")
dd = r1["comparison"]["difference_mae_minus_scratch"]["cpm"]
need(dd["ci95"][0] <= dd["value"] <= dd["ci95"][1], "paired difference CI covers the difference")
cases = r1["cases"]
need(len(cases) == 192 and all(set(c) >= {"series", "seed", "arm", "label", "score"} for c in cases),
     "cases: 192 rows (32 test series x 3 seeds x 2 arms) with series, seed, arm, label, score")
dev = {l.split(",")[0] for l in open(d + "/predictions_mae.csv") if ",dev," in l}
need({c["arm"] for c in cases} == {"mae", "scratch"} and {c["seed"] for c in cases} == {0, 1, 2}
     and not dev & {c["series"] for c in cases}, "cases: both arms, 3 seeds, no dev series")
for arm in ("mae", "scratch"):
    f = r1["arms"][arm]["seeds"]
    need(len(f["per_seed"]) == 3 and f["auc_mean"] is not None and f["cpm_sd"] is not None, "%s: 3 seeds with mean and sd" % arm)
    need(r1["arms"][arm]["volume"]["roc"][-1][1:] == [1.0, 1.0] and r1["arms"][arm]["lesion"]["froc"][0] == [None, 0.0, 0.0],
         "%s: every curve point from (0,0) to (1,1)" % arm)
tc = r1["training_curves"]
need([c["name"] for c in tc] == ["pretrain", "finetune-mae", "finetune-scratch"] and
     [c["kind"] for c in tc] == ["pretraining", "finetuning", "finetuning"] and len(tc[0]["points"]) == 61,
     "training curves: names, kinds and 61 pretraining points")
need(tc[0]["sha256"] == sha(d + "/pretrain.log"), "training log hash")
pv = r1["previews"][0]
need(pv["sha256"] == sha(d + "/preview.png") and pv["width"] == 96 and pv["height"] == 64, "preview hash and size")
p = r1["provenance"]
ins = {(i["role"], i["name"]): i["sha256"] for i in p["inputs"]}
need(ins[("labels", "labels.csv")] == sha(d + "/labels.csv") == p["labels_sha256"], "labels hash")
need(ins[("predictions", "predictions_scratch.jsonl")] == sha(d + "/predictions_scratch.jsonl"), "predictions hash")
need(p["study_sha256"] == sha(d + "/study.yaml"), "study hash")
need(p["shards"] == {"sha256": shards_sha, "n_files": 3}, "shard-set hash equals the sha256sum pipeline")
need(p["seeds"] == {"bootstrap": 3, "pretrain": 11, "finetune": 12} and p["git_revision"] and p["vesalius_version"] and p["cpu_model"], "seeds, version, revision, CPU")
need({l["name"] for l in p["libraries"]} >= {"DCMTK", "ITK", "HDF5", "zlib", "OpenBLAS"}, "library versions")
need(len(p["splits"]["assignment_sha256"]) == 64 and len(p["splits"]["seeds"]) == 6, "fits recorded")
need(all(k in r1["definitions"] for k in ("auc", "roc", "froc", "cpm", "hit", "ap", "bootstrap", "seeds", "sets", "brier")), "definitions in words")
for f in ("report.md", "report.html"):
    txt = open(t + "/r1/" + f).read()
    rows = [l for l in txt.replace("<tr>", "\n<tr>").splitlines() if "± " in l and ("mae" in l or "scratch" in l)]
    need(all(any(("%d" % b) in l and arm in l for l in rows) for b in (10, 20) for arm in ("mae", "scratch")),
         "%s: a row for every budget x arm" % f)
need(t not in open(t + "/r1/report.json").read(), "no folder layout in report.json")
sys.exit(1 if errs else 0)
PY

# input order does not matter: shuffled rows give the same report apart from the input hashes
mkdir -p "$t/shuf"
{ head -n 1 "$d/predictions_mae.csv"; tail -n +2 "$d/predictions_mae.csv" | shuf --random-source=<(yes); } >"$t/shuf/predictions_mae.csv"
shuf --random-source=<(yes) "$d/predictions_scratch.jsonl" >"$t/shuf/predictions_scratch.jsonl"
{ head -n 1 "$d/labels.csv"; tail -n +2 "$d/labels.csv" | tac; } >"$t/shuf/labels.csv"
"$V" validate --labels "$t/shuf/labels.csv" --predictions "$t/shuf/predictions_mae.csv" \
  --predictions "$t/shuf/predictions_scratch.jsonl" --out "$t/r8" --seed 3 2>/dev/null
expect "shuffled inputs exit 0" 0 $?
"$V" validate --labels "$d/labels.csv" --predictions "$d/predictions_mae.csv" \
  "$d/predictions_scratch.jsonl" --out "$t/r9" --seed 3 2>/dev/null
expect "--predictions takes several files" 0 $?
/usr/bin/python3 - "$t/r8/report.json" "$t/r9/report.json" <<'PY' && ok "shuffled rows give the same report" || bad "shuffled rows change the report"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b):
    del r["run_time"], r["provenance"]["inputs"], r["provenance"]["labels_sha256"]
sys.exit(0 if a == b and open(sys.argv[1]).read() != open(sys.argv[2]).read() else 1)
PY

# the FROC plot: x is false positives per scan on a log axis from 1/8 to 8, and a curve that
# reaches beyond 8 (here: 12 more weak false positives on every scan of the scratch arm) ends at
# the frame's right edge
/usr/bin/python3 - "$V" "$d" "$t/froc" <<'PY' && ok "FROC axis 1/8..8 (log), curves end at the frame" || bad "FROC axis"
import json, re, subprocess, sys
V, d, out = sys.argv[1:]
rows = [json.loads(l) for l in open(d + "/predictions_scratch.jsonl")]
with open(d + "/many_fp.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
        if "x" not in r:
            for i in range(12):
                f.write(json.dumps({**r, "x": 500.0 + i, "y": 500.0, "z": 500.0, "probability": 0.011}) + "\n")
subprocess.run([V, "validate", "--labels", d + "/labels.csv", "--predictions", d + "/predictions_mae.csv",
                "--predictions", d + "/many_fp.jsonl", "--out", out, "--bootstrap", "0"], check=True, capture_output=True)
svg = re.search(r'<svg id="plot-froc".*?</svg>', open(out + "/report.html").read(), re.S).group(0)
ticks = re.findall(r'class="tick">([^<]+)</text>', svg)
frame = re.search(r'<rect class="frame" x="(\d+)" y="\d+" width="(\d+)"', svg)
right = int(frame.group(1)) + int(frame.group(2))
xs = [float(p.split(",")[0]) for pl in re.findall(r'<polyline[^>]* points="([^"]*)"', svg) for p in pl.split()]
most = max(pt[1] for pt in json.load(open(out + "/report.json"))["arms"]["scratch"]["lesion"]["froc"])
ok = ticks[:7] == ["1/8", "1/4", "1/2", "1", "2", "4", "8"] and "false positives per scan (log)" in svg
ok &= most > 8 and max(xs) <= right + 0.01 and abs(max(xs) - right) < 0.01
print("FROC: %s FP/scan at most, polyline x up to %.2f, frame right edge %d" % (most, max(xs), right))
sys.exit(0 if ok else 1)
PY

# self-contained: nothing loaded from elsewhere
if grep -qE '(src|href)="(https?:|//|file:)|<script|<link' "$t/r1/report.html"; then bad "report.html loads something from outside"
else ok "report.html is self-contained"; fi

# nothing identifying: the generator planted identifiers in extra columns and log messages
for phi in 'DOE^JOHN' 19650412 MRN-4471923; do
  if grep -rqF -- "$phi" "$t/r1"; then bad "report holds planted identifier $phi"; else ok "no $phi in any report"; fi
done

# clear errors that name the file and line, and keep the earlier report
before=$(sha256sum "$t/r1/report.json")
sed '3s/,mae,/,bogus,/' "$d/predictions_mae.csv" >"$t/badarm.csv"
"$V" validate --labels "$d/labels.csv" --predictions "$t/badarm.csv" --out "$t/r1" 2>"$t/err"; expect "bad arm exits 1" 1 $?
grep -q "badarm.csv line 3: 'arm' must be mae or scratch" "$t/err" && ok "bad arm message names file and line" || { bad "bad arm message"; cat "$t/err"; }
expect "failed run keeps the earlier report" "$before" "$(sha256sum "$t/r1/report.json")"
sed '2s/^[^,]*,[^,]*,/1.2.3 DOE JOHN,P1,/' "$d/labels.csv" >"$t/badkey.csv"
"$V" validate --labels "$t/badkey.csv" --predictions "$d/predictions_mae.csv" --out "$t/r5" 2>"$t/err"; expect "non-pseudonymous key exits 1" 1 $?
grep -q "badkey.csv line 2: 'series' is missing or not a pseudonymous key" "$t/err" && ! grep -q DOE "$t/err" \
  && ok "bad key refused without echoing it" || { bad "bad key message"; cat "$t/err"; }
head -n 30 "$d/predictions_mae.csv" >"$t/short.csv"
"$V" validate --labels "$d/labels.csv" --predictions "$t/short.csv" --out "$t/r6" 2>"$t/err"; expect "missing series exits 1" 1 $?
grep -q "is labeled but has no prediction row in arm mae" "$t/err" && ok "missing series named" || { bad "missing series message"; cat "$t/err"; }
"$V" validate --labels "$d/labels.csv" --out "$t/r7" 2>/dev/null; expect "missing --predictions is a usage error" 2 $?
"$V" validate --labels "$d/labels.csv" --predictions "$d/predictions_mae.csv" --out "$t/r7" --bootstrap -3 2>/dev/null
expect "negative --bootstrap is a usage error" 2 $?
"$V" validate --labels "$d/labels.csv" --predictions "$d/predictions_mae.csv" --out "$t/r7" --record-seed bootstrap=4 2>/dev/null
expect "--record-seed cannot replace the bootstrap seed" 2 $?
"$V" validate stray.csv --labels "$d/labels.csv" --out "$t/r7" 2>/dev/null
expect "a file without --predictions is a usage error" 2 $?

# the HTML in a real browser
if [ -x /usr/bin/chromium ]; then
  flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
         --disable-component-update --disable-sync)
  u1=$(mktemp -d); timeout 90 /usr/bin/chromium "${flags[@]}" --user-data-dir="$u1" --dump-dom \
    "file://$t/r1/report.html" >"$t/dom.html" 2>/dev/null; rm -rf "$u1"
  for id in plot-budget-auc plot-budget-cpm plot-comparison plot-roc plot-froc plot-calibration plot-pretrain-loss plot-finetune-loss; do
    grep -q "<svg id=\"$id\"" "$t/dom.html" && ok "DOM has svg#$id" || bad "DOM lacks svg#$id"
  done
  n_poly=$(grep -o '<polyline' "$t/dom.html" | wc -l)
  [ "$n_poly" -ge 12 ] && ok "DOM has $n_poly polylines" || bad "DOM has only $n_poly polylines"
  grep -q 'src="data:image/png;base64,' "$t/dom.html" && ok "DOM embeds the preview PNG" || bad "no embedded preview"
  u2=$(mktemp -d); timeout 90 /usr/bin/chromium "${flags[@]}" --user-data-dir="$u2" --window-size=1000,1400 \
    --screenshot="$t/shot.png" "file://$t/r1/report.html" >/dev/null 2>&1; rm -rf "$u2"
  read -r w h frac ncol blue red < <(/usr/bin/python3 "$here/png_pixels.py" "$t/shot.png")
  echo "screenshot ${w}x${h}: non-white $frac, $ncol colours, blue $blue, red $red"
  /usr/bin/python3 -c "import sys; sys.exit(0 if float('$frac') > 0.03 and $ncol > 50 and $blue == 1 and $red == 1 else 1)" \
    && ok "screenshot is not blank and shows both arms' colours" || bad "screenshot looks blank"
else
  bad "chromium is missing (Debian package chromium)"
fi
echo "$fails failed"
[ "$fails" -eq 0 ]
