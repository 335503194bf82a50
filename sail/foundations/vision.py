"""The tiny vision foundation: an InternViT pretrained to see what each cell of a scene holds.

InternViT was pretrained on web images before InternVL used it; ours learns the world by
predicting each cell's record attributes (shape, colour, size, text or not) from the patch tokens
over that cell. Only the encoder is kept: the probe heads are thrown away, as a CLIP text tower is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import InternVLVisionModel

from sail.model import Geometry, image_processor, vision_config
from sail.world import COLOURS, SHAPES, SIZES, attribute_targets, render

# Each head predicts one attribute per cell; the last class of shape/colour/size means "no object".
HEADS = {"shape": len(SHAPES) + 1, "colour": len(COLOURS) + 1, "size": len(SIZES) + 1, "is_text": 2}


@dataclass
class ProbeOutput:
    loss: torch.Tensor
    logits: dict[str, torch.Tensor]


class CellAttributeProbe(nn.Module):
    """The vision encoder plus linear heads on its patch tokens."""

    def __init__(self, encoder: InternVLVisionModel):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, classes) for name, classes in HEADS.items()})

    def forward(self, pixel_values: torch.Tensor, **targets: torch.Tensor) -> ProbeOutput:
        """Each cell's attributes from the mean of the patch tokens over that cell."""
        tokens = self.encoder(pixel_values=pixel_values).last_hidden_state[:, 1:]  # drop CLS
        cell_of_patch = patch_cells(int(tokens.shape[1] ** 0.5)).to(tokens.device)
        cells = torch.stack([tokens[:, cell_of_patch == c].mean(1) for c in range(4)], dim=1)
        logits = {name: head(cells) for name, head in self.heads.items()}
        loss = sum(nn.functional.cross_entropy(logits[n].flatten(0, 1), targets[n].flatten()) for n in HEADS)
        return ProbeOutput(loss=loss, logits=logits)


def patch_cells(side: int) -> torch.Tensor:
    """The 2x2-grid cell (reading order) of each patch in a side x side patch grid."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return ((rows >= side // 2) * 2 + (cols >= side // 2)).flatten()


def build_vision_probe(geometry: Geometry) -> CellAttributeProbe:
    return CellAttributeProbe(InternVLVisionModel(vision_config(geometry)))


def probe_collate(geometry: Geometry):
    """Records -> pixel values (the VLM's own preprocessing) and per-cell attribute targets."""
    processor = image_processor(geometry.tile_size, max_tiles=1)

    def collate(records: list[dict]) -> dict:
        pixels = processor([render(r) for r in records], return_tensors="pt")["pixel_values"]
        targets = [attribute_targets(r) for r in records]
        batch = {name: torch.tensor([t[name] for t in targets]) for name in HEADS}
        patches = (geometry.tile_size // geometry.patch_size) ** 2
        return {"pixel_values": pixels, **batch, "num_tokens": len(records) * patches}

    return collate


@torch.no_grad()
def vision_report(probe: CellAttributeProbe, geometry: Geometry, records: Sequence[dict]) -> dict[str, float]:
    """Held-out accuracy per attribute over cells that hold an object (text-vs-not over all cells)."""
    collate = probe_collate(geometry)
    probe.eval()
    device = next(probe.parameters()).device
    correct = {name: 0 for name in HEADS}
    counted = {name: 0 for name in HEADS}
    for start in range(0, len(records), 64):
        batch = {k: v.to(device) for k, v in collate(list(records[start : start + 64])).items() if k != "num_tokens"}
        logits = probe(**batch).logits
        occupied = batch["shape"] < len(SHAPES)
        for name in HEADS:
            keep = torch.ones_like(occupied) if name == "is_text" else occupied
            correct[name] += int((logits[name].argmax(-1) == batch[name])[keep].sum())
            counted[name] += int(keep.sum())
    return {f"{name}_accuracy": correct[name] / max(1, counted[name]) for name in HEADS}
