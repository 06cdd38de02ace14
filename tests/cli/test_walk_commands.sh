#!/usr/bin/env bash
# test_walk_commands — the same SRC gives the same files to every command (io/base walk.h):
# inspect (the ingest reader), anonymize and verify-deid count the same files in a tree with a
# hidden file, a hidden folder, a link to a file, links to folders (one back to its parent, one
# elsewhere) and a broken link; each of them names the broken link.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 ($3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
"$V" demo-cohort --out "$t/c" --unlabeled 2 --labeled 0 --radiographs 0 --matrix 32 --slices 3:3 --seed 5 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
s=$t/src; mkdir -p "$s/.hidden" "$t/elsewhere"
series=($(ls -d "$t"/c/dicom/unlabeled/*))
cp -r "${series[0]}" "$s/a"                          # 3 files
cp "${series[1]}"/im0000.dcm "$s/.hidden/im.dcm"     # a hidden folder: 1
cp "${series[1]}"/im0001.dcm "$s/.dotfile.dcm"       # a hidden file: 1
cp "${series[1]}"/im0002.dcm "$t/elsewhere/e.dcm"
ln -s ../a/im0000.dcm "$s/.hidden/again.dcm"         # a file given already: 0
ln -s "$t/elsewhere" "$s/linked"                     # a folder elsewhere: 1
ln -s .. "$s/a/up"                                   # back to the parent: 0
ln -s a "$s/a_again"                                 # a folder walked already: 0
ln -s nowhere "$s/broken"                            # leads nowhere: 1, reported
want=7
"$V" inspect "$s" --summary "$t/inspect.json" >/dev/null 2>&1
n_inspect=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['files'])" "$t/inspect.json")
check "inspect (the ingest reader) counts every file once" $want "$n_inspect"
/usr/bin/python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(not any(r['path'].endswith('/broken') for r in s['rejected_files']))" "$t/inspect.json" && echo "ok: inspect names the broken link" || { echo "FAIL: inspect does not name the broken link"; fails=$((fails + 1)); }
"$V" verify-deid "$s" >"$t/vd.out" 2>"$t/vd.err"
n_vd=$(grep -o '[0-9]* files scanned' "$t/vd.err" | cut -d' ' -f1)
check "verify-deid scans the same files" $want "$n_vd"
grep -q "broken" "$t/vd.out" "$t/vd.err" && echo "ok: verify-deid names the broken link" || { echo "FAIL: verify-deid does not name it"; fails=$((fails + 1)); }
"$V" anonymize "$s" --out "$t/anon" --key "$t/k" >"$t/an.out" 2>"$t/an.err"
n_an=$(grep -o 'of [0-9]* files' "$t/an.err" | cut -d' ' -f2)
check "anonymize reads the same files" $want "$n_an"
grep -q "broken" "$t/an.err" && echo "ok: anonymize names the broken link" || { echo "FAIL: anonymize does not name it"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
