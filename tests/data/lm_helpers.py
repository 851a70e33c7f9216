"""A tiny transformer and tokenizer built offline (no download), saved as a local model folder, for
the harvest tests of the data layer and the CLI. Needs transformers and tokenizers (the [lm] extra)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ["the", "cat", "dog", "fox", "bird", "sat", "ran", "jumped", "flew", "on", "over", "under", "in", "a", "park", "mat", "tree", "house", "quick", "brown", "lazy", "small", "big", "red", "green", "and", "then", "it", "was", "very"]


def sentences(n: int, seed: int = 0) -> list[str]:
    """n sentences of 3 to 12 words of WORDS."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


def tokenizer(template: str | None):
    """A WordLevel tokenizer over WORDS wrapped as a PreTrainedTokenizerFast with <s>, </s>, <pad>;
    ``template``: "bos_eos" adds <s> ... </s> itself, "cls_sep" adds [CLS] ... [SEP], None adds nothing."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(WORDS)))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if template == "bos_eos":
        tk.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    elif template == "cls_sep":
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    kw = dict(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>")
    if template == "cls_sep":
        kw.update(cls_token="[CLS]", sep_token="[SEP]")
    else:
        kw.update(bos_token="<s>", eos_token="</s>")
    return PreTrainedTokenizerFast(**kw)


def make_model(folder: Path, kind: str = "gpt2", template: str | None = None, n_layers: int = 2, d: int = 16,
               seed: int = 0) -> Path:
    """Save a tiny randomly initialised model (kind "gpt2" or "bert") and its tokenizer into folder."""
    import torch
    import transformers

    tok = tokenizer(template if kind == "gpt2" else "cls_sep")
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=n_layers, n_embd=d, n_head=2, vocab_size=len(tok), n_positions=128,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = transformers.GPT2Model(cfg)
    else:
        cfg = transformers.BertConfig(num_hidden_layers=n_layers, hidden_size=d, num_attention_heads=2,
                                      intermediate_size=2 * d, vocab_size=len(tok), max_position_embeddings=128,
                                      pad_token_id=tok.pad_token_id)
        model = transformers.BertModel(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    transformers.utils.logging.disable_progress_bar()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def reference_rows(folder: Path, texts: list[str], layer: int, max_length: int, prepend_bos: bool):
    """hidden_states[layer] at every non-special token, each window run alone (no padding, no batch):
    what harvest must write, computed the obvious way."""
    import numpy as np
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    rows = []
    for text in texts:
        enc = tok(text, truncation=True, max_length=max_length - prepend_bos, return_overflowing_tokens=True,
                  return_special_tokens_mask=True)
        for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"]):
            if prepend_bos:
                ids, special = [tok.bos_token_id, *ids], [1, *special]
            with torch.no_grad():
                h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
            rows.append(h[torch.tensor(special) == 0].numpy())
    return np.concatenate(rows)
