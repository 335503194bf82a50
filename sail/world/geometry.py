"""Outlines of the six shapes, shared by the record (bounding boxes) and the renderer.

Proportions are chosen so the shapes stay tellable apart at small sizes: the hexagon is
squashed to be clearly wider than tall (a regular one looks like a circle at 12 px), the
diamond is narrower than tall, and the square is inset so its corners read as corners.
"""

import math

HEXAGON_SQUASH = 0.72  # half-height of the hexagon relative to its half-width
DIAMOND_WIDTH = 0.68
SQUARE_HALF_SIDE = 0.8
STAR_INNER = 0.42
CIRCLE_POINTS = 32


def _ring(center: list[float], radii: list[float], start_degrees: float) -> list[tuple[float, float]]:
    cx, cy = center
    step = 360 / len(radii)
    return [
        (
            cx + r * math.cos(math.radians(start_degrees + k * step)),
            cy + r * math.sin(math.radians(start_degrees + k * step)),
        )
        for k, r in enumerate(radii)
    ]


def shape_outline(shape: str, center: list[float], radius: float) -> list[tuple[float, float]]:
    """Polygon vertices of `shape` centred on `center` (a 32-gon for the circle)."""
    cx, cy = center
    if shape == "circle":
        return _ring(center, [radius] * CIRCLE_POINTS, 0)
    if shape == "square":
        h = SQUARE_HALF_SIDE * radius
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":  # pointing up, shifted down so its box is centred
        return _ring([cx, cy + 0.25 * radius], [radius] * 3, -90)
    if shape == "diamond":
        w = DIAMOND_WIDTH * radius
        return [(cx, cy - radius), (cx + w, cy), (cx, cy + radius), (cx - w, cy)]
    if shape == "star":
        return _ring(center, [radius, STAR_INNER * radius] * 5, -90)
    if shape == "hexagon":  # pointy left and right, flat top and bottom
        h = HEXAGON_SQUASH * radius
        return [
            (cx - radius, cy),
            (cx - radius / 2, cy - h),
            (cx + radius / 2, cy - h),
            (cx + radius, cy),
            (cx + radius / 2, cy + h),
            (cx - radius / 2, cy + h),
        ]
    raise ValueError(f"unknown shape {shape!r}")


def outline_bbox(points: list[tuple[float, float]]) -> list[int]:
    """Integer pixel box [x0, y0, x1, y1] that covers the outline."""
    xs, ys = zip(*points)
    return [math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys))]
