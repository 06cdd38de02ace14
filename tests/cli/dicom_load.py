"""dicom_load.py — pydicom's reading of a DICOM file for the checkers of tests/cli, with the
compressed syntaxes pydicom cannot decode without extra plugins (JPEG-LS, JPEG lossless, RLE)
first decompressed by DCMTK's own command-line tools into a temporary file."""
import os
import subprocess
import tempfile

import pydicom

DECODERS = {'1.2.840.10008.1.2.4.80': 'dcmdjpls', '1.2.840.10008.1.2.4.70': 'dcmdjpeg',
            '1.2.840.10008.1.2.5': 'dcmdrle'}


def load(path):
    ds = pydicom.dcmread(path)
    tool = DECODERS.get(str(ds.file_meta.TransferSyntaxUID))
    if tool:
        fd, tmp = tempfile.mkstemp(suffix='.dcm')
        os.close(fd)
        try:
            subprocess.check_call([tool, path, tmp])
            ds = pydicom.dcmread(tmp)
        finally:
            os.remove(tmp)
    return ds
