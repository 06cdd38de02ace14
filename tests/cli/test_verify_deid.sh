#!/usr/bin/env bash
# test_verify_deid — `vesalius verify-deid` with a phi list, through the command line: a listed
# 8-digit birth date inside a 39-digit 2.25 pseudonym (a log line, an SQLite catalog) is no hit,
# the same date on its own is (issue #17 item 4); a "\b" item matches on word boundaries only;
# hits name the place, never the value; the output is the same with 1 and 3 threads.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
fails=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1 (got '$3', wanted '$2')"; fails=$((fails + 1)); fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
mkdir -p "$t/clean" "$t/leak"
printf '19650412\nMRN4711\n\\bAnn\n' >"$t/phi.txt"
pseudo="2.25.318196504121234567890123456789012345"
# clean: the date only inside the pseudonym (text and SQLite), "Ann" only inside other words
printf '{"event":"sealed","series":"%s"}\nJoanne checked the Annex\n' "$pseudo" >"$t/clean/run.jsonl"
/usr/bin/python3 - "$t/clean/catalog.sqlite" "$pseudo" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create table volumes (series_key text, bytes integer)")
c.execute("insert into volumes values (?, ?)", (sys.argv[2], 19650412))  # the number as binary
c.commit()
PY
"$V" verify-deid --phi-list "$t/phi.txt" "$t/clean" >"$t/o" 2>/dev/null; check "date inside a pseudonym, Ann inside words: exit 0" 0 $?
check "no hit printed for the clean folder" 0 "$(wc -l <"$t/o")"
# leaks: the date on its own in a log line and in an SQLite text value, Ann as a word
printf 'patient born 19650412 seen\n' >"$t/leak/a.log"
printf 'dear ANN,\n' >"$t/leak/b.txt"
/usr/bin/python3 - "$t/leak/catalog.sqlite" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create table sources (path text)")
c.execute("insert into sources values ('/archive/19650412/IM1.dcm')")
c.commit()
PY
"$V" --threads 1 verify-deid --phi-list "$t/phi.txt" "$t/leak" >"$t/o1" 2>/dev/null; check "planted date and word: exit 7" 7 $?
check "the log line is named" 1 "$(grep -c "a.log: line 1 column 14: listed identifier" "$t/o1")"
check "the word is named" 1 "$(grep -c "b.txt: line 1 column 6: listed identifier" "$t/o1")"
check "the catalog's raw bytes are named" 1 "$(grep -c "catalog.sqlite: raw bytes at offset [0-9]*: listed identifier in the raw bytes" "$t/o1")"
check "no value is printed" 0 "$(grep -ci -e 19650412 -e ann, "$t/o1")"
"$V" --threads 3 verify-deid --phi-list "$t/phi.txt" "$t/leak" "$t/clean" "$t/leak" >"$t/o3" 2>/dev/null
"$V" --threads 1 verify-deid --phi-list "$t/phi.txt" "$t/leak" "$t/clean" "$t/leak" >"$t/o1b" 2>/dev/null
if cmp -s "$t/o1b" "$t/o3"; then echo "ok: 1 and 3 threads print the same lines in the same order"; else echo "FAIL: output depends on threads"; diff "$t/o1b" "$t/o3" | head; fails=$((fails + 1)); fi
echo "test_verify_deid: $fails failed"
[ "$fails" = 0 ]
