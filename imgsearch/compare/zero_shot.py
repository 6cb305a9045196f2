"""Zero-shot classification for text-capable encoders: each image gets the label whose prompts
its vector is closest to, from the stored image vectors and the prompts' text vectors.

As CLIP does (and LAION's CLIP_benchmark): every label name goes into every prompt template
("a photo of a {}."), each prompt's text vector is normalised, a label's vector is the normalised
mean of its prompts', and an image's scores are cosines to the label vectors. The default templates
are CLIP's 80-prompt ImageNet ensemble; ``--prompts FILE`` gives others (one a line, ``{}`` where
the label goes). The prompts are encoded once through the running flow (one request per 32
prompts), at most ``MAX_PROMPTS`` of them: past that, fewer templates per label, and the result says so.
"""

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from imgsearch.compare.proportion import (
    balanced_ci,
    bits,
    labelled_balanced_accuracy,
    proportion_ci,
)

logger = logging.getLogger(__name__)

MAX_PROMPTS = 20_000
BLOCK = 4_096  # images scored at a time
PROMPT_CHUNK = 32

# CLIP's ImageNet prompt ensemble (Radford et al. 2021, the notebook "Prompt_Engineering_for_ImageNet").
CLIP_TEMPLATES = [
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
]


class PromptError(ValueError):
    """A --prompts file that cannot be used."""


def load_templates(path: Optional[Path]) -> list[str]:
    if path is None:
        return list(CLIP_TEMPLATES)
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"--prompts {path}: cannot read it ({exc})") from exc
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    bad = [ln for ln in lines if ln.count("{}") != 1]
    if not lines or bad:
        raise PromptError(
            f"--prompts {path}: each line needs one '{{}}' where the label goes" + (f" (not: {bad[0]!r})" if bad else " (the file has no templates)")
        )
    return lines


def label_text(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip()


def prompts(names: list[str], templates: list[str]) -> tuple[list[str], int]:
    """(prompt texts, label-major, templates per label), within MAX_PROMPTS."""
    per = max(1, min(len(templates), MAX_PROMPTS // max(1, len(names))))
    return [t.format(label_text(n)) for n in names for t in templates[:per]], per


def label_vectors(prompt_vectors: np.ndarray, n_labels: int) -> np.ndarray:
    """CLIP's ensemble: normalise each prompt's vector, average a label's, normalise again."""
    v = prompt_vectors / np.maximum(np.linalg.norm(prompt_vectors, axis=1, keepdims=True), 1e-12)
    w = v.reshape(n_labels, -1, v.shape[1]).mean(1)
    return (w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def encode_prompts(gateway, collection: str, names: list[str], templates: list[str]) -> dict:
    """The label vectors from the running flow (the encoder's text tower); {} when it gave none."""
    from executors.docs import ImageDoc

    texts, per = prompts(names, templates)
    vecs = []
    for start in range(0, len(texts), PROMPT_CHUNK):
        chunk = [ImageDoc(text=t) for t in texts[start : start + PROMPT_CHUNK]]
        docs = gateway.post("/search", chunk, {"collection": collection, "top_k": 1, "return_query_vector": True}, request_size=len(chunk))
        by_text = {d.text: d for d in docs}
        for t in texts[start : start + PROMPT_CHUNK]:
            d = by_text.get(t)
            if d is None or d.error or d.embedding is None:
                raise RuntimeError(f"no text vector for prompt {t!r}: {d.error if d is not None else 'no answer'}")
            vecs.append(np.asarray(d.embedding, np.float32))
    return {
        "names": names,
        "weights": label_vectors(np.stack(vecs), len(names)),
        "templates": per,
        "templates_given": len(templates),
        "prompts": len(texts),
    }


def prompt_vectors(gateway, collection: str, qs, opts, rec: dict) -> Optional[dict]:
    """The label vectors for run_tasks, or None (no labels, or the encoder could not give them: the
    reason goes into ``rec["zero_shot"]``)."""
    names = sorted(lab for lab in qs.label_counts() if lab is not None)
    if len(names) < 2:
        return None
    try:
        return encode_prompts(gateway, collection, names, load_templates(opts.prompts))
    except Exception as exc:
        logger.debug("zero-shot prompts failed", exc_info=True)
        rec["zero_shot"] = {"labelled": False, "reason": f"{type(exc).__name__}: {exc}"}
        return None


def scores_top(vectors: np.ndarray, weights: np.ndarray, k: int = 5) -> np.ndarray:
    """Each image's k best labels, best first (blockwise: images × labels)."""
    k = min(k, len(weights))
    out = np.zeros((len(vectors), k), np.int64)
    for s in range(0, len(vectors), BLOCK):
        sc = vectors[s : s + BLOCK] @ weights.T
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(sc, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        out[s : s + BLOCK] = np.take_along_axis(part, order, axis=1)
    return out


def classify(vectors: np.ndarray, codes: np.ndarray, names: list[str], text: dict, n_boot: int) -> dict:
    """accuracy@1, accuracy@5 and balanced accuracy over every labelled image, with 95% intervals."""
    lab = np.nonzero(codes >= 0)[0]
    if not lab.size or text.get("names") != names:
        return {"labelled": False}
    top = scores_top(vectors[lab], text["weights"], 5)
    y = codes[lab]
    hit1 = (top[:, 0] == y).astype(np.int8)
    hit5 = (top == y[:, None]).any(1).astype(np.int8)
    return {
        "labelled": True,
        "images": int(lab.size),
        "labels": len(names),
        "chance@1": round(1 / len(names), 6),
        "accuracy@1": round(float(hit1.mean()), 6),
        "accuracy@5": round(float(hit5.mean()), 6),
        "balanced_accuracy": round(labelled_balanced_accuracy(hit1, y), 6),
        "ci": {
            "accuracy@1": proportion_ci(hit1, n_boot),
            "accuracy@5": proportion_ci(hit5, n_boot),
            "balanced_accuracy": balanced_ci(hit1, y, n_boot),
        },
        "templates": text["templates"],
        "templates_given": text["templates_given"],
        "prompts": text["prompts"],
        "hits": bits(hit1),
    }
