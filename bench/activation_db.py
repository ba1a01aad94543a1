"""Activation database at corpus scale (issue 10): collection speed and memory, lookup latency, matrix memory.

Every measurement runs in its own subprocess, so each peak RSS (`ru_maxrss`) belongs to one step:

1. `forward`  - the model's forward-only tokens/s on the same windows: to the hook's layer (what collection runs)
                and through all layers;
2. `collect`  - `collect_all_activations` on the embedded default model (`sae-nb/tiny-qwen3`, hook = its middle
                layer) with a 4,096-latent SAE, at `--small` (250k) and `--tokens` (1M) tokens: wall time, tokens/s,
                peak RSS, database size on disk. The corpus is `embedded_corpus("all")`, repeated when it is smaller
                than the token count (the JSON says how many times);
3. `lookup`   - on the 1M-token database: `get_feature_activations(f, top_k=20)` and `get_token_activations(t)`
                latencies over random features / tokens (and the most frequent feature);
4. `similarity`, `cooccurrence` - `d_sae = 16,384`: decoder similarity (cosine) from a random decoder, and the
                co-occurrence matrix (jaccard) of a database collected with a 16,384-latent SAE (`--big-tokens`).

The SAE is a random `TopKSAE` (k=32) in eval mode unless `--sae DIR` names a trained one: collection speed and
memory depend on its size and k, not on its training. Prints one JSON document (and writes it to `--out`).

    HF_HUB_OFFLINE=1 python bench/activation_db.py [--tokens 1000000] [--small 250000] [--big-tokens 250000]

On a shared machine wall times mostly measure the neighbours; `cpu_s` (user+sys of the step) is steadier.
"""
import argparse, json, math, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024          # Linux: KiB


def _rss_mib() -> float:
    "Current resident memory."
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _corpus(n_tokens: int, tokenizer) -> tuple[list, dict]:
    "The embedded corpus repeated until it holds at least `n_tokens` tokens, cut at the first text that reaches it."
    from sae_nb.models import embedded_corpus
    base = embedded_corpus("all")
    lens = [len(x) for i in range(0, len(base), 256) for x in tokenizer(base[i:i + 256], add_special_tokens=False)["input_ids"]]
    texts, total, reps = [], 0, 0
    while total < n_tokens:
        reps += 1
        for t, n in zip(base, lens):
            texts.append(t); total += n
            if total >= n_tokens: break
    return texts, {"corpus_texts": len(base), "corpus_tokens": sum(lens), "corpus_repeats": reps, "texts": len(texts), "tokens": total}


def _model_sae(d_sae: int, sae_dir: str | None, model_name: str):
    import torch
    from sae_nb.config import SAEConfig
    from sae_nb.models import load_model, resolve_hook, sae_hook, tiny_random_model
    from sae_nb.sae import TopKSAE, load_sae
    model = tiny_random_model() if model_name == "random" else load_model(model_name, device="cpu")
    if sae_dir: sae = load_sae(sae_dir); return model, sae, sae_hook(model, sae)
    hook = resolve_hook(model)
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=hook.d_in, d_sae=d_sae, top_k=32, architecture="topk", device="cpu",
                            hook_layer=hook.layer, hook_name=hook.name)).eval()
    return model, sae, hook


# ---------------------------------------------------------------- child steps
def child_forward(a) -> dict:
    import torch
    from sae_nb.activation_db import _corpus_batches, _corpus_windows
    from sae_nb.models import get_activations
    model, sae, hook = _model_sae(a.d_sae, a.sae, a.model)
    texts, info = _corpus(a.forward_tokens, model.tokenizer)
    span = min(model.cfg.n_ctx, 256)                                # collect_all_activations' default window
    out = {"hook_spec": hook.spec, "n_layers": model.cfg.n_layers, "batch_size": a.batch_size, "max_length": span, **info}
    ds, _ = _corpus_windows(model.tokenizer, texts, range(len(texts)), span, False)
    batches = [(b.tokens, b.attention_mask, b.store) for b in _corpus_batches(ds, range(len(texts)), a.batch_size)]
    n_real = sum(int(s.sum()) for _, _, s in batches)
    for name, fn in [("to_hook", lambda t, m: get_activations(model, t, hook, attention_mask=m)),
                     ("full", lambda t, m: model(t, attention_mask=m, return_type="logits"))]:
        t0, c0 = time.time(), _cpu_s()
        with torch.no_grad():
            for t, m, _ in batches: fn(t, m)
        out[f"forward_{name}_tokens_per_s"] = round(n_real / (time.time() - t0))
        out[f"forward_{name}_cpu_s"] = round(_cpu_s() - c0, 2)
    out["peak_rss_mib"] = round(_peak_rss_mib(), 1)
    return out


