"""Tokenizers that carry InternVL's image tokens and the ChatML turn tokens.

The tiny profile trains its own byte-level BPE on world text (no download); the small/full
profiles take a real LLM's tokenizer and add the same special tokens, so every later stage sees
one vocabulary contract: `<img>`, `</img>`, `<IMG_CONTEXT>` and `<|im_start|>`/`<|im_end|>`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

IMAGE_START, IMAGE_END, IMAGE_CONTEXT, VIDEO = "<img>", "</img>", "<IMG_CONTEXT>", "<video>"
TURN_START, TURN_END, END_OF_TEXT, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<pad>"

# The attribute names InternVLProcessor reads from its tokenizer.
IMAGE_TOKEN_ATTRIBUTES = {
    "start_image_token": IMAGE_START,
    "end_image_token": IMAGE_END,
    "context_image_token": IMAGE_CONTEXT,
    "video_token": VIDEO,
}

# ChatML, the layout of InternVL2.5 / SAIL-VL: one `<IMG_CONTEXT>` per image, which the processor
# expands to `<img>` + N x `<IMG_CONTEXT>` + `</img>` (N = tokens per tile x tiles).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<IMG_CONTEXT>\n' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)


def train_world_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on world text; special tokens get the lowest ids."""
    specials = [END_OF_TEXT, TURN_START, TURN_END, IMAGE_START, IMAGE_END, IMAGE_CONTEXT, VIDEO, PAD]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=TURN_END,
        pad_token=PAD,
        extra_special_tokens=dict(IMAGE_TOKEN_ATTRIBUTES),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def load_language_tokenizer(directory: str | os.PathLike) -> PreTrainedTokenizerBase:
    """A real LLM's tokenizer (e.g. Qwen2.5's) with the InternVL image tokens and our chat template.

    The image tokens are named at load time, the way transformers takes a multimodal model's
    named special tokens: absent ones join the vocabulary, and the names are saved with the
    tokenizer. The caller must resize the LM's embeddings to `len(tokenizer)` afterwards.
    """
    tokenizer = AutoTokenizer.from_pretrained(directory, extra_special_tokens=dict(IMAGE_TOKEN_ATTRIBUTES))
    for token in (TURN_START, TURN_END):
        if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
            raise ValueError(f"tokenizer in {directory} has no ChatML token {token!r}: not a ChatML (Qwen-style) one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TEXT
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
