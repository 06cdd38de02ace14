#!/usr/bin/python3
"""png_pixels.py FILE — decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) with
zlib alone and print: width height non_white_fraction distinct_colours has_blue has_red, where
blue and red are the report's two arm colours (#1f77b4, #d62728)."""
import struct, sys, zlib

data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, typ = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if typ == b"IHDR":
        w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        assert depth == 8 and ctype in (2, 6) and interlace == 0, "unsupported PNG"
        bpp = 3 if ctype == 2 else 4
    elif typ == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours, non_white, blue, red = set(), 0, False, False
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = (line[x], line[x + 1], line[x + 2])
        colours.add(px)
        if px != (255, 255, 255): non_white += 1
        if abs(px[0] - 31) < 8 and abs(px[1] - 119) < 8 and abs(px[2] - 180) < 8: blue = True
        if abs(px[0] - 214) < 8 and abs(px[1] - 39) < 8 and abs(px[2] - 40) < 8: red = True
    prev = line
print(w, h, "%.4f" % (non_white / (w * h)), len(colours), int(blue), int(red))
