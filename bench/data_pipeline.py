"""Data pipeline benchmark: memory and throughput of `capture_activations` and `ActivationShardDataset`.

    python bench/data_pipeline.py [--tokens 150000] [--model auto|embedded|random] [--device cpu] [--threads N]

For N and 4N corpus tokens it runs, each in a fresh process (so that peak RSS is that phase's own):
  capture  capture_activations over the corpus (tokenization, forward to the hook's layer, filtering, shard writes)
  stream   one shuffled epoch of ActivationShardDataset(batch_size=4096) over those shards
  forward  the model alone on the same padded batches, to the same layer (get_activations), tokens pre-made
and prints one JSON object: peak RSS of each phase (and its growth from N to 4N; target < 15%), the RSS above
the process's baseline after imports and model load, and capture tokens/s over forward-only tokens/s (target >= 0.8).
Model: the embedded `sae-nb/tiny-qwen3` when it is already built (never trained here), else a random Qwen3 of
4 layers, d_model 256 (`--model random`), hooked at its middle layer. On a shared CPU pass `--threads 1`:
oversubscribed intra-op threads make forward passes several times slower and the ratios noise.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

def _rss_mb() -> float:
    "Current resident set size (MB) from /proc."
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def _model(kind:str, device:str):
    from sae_nb.models import EMBEDDED_MODEL, cache_dir, load_model, tiny_random_model, _embedded_ok
    if kind == "embedded" or (kind == "auto" and _embedded_ok(cache_dir()/"models"/"tiny-qwen3")):
        return load_model(EMBEDDED_MODEL, device=device, progress=False), "embedded"
    return tiny_random_model(seed=0, n_layers=4, d_model=256, n_heads=8, n_kv_heads=4, n_ctx=512, device=device), "random"

def _corpus(tokenizer, n_tokens:int) -> list[str]:
    "Texts of the embedded corpus, cycled (each copy marked) until they hold `n_tokens` tokens."
    from sae_nb.models import embedded_corpus
    base, out, n, i = embedded_corpus("train"), [], 0, 0
    lens = [len(x) for x in tokenizer(base, add_special_tokens=False)["input_ids"]]
    while n < n_tokens:
        t, k = base[i % len(base)], i // len(base)
        out.append(t if k == 0 else f"{t}\n\n[copy {k}]"); n += lens[i % len(base)]; i += 1
    return out

def worker(a):
    import torch
    torch.manual_seed(0)
    if a.threads: torch.set_num_threads(a.threads)
    from sae_nb.data import ActivationShardDataset, capture_activations, window_batches
    from sae_nb.models import get_activations, resolve_hook
    model, kind = _model(a.model, a.device)
    hook = resolve_hook(model)
    texts = _corpus(model.tokenizer, a.tokens) if a.phase != "stream" else None
    base_rss = _rss_mb()
    res = dict(phase=a.phase, model=kind, model_name=model.cfg.model_name, hook=hook.spec, d_in=model.cfg.d_model,
               threads=torch.get_num_threads(), baseline_rss_mb=round(base_rss, 1))
    if a.phase == "capture":
        t = time.perf_counter()
        capture_activations(model, texts, hook, a.dir, tokens_per_shard=a.tokens_per_shard, batch_size=a.batch_size,
                            max_length=a.max_length, progress=False)
        secs = time.perf_counter() - t
        man = json.loads((Path(a.dir)/"manifest.json").read_text())
        res.update(tokens=man["stats"]["text_tokens"], shards=len(man["shards"]), seconds=round(secs, 2),
                   tokens_per_s=round(man["stats"]["text_tokens"] / secs))
    elif a.phase == "stream":
        ds = ActivationShardDataset(a.dir, batch_size=4096, buffer_rows=a.tokens_per_shard)
        t, rows = time.perf_counter(), 0
        for b in ds: rows += len(b)
        secs = time.perf_counter() - t
        res.update(rows=rows, seconds=round(secs, 2), rows_per_s=round(rows / secs))
    else:                                                   # forward only: the same batches, tokens prepared beforehand
        batches = list(window_batches(texts, model.tokenizer, a.max_length, a.batch_size))
        n_tok = sum(int(b.attention_mask.sum()) for b in batches)
        t = time.perf_counter()
        for tokens, mask, *_ in batches:
            acts = get_activations(model, tokens.to(model.cfg.device), hook, attention_mask=mask.to(model.cfg.device))
        if a.device.startswith("cuda"): torch.cuda.synchronize()
        secs = time.perf_counter() - t
        res.update(tokens=n_tok, seconds=round(secs, 2), tokens_per_s=round(n_tok / secs))
    res.update(peak_rss_mb=round(_peak_mb(), 1), rss_above_baseline_mb=round(_peak_mb() - base_rss, 1))
    print(json.dumps(res))

def run(phase, tokens, d, a) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--tokens", str(tokens), "--dir", str(d), "--model", a.model,
           "--device", a.device, "--batch-size", str(a.batch_size), "--max-length", str(a.max_length),
           "--tokens-per-shard", str(a.tokens_per_shard), "--threads", str(a.threads or 0)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(f"{phase} at {tokens} tokens failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=150_000, help="N: the small corpus size (the large one is 4N)")
    p.add_argument("--model", default="auto", choices=["auto", "embedded", "random"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--tokens-per-shard", type=int, default=16384)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.phase: return worker(a)
    out = dict(bench="data_pipeline", settings=dict(tokens_small=a.tokens, tokens_large=4 * a.tokens, batch_size=a.batch_size,
                                                     max_length=a.max_length, tokens_per_shard=a.tokens_per_shard, device=a.device,
                                                     threads=a.threads or None))
    with tempfile.TemporaryDirectory() as tmp:
        for label, n in (("N", a.tokens), ("4N", 4 * a.tokens)):
            d = Path(tmp)/label
            out[label] = {ph: run(ph, n, d, a) for ph in ("capture", "stream", "forward")}
    for ph in ("capture", "stream"):
        out[f"{ph}_peak_rss_growth_4N_vs_N"] = round(out["4N"][ph]["peak_rss_mb"] / out["N"][ph]["peak_rss_mb"] - 1, 4)
        out[f"{ph}_rss_above_baseline_mb"] = [out["N"][ph]["rss_above_baseline_mb"], out["4N"][ph]["rss_above_baseline_mb"]]
    out["capture_over_forward_throughput"] = [round(out[k]["capture"]["tokens_per_s"] / out[k]["forward"]["tokens_per_s"], 3) for k in ("N", "4N")]
    out["model"] = out["N"]["capture"]["model"]
    print(json.dumps(out, indent=1))

if __name__ == "__main__":
    main()
