"""The closed vocabulary of the SAIL world.

Everything a scene or a card can show is named here, so the generator, the renderer, the
caption writers and the scorer all agree on the same words.  Words used as rendered text
never collide with attribute words (colours, shapes, sizes, cell and relation words), so a
scorer can never confuse "the word cat" with an object mention.
"""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "hexagon")
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
SIZES: tuple[str, ...] = ("small", "large")
CELLS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")

# Distinct, saturated fills that stay visible on the light backgrounds.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 35),
    "orange": (250, 135, 0),
    "yellow": (235, 205, 0),
    "green": (30, 150, 50),
    "blue": (35, 75, 215),
    "purple": (125, 40, 175),
    "pink": (250, 110, 185),
    "brown": (125, 75, 30),
}

# Object extent as a fraction of the cell side ("radius" of the circumscribed circle).
SIZE_RADIUS: dict[str, float] = {"small": 0.25, "large": 0.42}

# Short lowercase words that scenes render as text and cards use as row / bar labels.
WORDS: tuple[str, ...] = (
    "cat",
    "dog",
    "sun",
    "tree",
    "box",
    "ship",
    "fish",
    "bird",
    "moon",
    "cake",
    "book",
    "lamp",
    "door",
    "frog",
    "kite",
    "bell",
    "rain",
    "snow",
    "leaf",
    "milk",
    "lion",
    "bear",
    "duck",
    "hat",
    "cup",
    "key",
    "car",
    "bus",
    "boat",
    "owl",
    "egg",
    "pen",
)

CARD_TITLES: tuple[str, ...] = (
    "Pet count",
    "Fruit sales",
    "Weekly stock",
    "Toy shop",
    "Farm log",
    "Class vote",
    "Snack poll",
    "Zoo visit",
    "Market day",
    "Garden plan",
)

NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
