"""Teachers: the strong captioners whose detailed captions SAIL-Captioner is distilled from.

In the paper the teacher is GPT-4o. It writes excellent captions, but every caption costs money,
so it annotates only the reference subset; a distilled captioner captions the pool. Every teacher
here therefore carries a price and a budget, and refuses work beyond the budget *before* it
spends anything.

One interface, `Teacher.caption(items) -> list[str]` (one caption per item, in order), with:

- `WorldTeacher(grounded)`: captions written from the world record (`sail.world.teacher_caption`),
  free and instant; with `grounded=True` it recaptions: the same correct facts, phrased around what
  the alt-text names (see `WorldTeacher`).
- `OpenAIChatTeacher`: any OpenAI-compatible chat-completions server: hosted GPT-4o, lmdeploy's
  `api_server`, vLLM, `transformers serve` (`sail.caption.serve`). Images go as base64 PNG data
  URLs; requests run with a concurrency limit, retry with exponential backoff (or the server's
  `Retry-After`), and every complete caption is appended to a jsonl cache as soon as it arrives,
  so a killed run resumes where it stopped and captions every image exactly once. Filtered or
  truncated replies are refused, never cached. The API key is read from an environment variable only.

Items are `CaptionItem(id, image, alt_text, record)`; `world_items(records, alt_texts)` makes them
from world records (images rendered on demand).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from PIL import Image

from sail.caption import CAPTION_PROMPT
from sail.world import render, teacher_caption
from sail.world.captions import TEACHER_VARIETY
from sail.world.score import CELL, NOUN_PHRASE, QUOTED

log = logging.getLogger(__name__)

RECAPTION_PROMPT = (
    "Describe the image in detail. Its web alt-text, which may be incomplete or wrong, reads: "
    '"{alt_text}". Keep what the image confirms and correct the rest.'
)


# --- items ------------------------------------------------------------------------------


@dataclass
class CaptionItem:
    """One image to caption: an id (the cache key), the image, its alt-text, and for world images the record.

    `image` is a PIL image, a path, PNG/JPEG bytes, or None for a world item (rendered from `record`).
    """

    id: str
    image: Image.Image | str | os.PathLike | bytes | None = None
    alt_text: str | None = None
    record: dict | None = None

    def load_image(self) -> Image.Image:
        if self.image is None:
            if self.record is None:
                raise ValueError(f"item {self.id!r} has neither an image nor a record")
            return render(self.record)
        if isinstance(self.image, Image.Image):
            return self.image
        if isinstance(self.image, bytes):
            return Image.open(io.BytesIO(self.image))
        return Image.open(self.image)


def world_items(records: Sequence[dict], alt_texts: Sequence[str] | None = None) -> list[CaptionItem]:
    """Caption items for world records (ids from the records; images rendered when needed)."""
    if alt_texts is not None and len(alt_texts) != len(records):
        raise ValueError(f"{len(alt_texts)} alt-texts for {len(records)} records")
    if any(r.get("id") is None for r in records):
        raise ValueError("every record needs an id (records from sample_records have one); ids key the caption cache")
    return [
        CaptionItem(id=str(r["id"]), record=r, alt_text=None if alt_texts is None else alt_texts[i])
        for i, r in enumerate(records)
    ]


def image_data_url(image: Image.Image) -> str:
    """A base64 PNG data URL, the form OpenAI-compatible servers take in an `image_url` content part."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- cost and budget --------------------------------------------------------------------


class BudgetExceeded(RuntimeError):
    """A teacher was asked for more captions (or dollars) than its budget allows; nothing was spent."""


def cost_at_scale(n_images: int, cost_per_caption: float) -> float:
    """Dollars to caption `n_images` at `cost_per_caption` each: the paper-scale arithmetic.

    E.g. a detailed GPT-4o caption of one 448 px image costs roughly (300 input tokens x $2.50/M
    + 300 output tokens x $10/M) = $0.00375 (list prices at the time of writing; see
    `chat_cost_per_caption`); 300M images then cost `cost_at_scale(300e6, 0.00375)` = $1.1M,
    before retries. That is why the paper annotates a reference subset and distils a captioner.
    """
    return float(n_images) * float(cost_per_caption)


