"""An attribute classifier for toy images: one head per caption attribute, plus a 64-d feature for Frechet distance.

Trained on rendered images with noise and blur augmentation so that it still reads VAE-decoded samples, which are
slightly soft. It is the toy world's judge: attribute accuracy = does the image show what the prompt said, and the
Frechet distance between feature statistics plays the role FID plays with Inception features.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lcm_exp.toy.training import cosine_lr, index_batches, set_lr
from lcm_exp.toy.world import ATTRIBUTES, NUM_CLASSES, RESOLUTION

FEATURE_DIM = 64
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class AttributeClassifier(nn.Module):
    def __init__(self, num_classes: tuple[int, ...] = NUM_CLASSES, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.num_classes, self.feature_dim = tuple(num_classes), feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GELU(),
            nn.Flatten(),
            nn.Linear(64 * (RESOLUTION // 4) ** 2, feature_dim), nn.GELU(),
        )  # fmt: skip
        self.heads = nn.ModuleList(nn.Linear(feature_dim, k) for k in self.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(n, feature_dim) from images (n, 3, 32, 32) in [-1, 1]."""
        if images.shape[1:] != (3, RESOLUTION, RESOLUTION):
            raise ValueError(f"classifier expects images (n, 3, {RESOLUTION}, {RESOLUTION}), got {tuple(images.shape)}")
        return self.body(images)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats = self.features(images)
        return [head(feats) for head in self.heads]

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted attributes (n, 4) long, features (n, feature_dim)), on the CPU."""
        preds, feats = [], []
        device = next(self.parameters()).device
        for i in range(0, images.shape[0], batch):
            f = self.features(images[i : i + batch].to(device))
            feats.append(f.cpu())
            preds.append(torch.stack([head(f).argmax(1) for head in self.heads], dim=1).cpu())
        return torch.cat(preds), torch.cat(feats)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / WEIGHTS)
        config = {"num_classes": list(self.num_classes), "feature_dim": self.feature_dim, "attributes": ATTRIBUTES}
        (folder / CONFIG).write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> AttributeClassifier:
        folder = Path(folder)
        if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
            raise FileNotFoundError(f"{folder} is not a toy classifier folder (needs {WEIGHTS} and {CONFIG})")
        config = json.loads((folder / CONFIG).read_text())
        model = cls(tuple(config["num_classes"]), config["feature_dim"])
        model.load_state_dict(load_file(folder / WEIGHTS))
        return model.eval().requires_grad_(False)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random blur (half the batch) and Gaussian noise, like the softness of VAE decodes."""
    n, device = x.shape[0], x.device
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = torch.rand(n, 1, 1, 1, generator=generator) * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    x = x * (1 - mix.to(device)) + blurred * mix.to(device)
    sigma = 0.08 * torch.rand(n, 1, 1, 1, generator=generator)
    return x + (sigma * torch.randn(x.shape, generator=generator)).to(device)


def train_classifier(
    model: AttributeClassifier,
    images: torch.Tensor,
    attributes: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    generator: torch.Generator,
) -> AttributeClassifier:
    device = next(model.parameters()).device
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    batches = index_batches(images.shape[0], batch, generator)
    for step in range(steps):
        set_lr(optimizer, cosine_lr(step, steps, lr, warmup=max(steps // 20, 1)))
        idx = next(batches)
        logits = model(_augment(images[idx].to(device), generator))
        loss = sum(F.cross_entropy(lg, attributes[idx, i].to(device)) for i, lg in enumerate(logits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


def attribute_accuracy(predicted: torch.Tensor, expected: torch.Tensor) -> dict[str, float]:
    """Per-attribute accuracy, their mean ("mean") and the fraction with all four right ("all")."""
    hits = (predicted == expected).float()
    out = {name: float(hits[:, i].mean()) for i, name in enumerate(ATTRIBUTES)}
    out["mean"] = float(hits.mean())
    out["all"] = float(hits.all(dim=1).float().mean())
    return out
