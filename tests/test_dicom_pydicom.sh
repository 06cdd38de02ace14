#!/usr/bin/env bash
# The DICOM reader against pydicom on pydicom's and nibabel's test files (tests/dicom_vs_pydicom.py).
set -euo pipefail
cd "$(dirname "$0")"
exec /usr/bin/python3 -W ignore dicom_vs_pydicom.py
