"""One builder per tiny model kind: a config, fan-in scaled random weights, a processor and,
for the text kinds, a tokenizer. ``BUILDERS[kind](seed, torch)`` → (model, processor, tokenizer)."""

from __future__ import annotations

from imgsearch.tiny_models.processors import (
    IMAGE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    SQUARE,
    bert_tokenizer,
    clip_tokenizer,
    cropping_processor,
    normalising_processor,
)

# The vision transformers' shared shape (CLIP's tower, ViT, DINOv2): 2 layers, 32 wide, 8-px patches.
TINY_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=8)


def _build_clip(seed, torch):
    from transformers import CLIPConfig, CLIPModel

    max_len = 32
    tok = clip_tokenizer(max_len)
    text_config = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=max_len,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,  # != 2: pool at the first EOS, not argmax(ids)
        pad_token_id=tok.pad_token_id,
        projection_dim=16,
    )
    vision_config = dict(**TINY_VIT, intermediate_size=64, projection_dim=16)
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=16)
    model = _seeded(CLIPModel, config, seed, torch)
    processor = cropping_processor("CLIPImageProcessor", IMAGE_SIZE, 3, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    return model, processor, tok


def _build_bit(seed, torch):
    from transformers import BitConfig, BitModel

    # google/bit-50: preactivation ResNet, "SAME" padding, dynamic-padding stem.
    config = BitConfig(
        embedding_size=8,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        layer_type="preactivation",
        global_padding="SAME",
        embedding_dynamic_padding=True,
        num_groups=4,  # must divide every width incl. the bottleneck's hidden/4
    )
    model = _seeded(BitModel, config, seed, torch)
    # google/bit-50: shortest edge 448, crop 448, bilinear, mean/std 0.5
    processor = cropping_processor("BitImageProcessor", IMAGE_SIZE, 2, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    return model, processor, None


def _build_efficientnet(seed, torch):
    from transformers import EfficientNetConfig, EfficientNetModel

    # width 0.1 -> every stage 8..32 channels, top conv round_filters(1280) = 128;
    # depth 0.1 -> one block per stage. hidden_dim must equal round_filters(config, 1280)
    # (top_bn is sized by hidden_dim, top_conv by round_filters).
    config = EfficientNetConfig(
        image_size=IMAGE_SIZE,
        width_coefficient=0.1,
        depth_coefficient=0.1,
        hidden_dim=128,
        dropout_rate=0.0,
        drop_connect_rate=0.0,
    )
    model = _seeded(EfficientNetModel, config, seed, torch)
    _calibrate_batchnorm(model, torch, seed)
    # google/efficientnet-b7: resize straight to 600x600 (no crop); mean ImageNet,
    # std sqrt(ImageNet std) applied twice (do_normalize, then include_top divides by
    # std again), i.e. ImageNet normalisation overall.
    processor = normalising_processor(
        "EfficientNetImageProcessor",
        size=SQUARE,
        resample=2,  # the real one: 0 (nearest) at 600 px; nearest at 32 px is too noisy
        do_center_crop=False,
        crop_size=SQUARE,
        rescale_offset=False,
        image_mean=IMAGENET_MEAN,
        image_std=[0.47853944, 0.4732864, 0.47434163],
        include_top=True,
    )
    return model, processor, None


def _build_vit(seed, torch):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(**TINY_VIT, intermediate_size=64)
    model = _seeded(ViTModel, config, seed, torch)  # with pooler, like the in21k checkpoints
    processor = normalising_processor(
        "ViTImageProcessor",
        size=SQUARE,
        resample=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return model, processor, None


def _build_dinov2(seed, torch):
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(**TINY_VIT, mlp_ratio=2)
    model = _seeded(Dinov2Model, config, seed, torch)
    # facebook/dinov2-base: BitImageProcessor, shortest_edge 256 -> centre crop 224,
    # bicubic, ImageNet mean/std. Scaled: 36 -> 32.
    processor = cropping_processor("BitImageProcessor", 36, 3, IMAGENET_MEAN, IMAGENET_STD)
    return model, processor, None


def _blip2_config(qformer_vocab_size: int, use_qformer_text_input: bool = False, **extra):
    from transformers import Blip2Config

    vision_config = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=8,
        initializer_range=0.02,  # the default (1e-10) gives near-constant outputs
    )
    qformer_config = dict(
        vocab_size=qformer_vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        cross_attention_frequency=1,
        # The ITM checkpoint runs text through the Q-Former: its layers need the text
        # feed-forward (intermediate/output), which exists only with this flag.
        use_qformer_text_input=use_qformer_text_input,
    )
    text_config = dict(  # tiny OPT
        model_type="opt",
        vocab_size=64,
        hidden_size=16,
        word_embed_proj_dim=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        max_position_embeddings=32,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )
    return Blip2Config(
        vision_config=vision_config,
        qformer_config=qformer_config,
        text_config=text_config,
        num_query_tokens=4,
        **extra,
    )


def _blip_processor():
    # Salesforce/blip2-*: resize straight to 224x224 (bicubic), OpenAI CLIP mean/std.
    return normalising_processor(
        "BlipImageProcessor",
        size=SQUARE,
        resample=3,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )


def _build_blip2(seed, torch):
    from transformers import Blip2Model

    config = _blip2_config(qformer_vocab_size=64)
    model = _seeded(Blip2Model, config, seed, torch)
    _randomise_query_tokens(model, torch)
    return model, _blip_processor(), None


def _build_blip2_itm(seed, torch):
    from transformers import Blip2ForImageTextRetrieval

    tok = bert_tokenizer(max_length=32)
    config = _blip2_config(qformer_vocab_size=len(tok), use_qformer_text_input=True, image_text_hidden_size=16)
    model = _seeded(Blip2ForImageTextRetrieval, config, seed, torch)
    _randomise_query_tokens(model, torch)
    return model, _blip_processor(), tok


def _seeded(model_class, config, seed: int, torch):
    """The model built after seeding torch, so a seed gives the same weights, then re-initialised."""
    torch.manual_seed(seed)
    model = model_class(config)
    _signal_preserving_init(model, torch)
    return model


def _signal_preserving_init(model, torch):
    """Re-initialise so random features actually depend on the image.

    The library inits (normal(0, 0.02) for every Linear/Conv, BatchNorm weights included)
    shrink the signal at every layer: a random EfficientNet outputs exact zeros in eval
    mode, and a random Q-Former's output barely depends on the image (cosine 0.999
    between unrelated photos). Fan-in scaled weights and unit BatchNorm keep the
    activations O(1), so different images give clearly different embeddings.
    Deterministic: called right after construction, under the same seed.
    """
    from torch import nn

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()


def _calibrate_batchnorm(model, torch, seed: int) -> None:
    """Set every BatchNorm's running mean/var from one seeded batch of random inputs.

    With the identity running stats of a fresh model, eval-mode BatchNorm does not
    normalise, and on 32 px inputs the late stages are 1x1 maps where a depthwise kxk
    kernel sees one tap, so even fan-in scaled weights lose ~5x per block: the tiny
    EfficientNet's embedding norm ends near 1e-4. Calibrated stats keep every block's
    output at unit scale.
    """
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch -> exactly its statistics
    model.train()
    with torch.no_grad():
        model(pixel_values=x)
    model.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _randomise_query_tokens(model, torch):
    # post_init leaves query_tokens at zeros/normal(0, 0.02) depending on version; make
    # them clearly distinct per token (still seed-deterministic: called after the seed).
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.5)


BUILDERS = {
    "clip": _build_clip,
    "bit": _build_bit,
    "efficientnet": _build_efficientnet,
    "vit": _build_vit,
    "dinov2": _build_dinov2,
    "blip2": _build_blip2,
    "blip2-itm": _build_blip2_itm,
}
