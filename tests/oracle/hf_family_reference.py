#!/usr/bin/env python3
"""transformers' logits for the tiny checkpoints of make_hf_family_models.py, summarized into
tests/oracle/hf_family_logits.json for tests/test_hf_families_match_transformers.c, and what
llama.cpp's convert_hf_to_gguf.py (--outtype f32) makes of each: the sha256 of every tensor's
bytes and the {arch}.* keys, for the test to hold `qsense quantize`'s GGUF against.

Needs torch and transformers (PyPI; the Linux torch wheel is large: keep its venv outside the
repo, e.g. $QSENSE_CACHE/torchvenv). Each model runs in float32 with eager attention on the 256
token ids of tokens.json; stored per model: the ids, every position's log-sum-exp of the logits
and the logit of the next id, and the whole logit rows of four positions.

usage: hf_family_reference.py MODELS_DIR OUT_JSON LLAMA_CPP_SRC
       (MODELS_DIR written by make_hf_family_models.py; LLAMA_CPP_SRC: vendor/llama.cpp of PyPI's
        llama-cpp-python==0.3.36 source, as scripts/fetch_models.sh fetches it)
"""
import hashlib
import json
import os
import subprocess
import sys

import torch
import transformers

ROWS = [0, 17, 130, 255]
PRE = {"llama": "llama-bpe", "mistral": "gpt2", "qwen2": "qwen2", "qwen3": "qwen2", "gemma3": "gpt2", "phi3": "gpt2", "qwen3moe": "qwen2",
       "mixtral": "gpt2"}


def converted(models_dir, name, llama_cpp):
    """llama.cpp's conversion of one model: tensor sha256s and the architecture's keys"""
    out = os.path.join(models_dir, name + "-convert_hf_to_gguf.gguf")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, os.path.join(here, "convert_hf_with_llamacpp.py"), llama_cpp, PRE[name],
                    os.path.join(models_dir, name), out], check=True, capture_output=True)
    sys.path.insert(0, os.path.join(llama_cpp, "gguf-py"))
    import gguf
    r = gguf.GGUFReader(out)
    arch = r.fields["general.architecture"].contents()
    keys = {k: f.contents() for k, f in r.fields.items() if k.startswith(arch + ".")}
    tensors = {t.name: hashlib.sha256(bytes(t.data)).hexdigest() for t in r.tensors}
    return {"architecture": arch, "keys": keys, "tensor_sha256": tensors}


def main():
    models_dir, out, llama_cpp = sys.argv[1], sys.argv[2], sys.argv[3]
    toks = json.load(open(os.path.join(models_dir, "tokens.json")))
    result = {"generator": "tests/oracle/make_hf_family_models.py",
              "oracle": "transformers %s, torch %s, float32, eager attention; convert_hf_to_gguf.py of "
                        "llama-cpp-python 0.3.36's llama.cpp, --outtype f32" % (transformers.__version__, torch.__version__),
              "rows": ROWS, "models": {}}
    torch.manual_seed(0)
    for name, ids in toks.items():
        model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(models_dir, name), dtype=torch.float32,
                                                                  attn_implementation="eager")
        model.eval()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        lse = torch.logsumexp(logits, dim=-1)
        nxt = [float(logits[p, ids[p + 1]]) for p in range(len(ids) - 1)]
        result["models"][name] = {
            "tokens": ids,
            "sliding_window": getattr(model.config, "sliding_window", None),
            "lse": [round(float(x), 7) for x in lse],
            "next_logit": [round(x, 7) for x in nxt],
            "full_rows": [[round(float(x), 7) for x in logits[p]] for p in ROWS],
            "convert_hf_to_gguf": converted(models_dir, name, llama_cpp),
        }
        print("%s: %s, logits %s, mean lse %.4f" % (name, type(model).__name__, tuple(logits.shape), float(lse.mean())))
    with open(out, "w") as f:
        json.dump(result, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
