#!/usr/bin/env bash
# test_deid_planted — planted PHI (top level, three sequences deep, private tags, names in
# descriptions, dates, UIDs with dates) never survives `vesalius anonymize`; pydicom and
# dcmdump read every output; verify-deid passes on outputs and exits 7 on inputs; pseudonyms,
# date shifts and references stay consistent across files and runs; unsafe keys are refused.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
SRC=${VESALIUS_SRC:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$SRC/tests/cli/deid_planted.py" "$V" "$t"
