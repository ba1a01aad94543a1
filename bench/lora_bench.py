"""LoRA pipeline benchmark: throughput of each step of `sae_nb.lora` and the cost of the capture hooks.

    python bench/lora_bench.py [--texts 256] [--max-length 256] [--layers 8] [--d-model 512] [--rank 1] [--device cpu] [--threads N]

On a random Qwen3 (`--layers`, `--d-model`, SwiGLU width 3×) wrapped in a rank-`--rank` PEFT LoRA on all seven
adapter types, over texts of the embedded corpus, it measures and prints one JSON object:
  forward   the decoder stack alone on the same padded batches (no hooks, no LM head): tokens/s
  capture   capture_lora_activations (tokenize, hooks on lora_A, drop padding, chunked HDF5 writes): tokens/s,
            and its ratio to forward (target >= 0.8: the hooks and the file cost little next to the model)
  merge     merge_activation_files of a 4-part capture into one file: rows/s
  stream    one shuffled epoch of LoraActivationDataset(batch_size=4096): rows/s
  collect   collect_lora_features with an SAE of 16 × d_in latents (encode + ExampleCollector): tokens/s
plus the file size per token. Pass `--threads 1` on a shared CPU (oversubscribed threads make the ratios noise).
"""
import argparse, json, os, sys, tempfile, time, warnings
from pathlib import Path

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=256); ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8); ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--rank", type=int, default=1); ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu"); ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.simplefilter("ignore")
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from sae_nb.config import SAEConfig
    from sae_nb.lora import (LoraActivationDataset, _decoder, _tokenize, capture_lora_activations, collect_lora_features,
                             merge_activation_files, read_lora_info, tiny_lora_model)
    from sae_nb.models import embedded_corpus
    from sae_nb.sae import make_sae
    model = tiny_lora_model(r=a.rank, n_layers=a.layers, d_model=a.d_model).to(a.device).eval()
    tok = model.tokenizer
    texts = embedded_corpus("train")[:a.texts]
    res = {"texts": len(texts), "max_length": a.max_length, "layers": a.layers, "d_model": a.d_model, "rank": a.rank,
           "device": a.device, "threads": torch.get_num_threads(), "torch": torch.__version__}
    batches = [_tokenize(tok, texts[i:i + a.batch_size], a.max_length) for i in range(0, len(texts), a.batch_size)]
    n_tok = int(sum(b["attention_mask"].sum() for b in batches))
    with torch.inference_mode():                                        # warm-up, then the model alone
        _decoder(model)(input_ids=batches[0]["input_ids"].to(a.device), use_cache=False)
        t0 = time.perf_counter()
        for b in batches: _decoder(model)(input_ids=b["input_ids"].to(a.device), attention_mask=b["attention_mask"].to(a.device), use_cache=False)
        res["forward_tok_s"] = n_tok / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t0 = time.perf_counter()
        p = capture_lora_activations(model, texts, d/"a.h5", "all", max_length=a.max_length, batch_size=a.batch_size, progress=False)
        res["capture_tok_s"] = n_tok / (time.perf_counter() - t0)
        res["capture_over_forward"] = res["capture_tok_s"] / res["forward_tok_s"]
        info = read_lora_info(p)
        res.update(n_tokens=info.n_tokens, d_in=info.d_in, file_bytes_per_token=p.stat().st_size / info.n_tokens)
        parts = [capture_lora_activations(model, texts, d/f"p{r}.h5", "all", max_length=a.max_length, batch_size=a.batch_size, rank=r,
                                          world_size=4, progress=False) for r in range(4)]
        t0 = time.perf_counter(); merge_activation_files(parts, d/"m.h5", progress=False)
        res["merge_rows_s"] = info.n_tokens / (time.perf_counter() - t0)
        ds = LoraActivationDataset(p, batch_size=4096)
        t0 = time.perf_counter(); n = sum(len(b) for b in ds)
        res["stream_rows_s"] = n / (time.perf_counter() - t0)
        sae = make_sae(SAEConfig(d_in=info.d_in, expansion_factor=16, top_k=32, architecture="batch_topk", device=a.device)).eval()
        t0 = time.perf_counter(); collect_lora_features(sae, p, tok, progress=False)
        res["collect_tok_s"] = info.n_tokens / (time.perf_counter() - t0)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}, indent=2))
    return res

if __name__ == "__main__": main()
