"""Small generated tables for mixed-input tests: reviews (text + numbers +
categories), drug-target pairs (SMILES + protein), and image paths + numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

GOOD = ["great", "fast", "delicious", "friendly", "perfect", "lovely", "fresh", "excellent"]
BAD = ["slow", "cold", "rude", "broken", "stale", "awful", "late", "terrible"]
FILLER = ["the", "coffee", "delivery", "service", "was", "and", "order", "today", "box",
          "staff", "very", "really", "my", "again"]

# real molecules (SMILES); the rule below makes nitrogen-containing ones bind
MOLECULES = ["CCO", "CC(=O)OC1=CC=CC=C1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
             "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O", "C1=CC=C(C=C1)O", "CC(=O)NC1=CC=C(C=C1)O",
             "C(C(=O)O)N", "CCN(CC)CC", "C1CCCCC1", "OCC(O)CO", "CNC", "C1=CC=NC=C1"]
AMINO = "ACDEFGHIKLMNPQRSTVWY"

SAMPLE_REVIEWS = [
    "The battery lasts all day and the screen is bright.",
    "Terrible sound, the speaker crackles at any volume.",
    "Great value for the price, would buy again!",
    "Stopped working after two weeks. Very disappointed.",
    "Fast delivery and the case fits perfectly.",
    "The charger broke on the first day, awful quality.",
    "Comfortable headphones with a long cable.",
    "Screen scratches easily; not worth the money.",
]


def reviews(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        positive = rng.uniform() < 0.5
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(GOOD if positive else BAD, 2))
        if rng.uniform() < 0.15:  # some noise: a word of the other side
            words.append(str(rng.choice(BAD if positive else GOOD)))
        rng.shuffle(words)
        rows.append({"review": " ".join(words).capitalize() + ".",
                     "stars_shown": int(rng.integers(1, 6)),
                     "shop": str(rng.choice(["north", "south", "east"])),
                     "label": "positive" if positive else "negative"})
    return pd.DataFrame(rows)


def drug_target_pairs(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        smiles = str(rng.choice(MOLECULES))
        protein = "".join(rng.choice(list(AMINO), int(rng.integers(40, 70))))
        pocket = rng.uniform() < 0.5
        if pocket:  # a binding motif placed somewhere in the sequence
            at = int(rng.integers(0, len(protein) - 5))
            protein = protein[:at] + "WHHW" + protein[at + 4:]
        binds = pocket and "N" in smiles
        rows.append({"smiles": smiles, "sequence": protein, "binds": "yes" if binds else "no"})
    return pd.DataFrame(rows)


def image_table(root: Path, n: int = 120, seed: int = 0) -> Path:
    """images/<i>.png (bright or dark squares) + number and text columns; relative paths."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        bright = rng.uniform() < 0.5
        pixels = rng.integers(150, 255, (16, 16, 3)) if bright else \
            rng.integers(0, 100, (16, 16, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(root / "images" / f"{i}.png")
        rows.append({"photo": f"images/{i}.png", "weight": float(rng.normal()),
                     "caption": " ".join(rng.choice(FILLER, 5)),
                     "label": "bright" if bright else "dark"})
    path = root / "photos.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def save_tiny_bert(folder: Path, texts: list[str]) -> Path:
    """A 2-layer BERT (hidden 32) and its WordPiece tokenizer, saved like a hub model
    (no downloads); seeded, so its random "pretrained" weights never depend on test order."""
    import collections
    import re

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    # the vocabulary is built here, not by tokenizers' WordPieceTrainer: its merges break
    # ties in thread order, so on a busy machine it gave another vocabulary, and this
    # test's model another accuracy (0.625 once against 0.70). Sorted counts do not vary.
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]",
                                                                     t.lower()))
    chars = sorted({c for w in words for c in w})
    frequent = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))
                if len(w) > 1][:300 - len(specials) - 2 * len(chars)]
    pieces = [*specials, *chars, *(f"##{c}" for c in chars), *frequent]
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    BertTokenizerFast(tokenizer_object=tok).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder
