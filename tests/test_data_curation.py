"""The curation funnel: every injected defect kind is caught, and no bad file raises."""

import io

import numpy as np
import pytest
from PIL import ExifTags, Image

from sail.data import FunnelConfig, Item, build_pool, decode, load_defects, read_image_folder, run_funnel
from sail.data.curation import STEPS, alt_text_reason, plot_funnel
from sail.data.pipeline import export_items


@pytest.fixture(scope="module")
def funnel(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    build_pool(root, 300, seed=5)
    return run_funnel(read_image_folder(root)), load_defects(root)


def test_every_defect_kind_is_caught(funnel):
    result, defects = funnel
    recall = result.recall_against(defects).set_index("kind")
    assert (recall["recall"] == 1.0).all(), recall
    assert len(result.false_drops(defects)) <= 0.01 * result.total  # phash is colour-blind (see curation)
    assert recall.loc["truncated", "steps"].startswith("decode")
    assert recall.loc["exact_duplicate", "steps"].startswith("exact_dup")
    assert all(recall.loc[k, "steps"].startswith("near_dup") for k in recall.index if k.startswith("near_"))


def test_counts_add_up(funnel):
    result, _ = funnel
    counts = result.counts()
    assert list(counts["step"]) == list(STEPS)
    assert counts["seen"].iloc[0] == result.total
    assert (counts["seen"].iloc[1:].values == counts["kept"].iloc[:-1].values).all()
    assert counts["kept"].iloc[-1] == len(result.kept)
    assert counts["dropped"].sum() == len(result.dropped) == result.reasons()["dropped"].sum()
    assert all(item.extra["width"] >= 32 for item in result.kept)
    summary = result.summary()
    assert summary["kept"] == len(result.kept) and summary["thresholds"]["phash_threshold"] == 10


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _noise(seed: int, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _bad_items() -> list[Item]:
    good = _noise(0)
    jpeg = _png(good, "JPEG")
    items = {
        "zero": b"",
        "random": bytes(range(256)) * 3,
        "truncated_jpeg": jpeg[: len(jpeg) // 2],
        "truncated_png": _png(good)[:60],
        "header_only": b"\x89PNG\r\n\x1a\n",
        "float": _png(Image.fromarray(np.zeros((40, 40), np.float32)), "TIFF"),
        "bomb": _png(Image.new("1", (9000, 9000))),
        "gif_anim": _png(_noise(1, "P"), "GIF"),
        "la": _png(_noise(2, "LA")),
        "one_bit": _png(_noise(3, "1")),
        "i32": _png(Image.fromarray(np.asarray(_noise(4, "L"), np.int32) * 300), "TIFF"),
        "cmyk": _png(_noise(5, "CMYK"), "JPEG"),
    }
    out = [Item(id=k, text="a red square", source="test", image=v) for k, v in items.items()]
    out.append(Item(id="missing", text="a red square", source="test", path="/nonexistent/x.png"))
    out.append(Item(id="nothing", text="a red square", source="test"))
    out.append(Item(id="nul", text="a red square", source="test", path="images/a\0b.png"))  # ValueError in open()
    out.append(Item(id="zero", text="repeated id", source="test", image=jpeg))
    return out


def test_no_bad_input_raises_and_reasons_are_named():
    result = run_funnel(_bad_items(), FunnelConfig(max_pixels=50_000_000))
    reasons = {i: d["reason"] for i, d in result.dropped.items()}
    assert reasons["zero"] == "zero_byte"
    assert reasons["random"] == "unidentified"
    assert reasons["truncated_jpeg"] == "truncated"
    assert reasons["truncated_png"] in ("truncated", "corrupt")
    assert reasons["header_only"] in ("truncated", "corrupt", "unidentified")
    assert reasons["float"] == "unsupported_mode"
    assert reasons["bomb"] == "too_many_pixels"
    assert reasons["missing"] == reasons["nothing"] == "missing_file"
    assert reasons["nul"] == "unreadable_file"
    assert reasons["zero#16"] == "duplicate_id"
    converted = {item.id: item.extra["converted_from"] for item in result.kept}
    assert converted["la"] == "LA" and converted["one_bit"] == "1" and converted["cmyk"] == "CMYK"
    assert converted["gif_anim"] == "P" and converted["i32"].startswith("I")


def test_decode_normalises_to_rgb():
    for mode in ("RGBA", "P", "L", "CMYK"):
        image, reason, info = decode(_png(Image.new(mode, (8, 8)), "TIFF" if mode == "CMYK" else "PNG"))
        assert reason is None and image.mode == "RGB" and info["mode"] == mode
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert decode(_png(rgba))[0].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    sixteen = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert decode(_png(sixteen))[0].getpixel((0, 0)) == (255, 255, 255)


def test_export_copies_an_upright_rgb_png_and_encodes_everything_else(tmp_path):
    """Copying is only right where the bytes already are the RGB image the funnel decoded."""
    rgb = _noise(7)
    rotated = Image.Exif()
    rotated[ExifTags.Base.Orientation] = 3  # stored upside down: the funnel turns it upright
    fast = io.BytesIO()
    rgb.save(fast, format="PNG", compress_level=1)  # not what an export's own encoder writes
    sources = {
        "rgb_png": fast.getvalue(),
        "rgba_png": _png(_noise(8, "RGBA")),
        "jpeg": _png(rgb, "JPEG"),
        "turned_png": _png_with_exif(rgb, rotated),
    }
    items = [Item(id=name, text="a red square", source="test", image=data) for name, data in sources.items()]
    export_items(items, tmp_path)
    written = {name: (tmp_path / "images" / f"{name}.png").read_bytes() for name in sources}
    assert written["rgb_png"] == sources["rgb_png"]
    for name in ("rgba_png", "jpeg", "turned_png"):
        assert written[name] != sources[name]
        assert Image.open(io.BytesIO(written[name])).mode == "RGB"
    turned = np.asarray(Image.open(io.BytesIO(written["turned_png"])))
    assert (turned == np.asarray(rgb)[::-1, ::-1]).all()


def _png_with_exif(image: Image.Image, exif: Image.Exif) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "text,source,reason",
    [
        ("", "laion_coco", "empty"),
        ("  ", "laion_coco", "empty"),
        ("", "sa1b", None),
        ("ab", "laion_coco", "too_short"),
        ("x" * 400, "laion_coco", "too_long"),
        ("IMG_2041.JPG", "laion_coco", "junk_only"),
        ("png hd wallpaper", "laion_coco", "junk_only"),
        ("DSC0042", "laion_coco", "junk_only"),
        ("!!! ???", "laion_coco", "junk_only"),
        ("red circle clipart hd wallpaper", "laion_coco", None),
        ('chart titled "Pet count"', "textcaps", None),
    ],
)
def test_alt_text_filter(text, source, reason):
    assert alt_text_reason(text, source, FunnelConfig()) == reason


def test_funnel_plot(funnel):
    import matplotlib

    matplotlib.use("Agg")
    figure = plot_funnel(funnel[0])
    assert len(figure.axes) == 2
