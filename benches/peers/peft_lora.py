"""Hugging Face PEFT peer of graft-text's LoRA adapters (issue 20): both directions.

Needs a Python with torch, numpy, safetensors, transformers and peft (`pip install torch
numpy safetensors transformers peft`). Sentence embeddings are graft's definition (and
sentence-transformers'): the last hidden state averaged over the unmasked tokens, then
L2-normalised.

  peft_lora.py make MODEL_DIR OUT_DIR
      Builds a PEFT LoRA (r=4, lora_alpha=8, lora_dropout=0.1, target_modules query,value)
      on the BertModel in MODEL_DIR, trains it with a small head for a few Adam steps on the
      8 sentences below (so that every lora_B is nonzero), saves the adapter with
      `save_pretrained` to OUT_DIR, and writes OUT_DIR/sentences.txt and
      OUT_DIR/embeddings.npy (float32, 8 x 384: the embeddings PEFT's model gives, eval mode).
      This is graft-text's test data `tests/data/peft_minilm`.

  peft_lora.py check MODEL_DIR ADAPTER_DIR TEXTS.txt GRAFT_EMBEDDINGS.npy
      Loads ADAPTER_DIR (written by graft, e.g. `graft transfer --strategy lora:4 --out`)
      with `PeftModel.from_pretrained(AutoModel.from_pretrained(MODEL_DIR), ADAPTER_DIR)`,
      embeds the texts (one per line) and prints the largest absolute difference from the
      embeddings graft wrote (`graft embed --adapter ADAPTER_DIR --out E.npy`), and the same
      for the base model without the adapter (which must differ). Exits 1 above 1e-4.
"""

import json
import os
import sys

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "The compiler rejected my program with a cryptic error.",
    "Never trust a computer you cannot throw out of a window.",
    "The soup was too salty, but the bread was excellent.",
    "Chocolate is nature's way of making up for Mondays.",
    "The court adjourned until the witness could be found.",
    "Love is blind, but marriage is a real eye-opener.",
    "The senator promised lower taxes and higher spending.",
    "He scored twice in the final minutes of the match.",
]
LABELS = [0, 0, 1, 1, 2, 3, 2, 3]


def embed(model, tok, texts):
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
    pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def make(model_dir, out_dir):
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModel.from_pretrained(model_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.1,
        target_modules=["query", "value"],
        bias="none",
    )
    model = get_peft_model(base, config)
    head = torch.nn.Linear(384, 4)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    labels = torch.tensor(LABELS)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(embed(model, tok, SENTENCES)), labels)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        e = embed(model, tok, SENTENCES).numpy().astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    np.save(os.path.join(out_dir, "embeddings.npy"), e)
    with open(os.path.join(out_dir, "sentences.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(SENTENCES) + "\n")
    sd = {k: v for k, v in model.state_dict().items() if "lora_B" in k}
    print("min |lora_B| max:", min(float(v.abs().max()) for v in sd.values()))
    print("saved", sorted(os.listdir(out_dir)))


def check(model_dir, adapter_dir, texts_path, graft_npy):
    tok = AutoTokenizer.from_pretrained(model_dir)
    with open(os.path.join(adapter_dir, "adapter_config.json"), encoding="utf-8") as f:
        print("adapter_config:", json.load(f))
    with open(texts_path, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    graft = np.load(graft_npy)
    base = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        plain = embed(base, tok, texts).numpy()
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(model_dir), adapter_dir).eval()
    with torch.no_grad():
        e = embed(model, tok, texts).numpy()
    diff = float(np.abs(e - graft).max())
    print(f"texts {len(texts)}; max |PEFT - graft| = {diff:.3g}; "
          f"max |base - graft| = {float(np.abs(plain - graft).max()):.3g}")
    sys.exit(0 if diff <= 1e-4 else 1)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "check":
        check(*sys.argv[2:])
    else:
        sys.exit(__doc__)
