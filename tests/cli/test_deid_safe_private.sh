#!/usr/bin/env bash
# test_deid_safe_private — Retain Safe Private keeps exactly the PS3.15 Table E.3.10-1 elements
# (creator + element byte within the creator's block), with their creators, and nothing else
# private; without the option nothing private is left; verify-deid accepts the kept elements
# only when the file records the option.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
SRC=${VESALIUS_SRC:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$SRC/tests/cli/deid_safe_private.py" "$V" "$t"
