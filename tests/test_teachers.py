"""Teachers: the world teacher, budgets, and the OpenAI-compatible client against a real server.

The real server is `transformers serve` hosting a tiny random InternVL saved here (one server for
the module, started through `sail.caption.serve`, which registers the image-only processor first).
Retries, refused replies, resume and key hygiene use a scripted stand-in HTTP server, whose
failures we control; its teachers record their waits instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sail.caption.teachers import (
    CAPTION_PROMPT,
    Budget,
    BudgetExceeded,
    CaptionItem,
    CaptionRequestError,
    OpenAIChatTeacher,
    WorldTeacher,
    alt_text_focus,
    chat_cost_per_caption,
    cost_at_scale,
    user_message,
    world_items,
)
from sail.world import alt_text, render, sample_records, score_captions, teacher_caption

# --- a real OpenAI-compatible server ------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, tokenizer, geometry):
    """`transformers serve` on a free loopback port, hosting a tiny InternVL saved for this module."""
    from sail.caption.serve import start_server, stop_server, wait_healthy
    from sail.model import build_vlm, make_processor

    model_dir = tmp_path_factory.mktemp("served") / "tiny-internvl"
    processor = make_processor(tokenizer, geometry.tile_size, geometry.image_seq_length)
    build_vlm(geometry, tokenizer).save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    log_path = model_dir.parent / "server.log"
    process, base_url = start_server(model_dir, log_path=log_path)
    try:
        wait_healthy(base_url, process, timeout=120)
    except Exception as error:
        stop_server(process)
        raise RuntimeError("server did not start; its log:\n" + log_path.read_text()[-3000:]) from error
    yield {"base_url": base_url, "model": str(model_dir), "processor": processor}
    stop_server(process)


def served_teacher(served, **kwargs) -> OpenAIChatTeacher:
    kwargs.setdefault("max_tokens", 4)
    return OpenAIChatTeacher(served["base_url"], served["model"], api_key_env=None, backoff=0.05, **kwargs)


def test_the_image_reaches_the_served_model(served, records):
    """prompt_tokens with the image minus without = <img> + 16 x <IMG_CONTEXT> + </img> + the template's newline."""
    processor = served["processor"]
    tokenizer = processor.tokenizer
    teacher = served_teacher(served)
    item = world_items(records[:1])[0]
    with_image = teacher.complete(teacher.messages(item)).usage["prompt_tokens"]
    text_only = teacher.complete(user_message(CAPTION_PROMPT)).usage["prompt_tokens"]

    # The same two prompts through our processor, here: the server must count exactly these tokens.
    def local_count(image: bool) -> int:
        content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": CAPTION_PROMPT}]
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        if not image:
            return len(tokenizer.encode(text, add_special_tokens=False))
        return processor(text=[text], images=[render(records[0])], return_tensors="pt")["input_ids"].shape[1]

    newline = len(tokenizer.encode("\n", add_special_tokens=False))  # the template writes "<IMG_CONTEXT>\n"
    assert (text_only, with_image) == (local_count(False), local_count(True))
    assert with_image - text_only == processor.image_seq_length + 2 + newline == 19