def chat_cost_per_caption(
    input_tokens: float, output_tokens: float, usd_per_m_input: float, usd_per_m_output: float
) -> float:
    """Price of one chat request from its token counts and the per-million-token prices."""
    return input_tokens * usd_per_m_input / 1e6 + output_tokens * usd_per_m_output / 1e6


@dataclass
class Budget:
    """Limits on what a teacher may spend: captions and/or dollars (None: no limit)."""

    max_captions: int | None = None
    max_usd: float | None = None


@dataclass
class Spent:
    """Captions produced, and dollars: those captions plus billed replies that gave none (filtered, truncated)."""

    captions: int = 0
    usd: float = 0.0


class Teacher(ABC):
    """A captioner with a price. Subclasses implement `caption(items)`, calling `check_budget` first.

    `cost_per_caption` (USD) is charged for every caption the teacher produces (and every `ask`),
    and for every billed reply that gave no caption; `budget` bounds the total. A request that would
    go beyond the budget raises `BudgetExceeded` before any work is done, with the arithmetic in the message.
    """

    name = "teacher"

    def __init__(self, *, cost_per_caption: float = 0.0, budget: Budget | None = None):
        if cost_per_caption < 0:
            raise ValueError("cost_per_caption must be >= 0")
        self.cost_per_caption = float(cost_per_caption)
        self.budget = budget or Budget()
        self.spent = Spent()
        self._spend_lock = threading.Lock()

    # Budget -------------------------------------------------------------------------------
    def check_budget(self, n_new: int) -> None:
        """Raise `BudgetExceeded` if `n_new` more captions would exceed the budget."""
        budget, spent = self.budget, self.spent
        if budget.max_captions is not None and spent.captions + n_new > budget.max_captions:
            raise BudgetExceeded(
                f"{self.name}: {n_new} new captions + {spent.captions} already spent = {spent.captions + n_new} "
                f"> budget of {budget.max_captions} captions"
            )
        cost = n_new * self.cost_per_caption
        if budget.max_usd is not None and spent.usd + cost > budget.max_usd + 1e-12:
            raise BudgetExceeded(
                f"{self.name}: {n_new} new captions x ${self.cost_per_caption:g} = ${cost:,.4f}, + ${spent.usd:,.4f} "
                f"already spent = ${spent.usd + cost:,.4f} > budget of ${budget.max_usd:,.4f}"
            )

    def _charge(self, n: int = 1, *, caption: bool = True) -> None:
        """Spend the price of `n` replies; `caption=False` for billed replies that gave no caption."""
        with self._spend_lock:
            self.spent.captions += n if caption else 0
            self.spent.usd += n * self.cost_per_caption

    def estimate(self, n_images: int) -> float:
        """Dollars this teacher would charge for `n_images` captions."""
        return cost_at_scale(n_images, self.cost_per_caption)

    # Work ---------------------------------------------------------------------------------
    @abstractmethod
    def caption(self, items: Sequence[CaptionItem]) -> list[str]:
        """One caption per item, in order; refuses (BudgetExceeded) before spending beyond the budget."""

    def ask(self, prompt: str, image: Image.Image | None = None) -> str:
        """A free-form question (e.g. a judge's rubric) about an optional image; chat teachers only."""
        raise TypeError(f"{type(self).__name__} cannot answer free-form questions")


# --- the world teacher ------------------------------------------------------------------


def alt_text_focus(alt_text: str | None, record: dict) -> str | None:
    """The first thing the alt-text names that the image really shows, as a phrase to find in a caption.

    Candidates, in the order the alt-text names them: quoted texts (returned with their quotes,
    `'"87"'`) and colour-shape noun phrases (`"red circle"`). A candidate the record does not
    confirm (a swapped colour, an absent text) is skipped: a teacher never copies an alt-text error.
    """
    if not alt_text or record.get("kind") != "scene":
        return None
    text = alt_text.lower()
    found = [(m.start(), f'"{m[1].strip()}"', ("text", m[1].strip())) for m in QUOTED.finditer(text)]
    unquoted = QUOTED.sub(lambda m: " " * len(m[0]), text)
    found += [(m.start(), f"{m[2]} {m[3]}", ("pair", (m[2], m[3]))) for m in NOUN_PHRASE.finditer(unquoted)]
    shown_texts = {t["text"].lower() for t in record["texts"]}
    shown_pairs = {(o["colour"], o["shape"]) for o in record["objects"]}
    for _, phrase, (kind, value) in sorted(found, key=lambda f: f[0]):
        if (kind == "text" and value in shown_texts) or (kind == "pair" and value in shown_pairs):
            return phrase
    return None


