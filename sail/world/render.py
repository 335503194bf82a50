"""Pixels from records: `render(record)` is a pure function of the record."""

from PIL import Image, ImageDraw

from sail.world.fonts import font
from sail.world.geometry import shape_outline

BLACK = (0, 0, 0)
GRID_GREY = (150, 150, 150)
BAR_FILL = (70, 110, 170)


def render(record: dict) -> Image.Image:
    """Draw the scene or card described by `record` as an RGB image."""
    image = Image.new("RGB", (record["width"], record["height"]), tuple(record["background"]))
    draw = ImageDraw.Draw(image)
    if record["kind"] == "card":
        _draw_card(draw, record)
        return image
    for obj in record["objects"]:
        _draw_object(draw, obj)
    for text in record["texts"]:
        draw.text(tuple(text["center"]), text["text"], fill=BLACK, font=font(text["font_size"]), anchor="mm")
    return image


def _darker(rgb: list[int]) -> tuple[int, int, int]:
    r, g, b = (int(0.6 * c) for c in rgb)
    return r, g, b


def _draw_object(draw: ImageDraw.ImageDraw, obj: dict) -> None:
    fill, edge = tuple(obj["rgb"]), _darker(obj["rgb"])
    if obj["shape"] == "circle":
        (cx, cy), r = obj["center"], obj["radius"]
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=edge)
    else:
        draw.polygon(shape_outline(obj["shape"], obj["center"], obj["radius"]), fill=fill, outline=edge)


def _draw_card(draw: ImageDraw.ImageDraw, record: dict) -> None:
    width, height, card = record["width"], record["height"], record["card"]
    title_font = font(max(8, round(0.15 * height)))
    draw.text((0.05 * width, 0.05 * height), card["title"], fill=BLACK, font=title_font, anchor="lt")
    if "table" in card:
        _draw_table(draw, card["table"], width, height)
    else:
        _draw_chart(draw, card["chart"], width, height)


def _draw_table(draw: ImageDraw.ImageDraw, rows: list[list], width: int, height: int) -> None:
    body_font = font(max(7, round(0.13 * height)))
    left, split, right = 0.08 * width, 0.6 * width, 0.92 * width
    top, row_height = 0.3 * height, 0.21 * height
    bottom = top + row_height * len(rows)
    draw.rectangle([left, top, right, bottom], outline=GRID_GREY)
    draw.line([split, top, split, bottom], fill=GRID_GREY)
    for index, (label, value) in enumerate(rows):
        y = top + row_height * index
        if index:
            draw.line([left, y, right, y], fill=GRID_GREY)
        middle = y + row_height / 2
        draw.text((left + 0.04 * width, middle), label, fill=BLACK, font=body_font, anchor="lm")
        draw.text(((split + right) / 2, middle), str(value), fill=BLACK, font=body_font, anchor="mm")


def _draw_chart(draw: ImageDraw.ImageDraw, chart: dict, width: int, height: int) -> None:
    small_font = font(max(7, round(0.11 * height)))
    left, right = 0.06 * width, 0.94 * width
    baseline, tallest = 0.83 * height, 0.45 * height
    slot = (right - left) / len(chart["labels"])
    top_value = max(chart["values"])
    gap = max(2, round(0.025 * height))
    draw.line([left, baseline, right, baseline], fill=GRID_GREY)
    for index, (label, value) in enumerate(zip(chart["labels"], chart["values"])):
        middle = left + slot * (index + 0.5)
        bar_top = baseline - tallest * value / top_value
        draw.rectangle([middle - 0.3 * slot, bar_top, middle + 0.3 * slot, baseline], fill=BAR_FILL)
        draw.text((middle, bar_top - gap), str(value), fill=BLACK, font=small_font, anchor="mb")
        draw.text((middle, baseline + 2), label, fill=BLACK, font=small_font, anchor="mt")
