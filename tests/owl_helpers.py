"""A random-weight OWLv2 with a character-level CLIP tokenizer, built offline: tests and benchmarks share it.

No weights or vocabularies are downloaded: the tokenizer knows single characters (so LVIS names tokenise
letter by letter) and the model is built from a config with random weights.

Example:
    >>> import tempfile
    >>> model, processor = random_owlv2(tempfile.mkdtemp(), image_size=96)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
import transformers

CHARACTERS = string.ascii_lowercase + "()-'.,0123456789"
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def char_tokenizer(folder: str | Path, characters: str = CHARACTERS) -> transformers.CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is single characters (files written to ``folder``)."""
    vocab = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}  # bos must not be id 0 (0 marks padded queries)
    for c in characters:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    folder = Path(folder)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def random_owlv2(
    folder: str | Path, image_size: int, tiny: bool = True, processor_class: str = "Owlv2ImageProcessorPil",
    characters: str = CHARACTERS,
) -> tuple[torch.nn.Module, object]:
    """(model, processor): OWLv2 with random weights, tiny or at base sizes, seeded (torch.manual_seed(0)).

    The weights depend on the vocabulary size, so ``characters`` changes the model too.
    """
    tok = char_tokenizer(folder, characters)
    text = {"vocab_size": len(tok), "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 2, **(TINY if tiny else {})}
    vision = {"image_size": image_size, "patch_size": 16, **(TINY if tiny else {})}
    torch.manual_seed(0)
    config = transformers.Owlv2Config(text_config=text, vision_config=vision, projection_dim=32 if tiny else 512)
    model = transformers.Owlv2ForObjectDetection(config).eval()
    image_processor = getattr(transformers, processor_class)(size={"height": image_size, "width": image_size})
    return model, transformers.Owlv2Processor(image_processor, tok)