_SENTENCE_END = re.compile(r"(?<=\.)\s+")
_LINK = re.compile(r"^(Next, |Then |After that, )")


def ground_on_alt_text(caption: str, focus: str | None) -> str:
    """Move the sentence that places `focus` to the front of a teacher caption; drop the opener.

    Sentences that place an item are the ones with a cell phrase ("top left", ...); openers,
    relation and count sentences have none. The facts, and so the scores, are unchanged.
    """
    if not focus:
        return caption
    sentences = _SENTENCE_END.split(caption.strip())
    placing = [i for i, s in enumerate(sentences) if CELL.search(s.lower())]
    hit = next((i for i in placing if focus in sentences[i].lower()), None)
    if hit is None:
        return caption
    first = _LINK.sub("", sentences[hit])
    first = first[:1].upper() + first[1:]
    rest = [s for i, s in enumerate(sentences) if i != hit and (i >= placing[0] if placing else True)]
    return " ".join([first, *rest])


class WorldTeacher(Teacher):
    """Detailed, correct captions written from the world record: the stand-in for GPT-4o.

    `grounded=False` (caption mode): `sail.world.teacher_caption(record, rng)`.
    `grounded=True` (recaption mode): the same caption (same rng, so the same facts and phrasing),
    grounded on the alt-text the way a recaptioner uses it: the caption opens with the item the
    alt-text names first that the image really shows (a quoted text or a correctly coloured
    object, see `alt_text_focus`), then the other items in reading order; the generic opener
    sentence is dropped. Alt-text errors are never copied. When the alt-text confirms nothing (or
    the image is a card, whose caption already opens with its title), the caption is the
    ungrounded one. Each item's rng is seeded by (seed, item id), so captions do not depend on
    batch order.
    """

    def __init__(
        self,
        grounded: bool = False,
        *,
        seed: int = 0,
        variety: float = TEACHER_VARIETY,
        cost_per_caption: float = 0.0,
        budget: Budget | None = None,
    ):
        super().__init__(cost_per_caption=cost_per_caption, budget=budget)
        self.grounded, self.seed, self.variety = grounded, seed, variety
        self.name = "world-recaption" if grounded else "world"

    def _caption_one(self, item: CaptionItem) -> str:
        if item.record is None:
            raise ValueError(f"WorldTeacher needs the record of item {item.id!r}")
        rng = random.Random(f"{self.seed}:{item.id}")
        caption = teacher_caption(item.record, rng, self.variety)
        if self.grounded:
            caption = ground_on_alt_text(caption, alt_text_focus(item.alt_text, item.record))
        return caption

    def caption(self, items: Sequence[CaptionItem]) -> list[str]:
        items = list(items)
        self.check_budget(len(items))
        captions = []
        for item in items:
            captions.append(self._caption_one(item))
            self._charge()
        return captions

    def __repr__(self) -> str:
        return (
            f"WorldTeacher(grounded={self.grounded}, seed={self.seed}, cost_per_caption={self.cost_per_caption}, "
            f"budget={self.budget})"
        )


# --- the OpenAI-compatible chat teacher -------------------------------------------------


class CaptionRequestError(RuntimeError):
    """A chat request gave no usable reply: an HTTP error, a connection failure after all retries, a
    body that is not a chat completion, or a filtered or truncated caption. The message names the
    server (never the key), the item and the cause; from `caption`, the other items are cached."""


def _retryable(error: Exception) -> bool:
    import openai

    if isinstance(error, (openai.APIConnectionError, openai.APITimeoutError)):  # timeout subclasses connection
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    return False


def _retry_after(error: Exception) -> float | None:
    """Seconds a 429/503 asks us to wait in `Retry-After` (seconds or an HTTP date); None if it does not say."""
    import openai

    if not isinstance(error, openai.APIStatusError) or error.status_code not in (429, 503):
        return None
    value = error.response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)  # HTTP dates are GMT
        seconds = (when - datetime.now(UTC)).total_seconds()
    return seconds if seconds > 0 else 0.0  # a date in the past (or NaN): retry now