def child_collect(a) -> dict:
    from sae_nb.activation_db import collect_all_activations
    model, sae, hook = _model_sae(a.d_sae, a.sae, a.model)
    texts, info = _corpus(a.n_tokens, model.tokenizer)
    rss0, cur0 = _peak_rss_mib(), _rss_mib()
    t0, c0 = time.time(), _cpu_s()
    db = collect_all_activations(model, sae, texts, hook, batch_size=a.batch_size, save_path=a.db, progress=False)
    wall = time.time() - t0
    size = sum(p.stat().st_size for p in Path(a.db).rglob("*") if p.is_file())
    return {"d_sae": sae.d_sae, "top_k": sae.cfg.top_k, "hook_spec": hook.spec, "batch_size": a.batch_size, **info,
            "n_tokens": db.n_tokens, "nnz": db.nnz, "wall_s": round(wall, 1), "cpu_s": round(_cpu_s() - c0, 1),
            "tokens_per_s": round(db.n_tokens / wall), "tokens_per_cpu_s": round(db.n_tokens / (_cpu_s() - c0)),
            "rss_before_collect_mib": round(cur0, 1), "peak_rss_before_collect_mib": round(rss0, 1), "peak_rss_mib": round(_peak_rss_mib(), 1),
            "db_mib": round(size / 2**20, 1)}


def child_lookup(a) -> dict:
    import numpy as np
    from sae_nb.activation_db import ActivationDatabase
    t0 = time.perf_counter(); db = ActivationDatabase.load(a.db); load_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(0)
    def timed(fn, args):
        fn(args[0])                                                            # first touch of the files
        ts = []
        for x in args:
            t = time.perf_counter(); fn(x); ts.append((time.perf_counter() - t) * 1e3)
        ts = np.array(ts)
        return {"n": len(ts), "mean_ms": round(ts.mean(), 4), "p50_ms": round(np.median(ts), 4), "p99_ms": round(np.quantile(ts, 0.99), 4), "max_ms": round(ts.max(), 4)}
    feats = rng.integers(0, db.d_sae, 500).tolist(); toks = rng.integers(0, db.n_tokens, 2000).tolist()
    dense = int(np.argmax(db.feature_count))
    return {"n_tokens": db.n_tokens, "d_sae": db.d_sae, "nnz": db.nnz, "load_ms": round(load_ms, 2),
            "get_feature_activations_top20": timed(lambda f: db.get_feature_activations(f, top_k=20), feats),
            "densest_feature": {"feature": dense, "count": int(db.feature_count[dense]),
                                **timed(lambda f: db.get_feature_activations(f, top_k=20), [dense] * 20)},
            "get_token_activations": timed(db.get_token_activations, toks),
            "top_examples_20": timed(lambda f: db.top_examples(f, 20), feats),
            "peak_rss_mib": round(_peak_rss_mib(), 1)}


def child_similarity(a) -> dict:
    import torch
    from sae_nb.activation_db import compute_feature_similarity
    torch.manual_seed(0)
    W = torch.randn(a.big_d_sae, 192)                      # d_in of sae-nb/tiny-qwen3's residual stream
    rss0 = _peak_rss_mib()
    t0, c0 = time.time(), _cpu_s()
    S = compute_feature_similarity(W, "cosine", save_path=Path(a.work)/"sim.npy", progress=False)
    out = {"d_sae": a.big_d_sae, "d_in": 192, "metric": "cosine", "wall_s": round(time.time() - t0, 1), "cpu_s": round(_cpu_s() - c0, 1),
           "file_mib": round(os.path.getsize(S.filename) / 2**20, 1), "peak_rss_before_mib": round(rss0, 1), "peak_rss_mib": round(_peak_rss_mib(), 1)}
    os.remove(S.filename)
    return out


