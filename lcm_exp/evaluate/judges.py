"""Distribution-quality judges: the toy world's attribute classifier, and CLIP score / FID from user-supplied weights.

Nothing is ever downloaded: a judge whose weights are not given is skipped and the report says so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from lcm_exp.evaluate.metrics import frechet_distance

log = logging.getLogger(__name__)

# OpenAI CLIP preprocessing constants (used when the folder has no preprocessor_config.json)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ToyJudge:
    """Attribute accuracy and Frechet distance in the toy classifier's feature space.

    The real-image statistics come from renders of exactly the evaluated prompts' attributes (a second, independent
    draw of the jitter), so FD measures image quality and prompt faithfulness together, as FID against a
    caption-matched real set does.
    """

    def __init__(self, classifier, expected: torch.Tensor, real_images: torch.Tensor):
        from lcm_exp.toy.classifier import attribute_accuracy

        self._accuracy = attribute_accuracy
        self.classifier = classifier
        self.expected = expected
        _, self.real_features = classifier.predict(real_images)

    def __call__(self, images01: torch.Tensor) -> dict[str, float]:
        predicted, features = self.classifier.predict(images01 * 2 - 1)
        acc = self._accuracy(predicted, self.expected)
        out = {"attr_acc": acc.pop("mean"), "attr_all": acc.pop("all")}
        out.update({f"acc_{k}": v for k, v in acc.items()})
        out["fd"] = frechet_distance(features, self.real_features)
        return out


class ClipScoreJudge:
    """CLIP score = 100 * mean(max(cos(image, text), 0)) with a local transformers CLIPModel folder."""

    def __init__(self, folder: str, prompts: list[str], device: torch.device):
        from transformers import CLIPModel, CLIPTokenizer

        path = Path(folder).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"evaluation clip_model={folder!r}: not a local folder (nothing is downloaded)")
        self.model = CLIPModel.from_pretrained(path).to(device).eval()
        tokenizer = CLIPTokenizer.from_pretrained(path)
        mean, std = _CLIP_MEAN, _CLIP_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text())
            mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.size = self.model.config.vision_config.image_size
        ids = tokenizer(prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                        return_tensors="pt").input_ids.to(device)  # fmt: skip
        with torch.no_grad():
            self.text = F.normalize(_as_tensor(self.model.get_text_features(input_ids=ids)).float(), dim=-1)
        self.device = device

    @torch.no_grad()
    def __call__(self, images01: torch.Tensor) -> dict[str, float]:
        x = F.interpolate(images01.to(self.device).float(), size=(self.size, self.size), mode="bicubic",
                          align_corners=False).clamp(0, 1)  # fmt: skip
        features = self.model.get_image_features(pixel_values=(x - self.mean) / self.std)
        image = F.normalize(_as_tensor(features).float(), dim=-1)
        return {"clip_score": float(100 * (image * self.text).sum(-1).clamp_min(0).mean())}


def _as_tensor(out) -> torch.Tensor:
    """transformers 5 may return a model output object from get_*_features; take its pooled embedding."""
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(out, key, None)
        if value is not None:
            return value
    raise TypeError(f"unexpected CLIP feature output {type(out).__name__}")


class FidJudge:
    """FID with a user-supplied TorchScript feature extractor (images in [0, 1], (n, 3, H, W) -> (n, d)).

    Real teachers come without a real-image set here, so the statistics of the teacher's reference samples stand in
    for the real ones: the number is "FID to the teacher's 50-step distribution", named so in the report.
    """

    def __init__(self, path: str, reference_images01: torch.Tensor, device: torch.device):
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(
                f"evaluation fid_model={path!r}: not a local TorchScript file (nothing is downloaded)"
            )
        self.model = torch.jit.load(str(file), map_location=device).eval()
        self.device = device
        self.reference = self.features(reference_images01)

    @torch.no_grad()
    def features(self, images01: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(images01[i : i + 64].to(self.device).float()).flatten(1).double().cpu()
                          for i in range(0, images01.shape[0], 64)])  # fmt: skip

    def __call__(self, images01: torch.Tensor) -> dict[str, float]:
        return {"fid": frechet_distance(self.features(images01), self.reference)}