@dataclass(frozen=True)
class ChatReply:
    """The first choice of a chat completion: its text (None when withheld), why it ended, and its token usage."""

    content: str | None
    finish_reason: str | None
    usage: dict[str, int] | None

    def incomplete(self) -> str | None:
        """Why this reply is not a complete caption; None when it is one.

        Complete: non-empty text that ended with finish_reason "stop", or with none (some servers
        omit it; their text is all there is). "length" is a reply cut at max_tokens; null text or
        "content_filter" is a filtered reply; any other reason ("tool_calls") carries no caption.
        """
        if self.finish_reason == "length":
            return "truncated reply (finish_reason 'length'); raise max_tokens"
        if self.content is None or self.finish_reason == "content_filter":
            null = "null content, " if self.content is None else ""
            return f"filtered reply ({null}finish_reason {self.finish_reason!r})"
        if self.finish_reason != "stop" and self.finish_reason is not None:
            return f"no caption in the reply (finish_reason {self.finish_reason!r})"
        return None if self.content.strip() else "empty reply"


class JsonlCache:
    """Captions keyed by item id, one JSON object per line, appended as they arrive.

    Each line is written with a single `os.write` on a file opened with O_APPEND and then fsynced,
    so concurrent writers never interleave and a crash can only cut the last line short; `load`
    skips such a line (and lines written by a differently configured teacher).
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str):
        self.path, self.fingerprint = Path(path), fingerprint
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict]:
        entries: dict[str, dict] = {}
        if not self.path.exists():
            return entries
        skipped = 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if entry.get("fingerprint") == self.fingerprint and "id" in entry and "caption" in entry:
                entries[entry["id"]] = entry
            else:
                skipped += 1
        if skipped:
            log.warning("%s: skipped %d truncated or foreign lines", self.path, skipped)
        return entries

    def append(self, entry: dict) -> None:
        line = (json.dumps({**entry, "fingerprint": self.fingerprint}, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)


@dataclass
class RequestStats:
    """What the client did: HTTP attempts, retries, captions served from the cache or requested,
    refused replies (filtered or truncated: billed, no caption), token usage (of every reply)."""

    attempts: int = 0
    retries: int = 0
    cached: int = 0
    requested: int = 0
    refused: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)


class OpenAIChatTeacher(Teacher):
    """A teacher behind any OpenAI-compatible `/v1/chat/completions` endpoint.

    base_url: e.g. "https://api.openai.com/v1", "http://127.0.0.1:23333/v1" (lmdeploy api_server),
        "http://127.0.0.1:8000/v1" (vLLM, `transformers serve`).
    model: the served model name (GPT-4o: "gpt-4o"; `transformers serve`: the model path).
    api_key_env: the environment variable holding the key; the key is read from there only and
        never stored on this object's public attributes, printed or logged. None: no key (local
        servers without authentication).
    prompt / recaption_prompt: the caption instruction; with `use_alt_text` (recaption mode) the
        second is used, its `{alt_text}` filled from the item.
    max_concurrency: requests in flight at once (threads).
    max_retries, backoff: a failed request (connection error, timeout, 408/409/429, 5xx) is retried
        up to `max_retries` times, waiting the seconds a 429/503's `Retry-After` asks for, else
        backoff * 2**attempt seconds; either wait is capped by `max_backoff`. Other errors (400,
        401, ...) and replies that are not chat completions are not retried.
    timeout: seconds per request.
    cache_path: jsonl cache; ids already cached (by the same model, prompt and settings) are not
        requested again, so a resumed run captions every image exactly once. Captions already in
        the cache count as spent against the budget.
    sleep: how to wait between attempts (tests pass a recorder).

    Only complete captions are cached and counted (see `ChatReply.incomplete`). A filtered or
    truncated reply is not retried (the same request would be filtered or cut again) and raises
    `CaptionRequestError`; the item stays uncached, so a later run requests it again. The server
    bills such a reply, so its price is added to `spent.usd` (not `spent.captions`) and counted in
    `stats.refused`; that spend lives in this object only, the cache keeps captions alone.
    Every failure raises `CaptionRequestError`.
    """

    name = "openai-chat"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        prompt: str = CAPTION_PROMPT,
        recaption_prompt: str = RECAPTION_PROMPT,
        use_alt_text: bool = False,
        max_concurrency: int = 4,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 60.0,
        cache_path: str | os.PathLike | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        cost_per_caption: float = 0.0,
        budget: Budget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(cost_per_caption=cost_per_caption, budget=budget)
        import openai

        if max_concurrency < 1 or max_retries < 0 or backoff < 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and backoff >= 0 are required")
        if api_key_env is None:
            key = "EMPTY"  # the placeholder vLLM and lmdeploy accept when they run without authentication
        else:
            key = os.environ.get(api_key_env)
            if not key:
                raise KeyError(
                    f"environment variable {api_key_env} is not set; export the API key there "
                    "(or pass api_key_env=None for a local server without authentication)"
                )
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.prompt, self.recaption_prompt, self.use_alt_text = prompt, recaption_prompt, use_alt_text
        self.max_concurrency, self.max_retries, self.backoff, self.max_backoff = (
            max_concurrency,
            max_retries,
            backoff,
            max_backoff,
        )
        self.timeout, self.max_tokens, self.temperature, self._sleep = timeout, max_tokens, temperature, sleep
        # Retries are ours (counted, logged, same policy everywhere), so the client's own are off.
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)
        del key
        self.stats = RequestStats()
        settings = json.dumps([model, prompt, recaption_prompt if use_alt_text else None, max_tokens, temperature])
        self.fingerprint = hashlib.sha256(settings.encode()).hexdigest()[:16]
        self.cache = JsonlCache(cache_path, self.fingerprint) if cache_path else None
        self._cached = self.cache.load() if self.cache else {}
        self.spent.captions = len(self._cached)
        self.spent.usd = len(self._cached) * self.cost_per_caption

    def __repr__(self) -> str:
        return (
            f"OpenAIChatTeacher(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
            f"max_concurrency={self.max_concurrency}, max_retries={self.max_retries}, "
            f"cache_path={str(self.cache.path) if self.cache else None!r}, cost_per_caption={self.cost_per_caption}, "
            f"budget={self.budget})"
        )

    __str__ = __repr__

    def __getstate__(self):
        raise TypeError("OpenAIChatTeacher holds a live client with a credential; build one per process instead")

    # Requests -----------------------------------------------------------------------------
    def messages(self, item: CaptionItem) -> list[dict]:
        """The chat request for one item: the image as a base64 PNG data URL, then the instruction."""
        if self.use_alt_text and item.alt_text:
            text = self.recaption_prompt.format(alt_text=item.alt_text)
        else:
            text = self.prompt
        return user_message(text, item.load_image())

    def _error(self, item_id: str | None, cause: str) -> CaptionRequestError:
        """The one failure type, naming the server (base_url; the key never), the item and the cause."""
        subject = "a question" if item_id is None else f"item {item_id!r}"
        return CaptionRequestError(f"{subject} at {self.base_url}: {cause}")

    def complete(self, messages: list[dict], item_id: str | None = None) -> ChatReply:
        """One chat completion with retries (see the class); every failure raises `CaptionRequestError`.

        The reply is checked for shape only; whether it is a complete caption is the caller's call
        (`ChatReply.incomplete`). Its tokens are counted either way: the server bills them.
        """
        import openai

        for attempt in range(self.max_retries + 1):
            self.stats.add(attempts=1)
            try:
                raw = self._client.chat.completions.with_raw_response.create(
                    model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=self.temperature
                )
            except openai.APIError as error:
                cause = f"{type(error).__name__}: {str(error)[:300]}"
                if not _retryable(error):
                    raise self._error(item_id, cause) from error
                if attempt == self.max_retries:
                    raise self._error(item_id, f"{cause} (gave up after {attempt + 1} attempts)") from error
                asked = _retry_after(error)
                wait = min(self.backoff * 2**attempt if asked is None else asked, self.max_backoff)
                log.warning(
                    "%s: %s, retry %d/%d in %.2f s%s",
                    self.name,
                    type(error).__name__,
                    attempt + 1,
                    self.max_retries,
                    wait,
                    "" if asked is None else " (Retry-After)",
                )
                self.stats.add(retries=1)
                self._sleep(wait)
                continue
            reply = self._reply(raw.http_response, item_id)
            if reply.usage is not None:
                self.stats.add(**reply.usage)
            return reply
        raise AssertionError("unreachable")

    def _reply(self, response: Any, item_id: str | None) -> ChatReply:
        """The first choice of a 200 reply, or `CaptionRequestError` saying how the body is not a chat completion.

        The body is not quoted, only described: from a misdirected base_url it is a whole web page.
        """
        try:
            body = response.json()
        except ValueError as error:
            raise self._error(
                item_id,
                f"reply is not JSON (content-type {response.headers.get('content-type')!r}); "
                "is base_url the server's /v1 root?",
            ) from error
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices:
            shape = "choices: []" if choices == [] else "not a chat completion"
            raise self._error(item_id, f"reply has no choices ({shape})")
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), (str, type(None))):
            raise self._error(item_id, "reply's first choice has no message with text content")
        usage = body.get("usage")
        tokens = (
            {key: usage.get(key) or 0 for key in ("prompt_tokens", "completion_tokens")}
            if isinstance(usage, dict)
            else None
        )
        return ChatReply(message.get("content"), choices[0].get("finish_reason"), tokens)

    def ask(self, prompt: str, image: Image.Image | None = None) -> str:
        """The reply's text as it came ("" when filtered, possibly cut short): a judge counts such replies unparsed."""
        self.check_budget(1)
        reply = self.complete(user_message(prompt, image))
        self._charge()
        return reply.content or ""

    def _caption_one(self, item: CaptionItem) -> str:
        reply = self.complete(self.messages(item), item.id)
        problem = reply.incomplete()
        if problem is not None:
            self._charge(caption=False)
            self.stats.add(refused=1)
            raise self._error(item.id, problem)
        caption = reply.content.strip()
        entry = {"id": item.id, "caption": caption, "model": self.model, "usage": reply.usage}
        if self.cache:
            self.cache.append(entry)
        self._cached[item.id] = entry
        self._charge()
        self.stats.add(requested=1)
        return caption

    def caption(self, items: Sequence[CaptionItem]) -> list[str]:
        items = list(items)
        todo: dict[str, CaptionItem] = {}
        for item in items:
            if item.id not in self._cached:
                todo.setdefault(item.id, item)
        self.check_budget(len(todo))
        self.stats.add(cached=len(items) - sum(1 for i in items if i.id in todo))
        failures: list[tuple[str, Exception]] = []
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {pool.submit(self._caption_one, item): item.id for item in todo.values()}
            for future, item_id in futures.items():
                error = future.exception()
                if error is not None:
                    failures.append((item_id, error))
        if failures:
            item_id, error = failures[0]
            first = (
                error
                if isinstance(error, CaptionRequestError)
                else self._error(item_id, f"{type(error).__name__}: {error}")
            )  # not a request failure: an unreadable image, ...
            raise CaptionRequestError(
                f"{len(failures)} of {len(todo)} requests failed (first: {first}); "
                "the others are cached, rerun to resume"
            ) from error
        return [self._cached[item.id]["caption"] for item in items]

    def cached_entries(self) -> dict[str, dict]:
        """Cache entries by id (caption, model, usage)."""
        return dict(self._cached)


def user_message(text: str, image: Image.Image | None = None) -> list[dict]:
    """A single user turn in OpenAI's content-part form: optional image first, then the text."""
    content: list[dict] = []
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def teacher_captions(teacher: Teacher, items: Iterable[CaptionItem]) -> dict[str, str]:
    """Captions by item id (convenience for notebooks)."""
    items = list(items)
    return dict(zip((i.id for i in items), teacher.caption(items)))


__all__ = [
    "CAPTION_PROMPT",
    "RECAPTION_PROMPT",
    "Budget",
    "BudgetExceeded",
    "CaptionItem",
    "CaptionRequestError",
    "ChatReply",
    "JsonlCache",
    "OpenAIChatTeacher",
    "RequestStats",
    "Teacher",
    "WorldTeacher",
    "alt_text_focus",
    "chat_cost_per_caption",
    "cost_at_scale",
    "ground_on_alt_text",
    "image_data_url",
    "teacher_captions",
    "user_message",
    "world_items",
]