def child_cooccurrence(a) -> dict:
    from sae_nb.activation_db import ActivationDatabase, compute_feature_cooccurrence
    db = ActivationDatabase.load(a.db)
    rss0 = _peak_rss_mib()
    t0, c0 = time.time(), _cpu_s()
    M = compute_feature_cooccurrence(db, "jaccard", save_path=Path(a.work)/"cooc.npy", progress=False)
    out = {"d_sae": db.d_sae, "n_tokens": db.n_tokens, "nnz": db.nnz, "metric": "jaccard", "wall_s": round(time.time() - t0, 1),
           "cpu_s": round(_cpu_s() - c0, 1), "file_mib": round(os.path.getsize(M.filename) / 2**20, 1),
           "peak_rss_before_mib": round(rss0, 1), "peak_rss_mib": round(_peak_rss_mib(), 1)}
    os.remove(M.filename)
    return out


# ---------------------------------------------------------------- driver
def _run(step: str, a, **kw) -> dict:
    args = [sys.executable, str(HERE), "--child", step, "--model", a.model, "--batch-size", str(a.batch_size), "--d-sae", str(kw.get("d_sae", a.d_sae)),
            "--big-d-sae", str(a.big_d_sae), "--work", a.work, "--forward-tokens", str(a.forward_tokens)]
    if a.sae and kw.get("d_sae", a.d_sae) == a.d_sae: args += ["--sae", a.sae]
    for k in ("n_tokens", "db"):
        if k in kw: args += [f"--{k.replace('_', '-')}", str(kw[k])]
    print(f"[bench] {step} {kw}", file=sys.stderr, flush=True)
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0: raise SystemExit(f"step {step} failed:\n{r.stderr[-4000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"[bench] {step}: {res}", file=sys.stderr, flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=250_000)
    ap.add_argument("--big-tokens", type=int, default=250_000, help="tokens of the 16,384-latent database for co-occurrence")
    ap.add_argument("--forward-tokens", type=int, default=100_000)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--big-d-sae", type=int, default=16384)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="sae-nb/tiny-qwen3", help="load_model name, or 'random' (tiny_random_model, a smoke test)")
    ap.add_argument("--sae", default=None, help="a trained SAE directory (default: random TopK, k=32)")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--out", default=str(HERE.parent/"results"/"activation_db.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n-tokens", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--db", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(globals()[f"child_{a.child}"](a)))
        return
    with tempfile.TemporaryDirectory(prefix="sae_nb_bench_") as w:
        a.work = a.work or w
        work = Path(a.work)
        res = {"load_avg_start": os.getloadavg(), "cpu_count": os.cpu_count()}
        res["forward"] = _run("forward", a)
        res["collect_small"] = _run("collect", a, n_tokens=a.small, db=work/"db_small")
        res["collect_large"] = _run("collect", a, n_tokens=a.tokens, db=work/"db_large")
        res["lookup"] = _run("lookup", a, db=work/"db_large")
        res["similarity_16k"] = _run("similarity", a)
        res["collect_16k"] = _run("collect", a, n_tokens=a.big_tokens, db=work/"db_16k", d_sae=a.big_d_sae)
        res["cooccurrence_16k"] = _run("cooccurrence", a, db=work/"db_16k")
        s, l = res["collect_small"], res["collect_large"]
        lk = res["lookup"]
        res["checks"] = {
            "rss_large_over_small": round(l["peak_rss_mib"] / s["peak_rss_mib"], 3),
            "rss_growth_during_collect_mib": {"small": round(s["peak_rss_mib"] - s["rss_before_collect_mib"], 1), "large": round(l["peak_rss_mib"] - l["rss_before_collect_mib"], 1)},
            "rss_within_15pct": l["peak_rss_mib"] <= 1.15 * s["peak_rss_mib"],
            "feature_top20_p99_under_20ms": lk["get_feature_activations_top20"]["p99_ms"] < 20,
            "densest_feature_top20_max_under_20ms": lk["densest_feature"]["max_ms"] < 20,
            "token_activations_p99_under_1ms": lk["get_token_activations"]["p99_ms"] < 1,
            "similarity_16k_rss_under_1_5gib": res["similarity_16k"]["peak_rss_mib"] < 1536,
            "cooccurrence_16k_rss_under_1_5gib": res["cooccurrence_16k"]["peak_rss_mib"] < 1536,
            "collect_vs_forward_to_hook": round(l["tokens_per_s"] / res["forward"]["forward_to_hook_tokens_per_s"], 3),
            "collect_vs_forward_full": round(l["tokens_per_s"] / res["forward"]["forward_full_tokens_per_s"], 3),
        }
        res["load_avg_end"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
