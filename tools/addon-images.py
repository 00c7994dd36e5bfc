#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draws the add-on's icon.png (128x128) and logo.png (250x100): a lightning bolt on a
rounded tile, with the logo adding the waves of a broadcast (the MQTT side). Standard library
only (zlib for PNG); shapes are filled with 4x4 supersampling for smooth edges.

    tools/addon-images.py [OUTPUT_DIR]     (default: addon/)
"""
import math
import os
import struct
import sys
import zlib

SS = 4  # supersampling per axis


def png(path, width, height, pixels):
    """Writes RGBA rows (lists of (r, g, b, a) tuples) as a PNG file."""
    raw = bytearray()
    for row in pixels:
        raw.append(0)
        for r, g, b, a in row:
            raw += bytes((r, g, b, a))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(bytes(raw), 9)))
        f.write(chunk(b"IEND", b""))


def inside_polygon(x, y, poly):
    hit = False
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            hit = not hit
        j = i
    return hit


def inside_rounded_rect(x, y, x0, y0, x1, y1, r):
    if x < x0 or x > x1 or y < y0 or y > y1:
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def inside_arc(x, y, cx, cy, radius, width, start, end):
    d = math.hypot(x - cx, y - cy)
    if abs(d - radius) > width / 2:
        return False
    a = math.degrees(math.atan2(y - cy, x - cx))
    return start <= a <= end


def render(width, height, shapes):
    """shapes: list of (test(x, y) -> bool, colour(x, y) -> (r, g, b)); later ones on top."""
    rows = []
    for py in range(height):
        row = []
        for px in range(width):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(SS):
                for sx in range(SS):
                    x = px + (sx + 0.5) / SS
                    y = py + (sy + 0.5) / SS
                    colour = None
                    for test, fill in shapes:
                        if test(x, y):
                            colour = fill(x, y)
                    if colour:
                        acc[0] += colour[0]
                        acc[1] += colour[1]
                        acc[2] += colour[2]
                        acc[3] += 1
            n = acc[3]
            if n:
                row.append((round(acc[0] / n), round(acc[1] / n), round(acc[2] / n),
                            round(255 * n / (SS * SS))))
            else:
                row.append((0, 0, 0, 0))
        rows.append(row)
    return rows


def tile_colour(size):
    def fill(x, y):
        t = (x + y) / (2 * size)
        top, bottom = (18, 140, 126), (11, 87, 160)  # teal to blue
        return tuple(round(a + (b - a) * t) for a, b in zip(top, bottom))
    return fill


def bolt(ox, oy, s):
    """A lightning bolt in a box of size s at (ox, oy)."""
    pts = [(0.58, 0.06), (0.22, 0.56), (0.46, 0.56), (0.36, 0.94), (0.78, 0.40), (0.54, 0.40),
           (0.66, 0.06)]
    return [(ox + px * s, oy + py * s) for px, py in pts]


def icon(path):
    size = 128
    poly = bolt(14, 14, 100)
    shapes = [
        (lambda x, y: inside_rounded_rect(x, y, 4, 4, 124, 124, 26), tile_colour(size)),
        (lambda x, y: inside_polygon(x, y, poly), lambda x, y: (255, 214, 10)),
    ]
    png(path, size, size, render(size, size, shapes))


def logo(path):
    w, h = 250, 100
    poly = bolt(8, 8, 84)
    shapes = [
        (lambda x, y: inside_rounded_rect(x, y, 2, 2, 98, 98, 20), tile_colour(100)),
        (lambda x, y: inside_polygon(x, y, poly), lambda x, y: (255, 214, 10)),
    ]
    # Three waves travelling right, then a small house receiving them.
    for k, r in enumerate((22, 40, 58)):
        shapes.append((lambda x, y, r=r: inside_arc(x, y, 104, 50, r, 9, -50, 50),
                       lambda x, y, k=k: (11 + 20 * k, 87 + 25 * k, 160 + 20 * k)))
    house = [(182, 52), (212, 26), (242, 52), (236, 52), (236, 86), (188, 86), (188, 52)]
    door = [(206, 86), (206, 66), (218, 66), (218, 86)]
    shapes.append((lambda x, y: inside_polygon(x, y, house), lambda x, y: (11, 87, 160)))
    shapes.append((lambda x, y: inside_polygon(x, y, door), lambda x, y: (255, 214, 10)))
    png(path, w, h, render(w, h, shapes))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "addon")
    icon(os.path.join(out, "icon.png"))
    logo(os.path.join(out, "logo.png"))


if __name__ == "__main__":
    main()
