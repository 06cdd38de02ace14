#!/usr/bin/env bash
# test_validate_sklearn — `vesalius validate` against scikit-learn (ROC, AUC, Brier, operating
# points, per-fold AUC, one-class error) and a Python twin of LUNA16's evaluation (FROC, CPM, AP).
set -u
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$(dirname "$0")/validation_sklearn.py" "$t"
