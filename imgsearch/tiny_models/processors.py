"""Tokenizers and image processors for the tiny models (and the full-size random ones in
imgsearch/bench): real transformers classes over tiny vocabularies, nothing downloaded."""

from __future__ import annotations

IMAGE_SIZE = 32

# Words every tiny tokenizer knows as single tokens (anything else still tokenizes:
# CLIP falls back to byte symbols, BERT to [UNK]).
WORDS = (
    "a",
    "an",
    "the",
    "of",
    "photo",
    "picture",
    "image",
    "meme",
    "doge",
    "dog",
    "dogs",
    "cat",
    "cats",
    "shiba",
    "inu",
    "funny",
    "cute",
    "red",
    "green",
    "blue",
    "car",
    "tree",
    "house",
    "man",
    "woman",
    "text",
    "with",
    "and",
    "on",
    "in",
)

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def clip_tokenizer(max_length: int):
    """A real ``CLIPTokenizer`` (byte-level BPE with ``</w>`` word ends), tiny vocabulary.

    Vocabulary: the 256 byte symbols, the same 256 with ``</w>``, the merge chain of every
    word in WORDS, then ``<|startoftext|>`` and ``<|endoftext|>`` last, so the EOS id is
    the highest id (the real CLIP property the legacy ``argmax`` pooling relies on).
    """
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        if len(parts) == 1:
            continue
        left = parts[0]
        for right in parts[1:]:
            pair = (left, right)
            left = left + right
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            if left not in vocab:
                vocab[left] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    # transformers annotates merges as list[str], but hands them to tokenizers' BPE, which takes
    # (left, right) pairs: the pairs are what it uses.
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)  # type: ignore[arg-type]
    return tok


def bert_tokenizer(max_length: int):
    """A real ``BertTokenizer`` (WordPiece, lower case) over a tiny vocabulary."""
    from transformers import BertTokenizer

    vocab: dict[str, int] = {}
    for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        vocab[t] = len(vocab)
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault("##" + c, len(vocab))
    for p in ".,!?'\"-":
        vocab.setdefault(p, len(vocab))
    return BertTokenizer(vocab=vocab, model_max_length=max_length)


def image_processor(name: str, **kwargs):
    """Image processor ``name`` (e.g. "CLIPImageProcessor").

    transformers 5.x splits each processor into a torchvision class (``name``) and a PIL
    one (``name + "Pil"``); without torchvision ``name`` falls back to the PIL class with a
    warning. Either way ``save_pretrained`` writes ``"image_processor_type": name`` (the
    "Pil" suffix is stripped), exactly like a hub checkpoint.
    """
    import transformers

    try:
        import torchvision  # noqa: F401

        cls = getattr(transformers, name)
    except ImportError:
        cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    return cls(**kwargs)


SQUARE = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}


def normalising_processor(name: str, **kwargs):
    """Image processor ``name`` that resizes, rescales to [0, 1] and normalises (every tiny kind does)."""
    return image_processor(name, do_resize=True, do_rescale=True, rescale_factor=1 / 255, do_normalize=True, **kwargs)


def cropping_processor(name: str, shortest_edge: int, resample: int, mean: list[float], std: list[float]):
    """Shorter side to ``shortest_edge``, centre crop to the model's square input, normalise."""
    return normalising_processor(
        name,
        size={"shortest_edge": shortest_edge},
        resample=resample,
        do_center_crop=True,
        crop_size=SQUARE,
        image_mean=mean,
        image_std=std,
        do_convert_rgb=True,
    )
