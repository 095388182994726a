"""Tiny, randomly initialised Hugging Face vision/language checkpoints for offline tests.

``make_tiny_vlm`` saves a LLaVA model (tiny CLIP vision tower + tiny Llama) with a word-level
tokenizer, a chat template and a PIL image processor; ``make_tiny_clip`` saves a tiny CLIP or
SigLIP dual encoder. Both load through the Auto* classes with no hub access and no torchvision.
The weights are random: outputs are deterministic for a given seed but meaningless.
"""

from __future__ import annotations

import pathlib

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 16  # images are resized to IMAGE_SIZE x IMAGE_SIZE
PATCH_SIZE = 8  # -> 4 patches = 4 <image> tokens per image in the VLM

_WORD_TEXT = """
a an the this that these those it its is are was were be been being am do does did
have has had will would can could should may might must not no yes ok okay
i you he she we they me him her us them my your our their what which who whom whose
when where why how all any both each few more most less least other some such only own
same so than too very just now then there here again once up down in out on off over
under above below into onto through to from of for with without by at about against
between before after during until while and or but if because as also either neither
one two three four five six seven eight nine ten first second third last next
answer question image images picture frame frames video camera view scene shows show
shown describe look see left right top bottom front back side near far middle center
object objects thing color red green blue yellow black white gray orange purple
small large big little long short high low open closed full empty new old good bad
better best worse worst true false correct wrong number score value percent percentage
progress complete completed completion done finished success successful successfully
failure failed fail task tasks goal step steps stage state start end begin
robot robots arm arms gripper grippers hand hands finger fingers cube cubes block
blocks peg pegs hole holes insert inserted insertion lift lifted lifting pick picked
place placed push pushed pull pulled grasp grasped grasping move moved moving reach
reached table surface box bin drawer door handle cup bottle ball target position
pose height distance closer farther toward towards away episode reward policy
please tell say give rate estimate compare whether user assistant system
"""
_WORDS = _WORD_TEXT.split()
_PUNCT = list(".,?!:;'\"-()/%[]{}<>=+*&#@_")


def _word_tokenizer(specials: list[str], lowercase: bool) -> Tokenizer:
    """Word-level tokenizer: specials, digits (one token each), punctuation, words (+ Capitalised)."""
    words = _WORDS if lowercase else _WORDS + [w.capitalize() for w in _WORDS]
    vocab: dict[str, int] = {}
    for tok in [*specials, *"0123456789", *_PUNCT, *words]:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    tok.add_special_tokens(specials)
    return tok


_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _image_processor(cls):
    return cls(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
    )


def make_tiny_vlm(directory: str | pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Save a tiny random LLaVA (AutoModelForImageTextToText + AutoProcessor) into ``directory``."""
    path = pathlib.Path(directory)
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN]
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=_word_tokenizer(specials, lowercase=False),
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        model_max_length=512,
    )
    processor = transformers.LlavaProcessor(
        image_processor=_image_processor(transformers.CLIPImageProcessorPil),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
        ),
        text_config=transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=ids("<pad>"),
            bos_token_id=ids("<s>"),
            eos_token_id=ids("<|im_end|>"),
        ),
        image_token_index=ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = ids("<pad>")
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def make_tiny_clip(directory: str | pathlib.Path, kind: str = "clip", seed: int = 0) -> pathlib.Path:
    """Save a tiny random CLIPModel (``kind="clip"``) or SiglipModel (``kind="siglip"``) into ``directory``.

    Loads with AutoModel / AutoTokenizer / AutoImageProcessor / AutoProcessor. The SigLIP text tower
    pools the last position, so tokenize with ``padding="max_length"`` (max length 16) as SigLIP expects.
    """
    if kind not in ("clip", "siglip"):
        raise ValueError(f"kind must be 'clip' or 'siglip', got {kind!r}")
    path = pathlib.Path(directory)
    max_len = 16
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    backend = _word_tokenizer(specials, lowercase=True)
    start = ["<s>"] if kind == "clip" else []  # CLIP: <s> text </s>; SigLIP: text </s>
    backend.post_processor = processors.TemplateProcessing(
        single=[*start, "$A", "</s>"],
        special_tokens=[(t, backend.token_to_id(t)) for t in [*start, "</s>"]],
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=max_len,
    )
    ids = tokenizer.convert_tokens_to_ids
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {
        **layers,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": max_len,
        "pad_token_id": ids("<pad>"),
        "bos_token_id": ids("<s>"),
        "eos_token_id": ids("</s>"),
    }
    vision = {**layers, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}
    if kind == "clip":
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        model_cls, image_cls = transformers.CLIPModel, transformers.CLIPImageProcessorPil
    else:
        config = transformers.SiglipConfig(text_config=text, vision_config=vision)
        model_cls, image_cls = transformers.SiglipModel, transformers.SiglipImageProcessorPil
    torch.manual_seed(seed)
    model = model_cls(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _image_processor(image_cls).save_pretrained(path)
    return path