def test_the_sft_chat_judge_asks_the_served_model_about_each_sample_with_its_image(served, records, tmp_path):
    """The judge's rubric and image reach a real OpenAI-compatible server; a random model's reply does
    not parse, which gives NaN scores and keeps the reply, never an exception."""
    from sail.sft.judge import ChatJudge

    render(records[0]).save(tmp_path / "a.png")
    rows = [
        {"image": "a.png", "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "human", "value": "How many sides has a square?"}, {"from": "gpt", "value": "4"}]},
    ]
    teacher = served_teacher(served)
    judged = ChatJudge(teacher).score(rows, tmp_path)
    assert len(judged) == 2 and all(isinstance(j.raw, str) for j in judged)
    assert teacher.stats.attempts == 2 and teacher.stats.prompt_tokens > 0


def test_a_real_server_s_truncated_reply_is_billed_but_never_cached(served, records, tmp_path):
    """One new token always ends with finish_reason "length" (an EOS counts too): no caption, however short."""
    cache = tmp_path / "captions.jsonl"
    items = world_items(records[:2])
    teacher = served_teacher(served, cache_path=cache, max_tokens=1, cost_per_caption=0.01)
    with pytest.raises(
        CaptionRequestError,
        match=r"2 of 2 requests failed \(first: item '.*' at "
        rf"{re.escape(served['base_url'])}: truncated reply",
    ):
        teacher.caption(items)
    assert (teacher.stats.attempts, teacher.stats.refused, teacher.stats.completion_tokens) == (2, 2, 2)
    assert teacher.spent.captions == 0 and teacher.spent.usd == pytest.approx(0.02)
    assert not cache.exists() and served_teacher(served, cache_path=cache, max_tokens=1).cached_entries() == {}


# --- a scripted stand-in server -----------------------------------------------------------


def completion(text: str | None, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


@pytest.fixture
def stub():
    """An HTTP server answering /v1/chat/completions as scripted, then with 200s ("caption <n>" for post n).

    A script entry is a status (with a stock body), or (status, body, headers): body a JSON-able
    object, raw bytes, or None for the stock one. Teachers made by `stub_teacher` record their
    waits in `waits` instead of sleeping.
    """
    state = {"script": [], "posts": 0, "auth": [], "waits": [], "lock": threading.Lock()}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state["lock"]:
                state["posts"] += 1
                state["auth"].append(self.headers.get("Authorization"))
                entry = state["script"].pop(0) if state["script"] else 200
                n = state["posts"]
            status, body, headers = entry if isinstance(entry, tuple) else (entry, None, {})
            if body is None:
                body = completion(f"caption {n}") if status == 200 else {"error": {"message": "boom"}}
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["base_url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def stub_teacher(stub, **kwargs) -> OpenAIChatTeacher:
    kwargs.setdefault("api_key_env", None)
    return OpenAIChatTeacher(stub["base_url"], "stub", backoff=0.01, sleep=stub["waits"].append, **kwargs)


def failed(item: CaptionItem, base_url: str, cause: str) -> str:
    """The `match=` pattern of a one-item failure: the item, the server, then the cause (a regex)."""
    return rf"1 of 1 requests failed \(first: item {re.escape(repr(item.id))} at {re.escape(base_url)}: {cause}"


def test_failures_are_retried_with_backoff(stub, records):
    stub["script"] = [500, 503, 429]
    teacher = stub_teacher(stub, max_retries=3)
    assert teacher.caption(world_items(records[:1])) == ["caption 4"]
    assert (stub["posts"], teacher.stats.retries, teacher.stats.attempts) == (4, 3, 4)
    assert stub["waits"] == pytest.approx([0.01, 0.02, 0.04])


def test_retry_after_is_honoured_up_to_max_backoff(stub, records):
    in_30_s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    stub["script"] = [
        (429, None, {"Retry-After": "7"}),
        (503, None, {"Retry-After": "1.5"}),
        (429, None, {"Retry-After": "3600"}),
        (503, None, {"Retry-After": in_30_s}),
        (500, None, {"Retry-After": "9"}),
    ]  # only 429 and 503 are asked to wait: backoff
    teacher = stub_teacher(stub, max_retries=5, max_backoff=60)
    assert teacher.caption(world_items(records[:1])) == ["caption 6"]
    assert stub["waits"][:3] == [7.0, 1.5, 60.0]
    assert stub["waits"][3] == pytest.approx(30, abs=1.5) and stub["waits"][4] == pytest.approx(0.01 * 2**4)


def test_connection_failures_name_the_server_after_retries(records):
    from sail.caption.serve import free_port

    waits = []
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    item = world_items(records[:1])[0]
    teacher = OpenAIChatTeacher(base_url, "m", api_key_env=None, max_retries=2, backoff=0.5, sleep=waits.append)
    with pytest.raises(CaptionRequestError, match=failed(item, base_url, r"APIConnectionError: .*gave up after 3")):
        teacher.caption([item])
    assert waits == [0.5, 1.0] and teacher.stats.attempts == 3


@pytest.mark.parametrize(
    "content, finish_reason, cause",
    [
        (None, "stop", r"filtered reply \(null content, finish_reason 'stop'\)"),
        ("I can't help with that", "content_filter", r"filtered reply \(finish_reason 'content_filter'\)"),
        ("A red circle sits at the top left and a", "length", r"truncated reply \(finish_reason 'length'\)"),
        (" ", "stop", "empty reply"),
    ],
    ids=["null-content", "content-filter", "length", "blank"],
)
def test_a_filtered_or_truncated_reply_is_billed_never_cached_and_requested_again(
    stub, records, tmp_path, content, finish_reason, cause
):
    cache = tmp_path / "c.jsonl"
    items = world_items(records[:1])
    stub["script"] = [(200, completion(content, finish_reason), {})]
    teacher = stub_teacher(stub, cache_path=cache, cost_per_caption=0.01)
    with pytest.raises(CaptionRequestError, match=failed(items[0], stub["base_url"], cause)):
        teacher.caption(items)
    assert stub["posts"] == 1 and stub["waits"] == []  # not retried: it would be filtered or cut again
    assert teacher.cached_entries() == {} and teacher.spent.captions == 0
    assert teacher.spent.usd == pytest.approx(0.01)  # the server bills it, so the spend says so
    assert (teacher.stats.refused, teacher.stats.requested, teacher.stats.completion_tokens) == (1, 0, 3)
    resumed = stub_teacher(stub, cache_path=cache)
    assert resumed.cached_entries() == {}  # nothing on disk
    assert resumed.caption(items) == ["caption 2"] and stub["posts"] == 2
    assert [json.loads(line)["caption"] for line in cache.read_text().splitlines()] == ["caption 2"]


def test_a_reply_without_finish_reason_is_a_complete_caption(stub, records):
    body = completion("A red circle.")
    del body["choices"][0]["finish_reason"]
    stub["script"] = [(200, body, {})]
    assert stub_teacher(stub).caption(world_items(records[:1])) == ["A red circle."]


@pytest.mark.parametrize(
    "body, cause",
    [
        (b"<html>Welcome to nginx!</html>", r"reply is not JSON \(content-type 'application/json'\); is base_url"),
        ({"choices": []}, r"reply has no choices \(choices: \[\]\)"),
        ({"error": {"message": "overloaded"}}, r"reply has no choices \(not a chat completion\)"),
        ({"choices": [{"index": 0, "finish_reason": "stop"}]}, "reply's first choice has no message with text content"),
    ],
    ids=["not-json", "empty-choices", "error-object", "no-message"],
)
def test_a_body_that_is_not_a_chat_completion_names_the_cause(stub, records, body, cause):
    item = world_items(records[:1])[0]
    stub["script"] = [(200, body, {})]
    teacher = stub_teacher(stub)
    with pytest.raises(CaptionRequestError, match=failed(item, stub["base_url"], cause)):
        teacher.caption([item])
    assert stub["posts"] == 1 and teacher.cached_entries() == {}


def test_client_errors_are_not_retried_and_exhausted_retries_resume(stub, records, tmp_path):
    stub["script"] = [400]
    item = world_items(records[:1])[0]
    with pytest.raises(CaptionRequestError, match=failed(item, stub["base_url"], "BadRequestError: Error code: 400")):
        stub_teacher(stub).caption([item])
    assert stub["posts"] == 1

    cache = tmp_path / "c.jsonl"
    stub["posts"], stub["script"] = 0, [500, 500, 500]
    items = world_items(records[:2])
    with pytest.raises(CaptionRequestError):
        stub_teacher(stub, max_retries=1, max_concurrency=1, cache_path=cache).caption(items)
    # One worker, in order: item 0 meets 500, 500 and gives up; item 1 meets the last 500, then a 200.
    assert [json.loads(line)["id"] for line in cache.read_text().splitlines()] == [items[1].id]
    resumed = stub_teacher(stub, cache_path=cache)
    assert len(resumed.caption(items)) == 2
    assert resumed.stats.requested == 1 and stub["posts"] == 5


def test_a_resumed_run_requests_only_uncached_ids(stub, records, tmp_path):
    cache = tmp_path / "captions.jsonl"
    items = world_items(records[:5])
    first = stub_teacher(stub, cache_path=cache, max_concurrency=2)
    captions_a = first.caption(items[:3])
    assert first.stats.requested == first.stats.attempts == 3

    resumed = stub_teacher(stub, cache_path=cache, max_concurrency=2)
    captions_b = resumed.caption(items)
    assert (resumed.stats.requested, resumed.stats.attempts, resumed.stats.cached) == (2, 2, 3)
    assert captions_b[:3] == captions_a

    again = stub_teacher(stub, cache_path=cache)
    assert again.caption(list(reversed(items))) == list(reversed(captions_b))
    assert again.stats.attempts == 0
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(i.id for i in items)  # each image exactly once
    assert all(line["usage"] == {"prompt_tokens": 7, "completion_tokens": 3} for line in lines)

    other_prompt = stub_teacher(stub, cache_path=cache, prompt="What is shown?")
    assert other_prompt.cached_entries() == {}  # a cache belongs to one model + prompt + settings


def test_a_truncated_cache_line_is_skipped(stub, records, tmp_path):
    cache = tmp_path / "c.jsonl"
    items = world_items(records[:2])
    stub_teacher(stub, cache_path=cache).caption(items)
    text = cache.read_text().splitlines()
    cache.write_text(text[0] + "\n" + text[1][: len(text[1]) // 2])  # a crash cut the last line
    resumed = stub_teacher(stub, cache_path=cache)
    resumed.caption(items)
    assert resumed.stats.requested == 1


def test_budget_refuses_before_spending(stub, records):
    items = world_items(records[:4])
    world = WorldTeacher(budget=Budget(max_captions=3))
    with pytest.raises(BudgetExceeded, match="4 new captions .* > budget of 3 captions"):
        world.caption(items)
    assert world.spent.captions == 0
    world.caption(items[:3])
    with pytest.raises(BudgetExceeded):
        world.caption(items[:1])

    priced = stub_teacher(stub, cost_per_caption=0.01, budget=Budget(max_usd=0.025))
    with pytest.raises(BudgetExceeded, match=r"3 new captions x \$0.01 = \$0.0300.*> budget of \$0.0250"):
        priced.caption(items[:3])
    assert stub["posts"] == 0
    priced.caption(items[:2])
    assert priced.spent.usd == pytest.approx(0.02) and stub["posts"] == 2

    assert chat_cost_per_caption(300, 300, 2.50, 10.0) == pytest.approx(0.00375)
    assert cost_at_scale(300_000_000, 0.00375) == pytest.approx(1_125_000)
    assert WorldTeacher(cost_per_caption=0.004).estimate(1000) == pytest.approx(4.0)


def test_the_api_key_comes_from_the_environment_and_is_never_shown(stub, records, tmp_path, monkeypatch, caplog):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("SAIL_TEST_KEY", secret)
    cache = tmp_path / "c.jsonl"
    stub["script"] = [500, 401]
    teacher = stub_teacher(stub, api_key_env="SAIL_TEST_KEY", cache_path=cache, max_retries=2)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(CaptionRequestError) as failure:
            teacher.caption(world_items(records[:1]))
        teacher.caption(world_items(records[1:2]))
    assert stub["auth"] == [f"Bearer {secret}"] * 3  # it was used, and only in the header
    shown = [
        repr(teacher),
        str(teacher),
        caplog.text,
        cache.read_text(),
        str(failure.value),
        repr(failure.value.__cause__),
    ]
    assert all(secret not in text for text in shown)
    assert "SAIL_TEST_KEY" in repr(teacher)
    with pytest.raises(TypeError):
        pickle.dumps(teacher)
    monkeypatch.delenv("SAIL_TEST_KEY")
    with pytest.raises(KeyError, match="SAIL_TEST_KEY"):
        stub_teacher(stub, api_key_env="SAIL_TEST_KEY")


def test_alt_text_rides_along_in_recaption_mode(records):
    item = CaptionItem(id="x", record=records[0], alt_text="blue star icon")
    kwargs = dict(api_key_env=None, max_tokens=4)
    caption_mode = OpenAIChatTeacher("http://127.0.0.1:9/v1", "m", **kwargs).messages(item)
    recaption = OpenAIChatTeacher("http://127.0.0.1:9/v1", "m", use_alt_text=True, **kwargs).messages(item)
    assert caption_mode[0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert caption_mode[0]["content"][1]["text"] == CAPTION_PROMPT
    assert '"blue star icon"' in recaption[0]["content"][1]["text"]


# --- the world teacher --------------------------------------------------------------------


def test_world_teacher_is_the_record_teacher_and_order_independent(records):
    items = world_items(records[:20])
    teacher = WorldTeacher(seed=3)
    captions = teacher.caption(items)
    assert captions[5] == teacher_caption(records[5], random.Random(f"3:{records[5]['id']}"))
    assert WorldTeacher(seed=3).caption(items[::-1]) == captions[::-1]
    assert score_captions(captions, records[:20])["pair_f1"] == 1.0
    with pytest.raises(ValueError, match="record"):
        teacher.caption([CaptionItem(id="no-record", image=render(records[0]))])


def test_grounded_recaptions_keep_the_facts_and_lead_with_the_alt_text(records):
    scenes = [r for r in sample_records("train", 200, seed=1) if r["kind"] == "scene"]
    rng = random.Random(0)
    alts = [alt_text(r, rng) for r in scenes]
    items = world_items(scenes, alts)
    plain, grounded = WorldTeacher(False).caption(items), WorldTeacher(True).caption(items)
    assert score_captions(plain, scenes) == score_captions(grounded, scenes)
    changed = 0
    for record, alt, caption, recaption in zip(scenes, alts, plain, grounded):
        focus = alt_text_focus(alt, record)
        if focus is None:
            assert recaption == caption
        else:
            assert focus in recaption.split(".")[0].lower()
            changed += recaption != caption
    assert changed > 20
    # An alt-text colour the image does not show is never the focus.
    record = scenes[0]
    wrong = next(
        c
        for c in ("red", "blue", "green", "purple")
        if (c, record["objects"][0]["shape"]) not in {(o["colour"], o["shape"]) for o in record["objects"]}
    )
    assert alt_text_focus(f"{wrong} {record['objects'][0]['shape']} icon", record) is None


def test_the_server_runs_on_the_gpu_when_one_is_visible(monkeypatch, tmp_path):
    import subprocess

    import torch

    from sail.caption import serve

    commands = []
    monkeypatch.setattr(subprocess, "Popen", lambda command, **kwargs: commands.append(command))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    serve.start_server(tmp_path, port=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    serve.start_server(tmp_path, port=1)
    serve.start_server(tmp_path, port=1, device="cuda:1")
    assert [command[command.index("--device") + 1] for command in commands] == ["cuda", "cpu", "cuda:1"]
