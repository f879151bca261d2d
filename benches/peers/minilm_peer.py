"""Hugging Face transformers peer of graft-text's embedding benchmark.

Loads all-MiniLM-L6-v2 from the folder given as argv[1] (the one `cargo xtask fetch minilm`
unpacks), reads sentences (one per line) from argv[2], and then answers commands on stdin:
`run N` embeds the sentences as one batch N times (tokenisation, BertModel forward, mean
pooling over the attention mask, L2 normalisation -- what sentence-transformers does) and
prints `seconds <total>`; `check` prints the first embedding's first 4 values; `quit` ends.
Threads: argv[3] (default 2), set with torch.set_num_threads.
"""

import sys
import time

import torch
from transformers import AutoModel, AutoTokenizer


def main() -> None:
    model_dir, sentences_path = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    with open(sentences_path, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f if line.strip()]

    def embed() -> torch.Tensor:
        enc = tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
        out = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    with torch.inference_mode():
        embed()  # warm-up
        print("ready", len(sentences), torch.__version__, flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] == "check":
                print("check", " ".join(f"{v:.6f}" for v in embed()[0, :4].tolist()), flush=True)
            elif cmd[0] == "run":
                n = int(cmd[1])
                start = time.perf_counter()
                for _ in range(n):
                    embed()
                print("seconds", time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    main()
