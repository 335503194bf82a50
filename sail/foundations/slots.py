"""The image slot as the language foundation learns to read it: one vector per image token.

A VLM hands its LM one vector per image token, `image_seq_length` per tile, in the raster order
the pixel shuffle leaves them (row by row over the tile). A projector can only write vectors that
the image itself decides at each token's place, so the LM foundation is pretrained on contexts of
exactly that shape: at every image-token position, the sum of the embeddings of the words that
token's patch of image shows (`slot_words`). A projector then has a target the ViT's tokens can
reach with one linear map per attribute; a context of words in reading order (the earlier design)
had no place-for-place match with the image tokens and no projector could write it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional
from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from sail.model.chat import IGNORE_INDEX, encode_texts
from sail.model.tokenizer import IMAGE_CONTEXT, IMAGE_END, IMAGE_START
from sail.train.packing import pack_batch
from sail.world import CELLS
from sail.world.ocr import card_transcription

CARD_TILES = 3  # a 2:1 card: two tiles and a thumbnail under any tiling limit of 2 or more


def token_places(tokens_per_tile: int) -> list[tuple[int, bool]]:
    """For each image token of a tile, in the order the VLM's tokens come (row by row over a
    side x side raster): the scene cell (an index into CELLS) it lies over, and whether it is in an
    even column, where the slot holds the cell's place rather than its content."""
    side = round(tokens_per_tile**0.5)
    if side * side != tokens_per_tile or side % 2:
        raise ValueError(f"{tokens_per_tile} image tokens per tile do not make an even square raster")
    return [((row >= side // 2) * 2 + (col >= side // 2), col % 2 == 0) for row in range(side) for col in range(side)]


def cell_content(record: dict) -> list[str]:
    """A scene's cells in CELLS order, each as its content words."""
    content = {o["cell"]: f"{o['size']} {o['colour']} {o['shape']}" for o in record["objects"]}
    content |= {t["cell"]: f"text {t['text']}" for t in record["texts"]}
    return [content.get(cell, "empty") for cell in CELLS]


def card_words(card: dict) -> list[str]:
    """A card's words in reading order, lines apart: `title <title> ; <label> <value> ; ...`."""
    return card_transcription(card).split()


def slot_words(record: dict, tokens_per_tile: int) -> list[str]:
    """The words at each image token of a record's image, in the order the VLM's tokens come.

    A scene's tokens alternate, row by row, between a cell's place and its content (`top left`,
    `large red circle`, `top right`, `empty`, ...), as a line of text would name a place and then
    what is there: a question about "the top left" finds the token after the place it names.
    A card's tiles each hold its words one per token in reading order, then `empty`."""
    if record["kind"] != "card":
        content = cell_content(record)
        return [CELLS[cell] if place else content[cell] for cell, place in token_places(tokens_per_tile)]
    words = card_words(record["card"])[:tokens_per_tile]
    return (words + ["empty"] * (tokens_per_tile - len(words))) * CARD_TILES


def slot_text(text: str, slots: int) -> str:
    """A rendered chat whose one `<IMG_CONTEXT>` becomes the image slot of `slots` tokens, as the
    InternVL processor expands it."""
    return text.replace(IMAGE_CONTEXT, f"{IMAGE_START}{IMAGE_CONTEXT * slots}{IMAGE_END}", 1)


# (rendered chat with its image slot expanded, answers the loss is on, words per image token)
SlotExample = tuple[str, list[str], list[str]]


def slot_ids(tokenizer: PreTrainedTokenizerBase, rows: Sequence[Sequence[str]]) -> torch.Tensor:
    """Token ids of each slot's words, (rows, slots, words) padded with -1."""
    ids = [[tokenizer.encode(" " + words, add_special_tokens=False) for words in row] for row in rows]
    slots = max(len(row) for row in ids)
    width = max((len(one) for row in ids for one in row), default=1)  # a batch of text-only chats has no slot
    out = torch.full((len(ids), slots, width), -1, dtype=torch.long)
    for r, row in enumerate(ids):
        for s, one in enumerate(row):
            out[r, s, : len(one)] = torch.tensor(one)
    return out


def slot_collate(tokenizer: PreTrainedTokenizerBase, pack_length: int | None = None):
    """Rows of `SlotExample` → a right-padded batch with labels on the answers and `slot_ids`, or,
    with `pack_length`, the same sequences packed into rows of that many tokens (`pack_batch`): the
    LM's mix of short questions and long captions is about 40 % padding otherwise."""

    def collate(rows: list[SlotExample]) -> dict:
        batch = encode_texts(tokenizer, [text for text, _, _ in rows], [answers for _, answers, _ in rows])
        batch["slot_ids"] = slot_ids(tokenizer, [slots for _, _, slots in rows])
        return batch if pack_length is None else pack_batch(batch, pack_length, tokenizer.pad_token_id)

    return collate


class SlotReader(nn.Module):
    """The LM foundation with its image slot filled: each image-token position's input is the sum of
    the embeddings of its slot's words. Only `language` has weights; it is what is saved."""

    def __init__(self, language: Qwen2ForCausalLM, image_token_id: int):
        super().__init__()
        self.language = language
        self.image_token_id = image_token_id

    @property
    def device(self) -> torch.device:
        return self.language.device

    def embed(self, input_ids: torch.Tensor, slot_ids: torch.Tensor) -> torch.Tensor:
        table = self.language.get_input_embeddings()
        words = slot_ids >= 0
        slots = (table(slot_ids.clamp(min=0)) * words.unsqueeze(-1)).sum(-2)
        image = input_ids == self.image_token_id
        if int(image.sum()) != int(words.any(-1).sum()):
            raise ValueError(f"{int(image.sum())} image tokens but {int(words.any(-1).sum())} filled slots")
        return table(input_ids).masked_scatter(image.unsqueeze(-1), slots[words.any(-1)].to(table.weight.dtype))

    def forward(
        self, input_ids: torch.Tensor, slot_ids: torch.Tensor, labels: torch.Tensor | None = None, **rest
    ) -> CausalLMOutputWithPast:
        """Every position's logits; or, given `labels`, only the loss, with only the answer positions
        through the LM head.

        Most positions of a pretraining row are context (the slot, the question): 88 % in the tiny
        mixture. Their logits would only be discarded by the loss, yet the 1,024-way head and its
        log-softmax over every position cost about an eighth of a step (`bench/answer_logits.py`:
        1.13x without them). The loss is the same mean over answer tokens that the LM's own loss
        takes (position t predicts label t + 1)."""
        embeds = self.embed(input_ids, slot_ids)
        if labels is None:
            return self.language(inputs_embeds=embeds, **rest)
        hidden = self.language.model(inputs_embeds=embeds, **rest).last_hidden_state
        targets = labels[:, 1:]
        answered = targets != IGNORE_INDEX
        logits = self.language.lm_head(hidden[:, :-1][answered])
        return CausalLMOutputWithPast(loss=functional.cross_entropy(logits.float(), targets[answered]))

    @torch.no_grad()
    def generate(
        self, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], slots: Sequence[Sequence[str]], **settings
    ) -> list[str]:
        """Greedy answers to rendered prompts (each ending on the assistant header), slots filled."""
        batch = tokenizer(
            list(prompts), padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt"
        )
        batch = batch.to(self.device)
        embeds = self.embed(batch["input_ids"], slot_ids(tokenizer, slots).to(self.device))
        output = self.language.generate(
            inputs_embeds=embeds,
            attention_mask=batch["attention_mask"],
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **settings,
        )
        return [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]
