"""Benchmark: the comprehensive analysis (`run_comprehensive_analysis`) of a 4,096-latent SAE over 1M tokens of the embedded default.

    python bench/analysis_full.py                       # 1M tokens, d_sae 4096 (the issue's target)
    python bench/analysis_full.py --tokens 200000       # a quicker run

It loads `sae-nb/tiny-qwen3` (trained and cached on first use), trains a TopK SAE with 4,096 latents on its
middle-layer residual stream for a few hundred steps (so that the features, dead latents and co-occurrence
look like a real SAE's, not a random one's), builds a corpus of at least `--tokens` tokens from the embedded
corpus (the whole corpus is ~380k tokens, so it is repeated, each copy shifted by a few characters so
that the token windows differ), runs the analysis and prints the time and peak memory of every stage (also
in the analysis's README.md). The SAE is trained in a separate process, so the peak memory reported is the
analysis's own (it includes loading the model). Results go to bench/results/analysis_full.json.
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch
from sae_nb.analysis import run_comprehensive_analysis
from sae_nb.config import SAEConfig
from sae_nb.models import EMBEDDED_MODEL, embedded_corpus, get_activations, load_model, resolve_hook
from sae_nb.sae import make_sae


def corpus(tokenizer, n_tokens: int) -> list[str]:
    "At least `n_tokens` tokens of text: the embedded corpus, repeated with a shift of a few characters per copy."
    base, out, total, copy = embedded_corpus("all"), [], 0, 0
    while total < n_tokens:
        texts = [t[3 * copy:] for t in base]
        for t, ids in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"]):
            if not ids: continue
            out.append(t); total += len(ids)
            if total >= n_tokens: break
        copy += 1
    return out


def train_sae(model, hook, d_sae: int, k: int, steps: int, batch_tokens: int = 4096, seed: int = 0):
    "A TopK SAE trained for `steps` Adam steps on activations of the embedded training split."
    torch.manual_seed(seed)
    sae = make_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, architecture="topk", top_k=k, hook_layer=hook.layer,
                             hook_name=hook.name, model_name=EMBEDDED_MODEL, n_batches_to_dead=50, device="cpu"))
    ids = model.tokenizer(embedded_corpus("train")[:600], add_special_tokens=False)["input_ids"]
    stream = torch.tensor([i for t in ids for i in t])
    rows = stream[: len(stream) // 128 * 128].view(-1, 128)
    acts = torch.cat([get_activations(model, rows[i:i + 32], hook).reshape(-1, model.cfg.d_model) for i in range(0, len(rows), 32)])
    sae.b_dec.data = acts.mean(0)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    hist = {"step": [], "loss": [], "recon_loss": [], "dead_feature_percentage": []}
    for s in range(steps):
        x = acts[torch.randint(0, len(acts), (batch_tokens,))]
        out = sae.training_forward(x)
        opt.zero_grad(); out["loss"].backward(); sae.project_decoder_gradients(); opt.step(); sae.normalize_decoder()
        sae.update_inactive_features(out["features"])
        if s % 10 == 9 or s == steps - 1:
            hist["step"].append(s + 1); hist["loss"].append(out["loss"].item()); hist["recon_loss"].append(out["recon_loss"].item())
            hist["dead_feature_percentage"].append(100 * sae.dead_mask().float().mean().item())
    return sae.eval(), hist


def prepare(a, d: Path):
    "Train and save the SAE and write the corpus (run in its own process, so that the analysis's peak memory is its own)."
    model = load_model(EMBEDDED_MODEL, device="cpu")
    hook = resolve_hook(model)
    t = time.time(); sae, hist = train_sae(model, hook, a.d_sae, a.top_k, a.train_steps); train_s = time.time() - t
    sae.save(d/"sae", history=hist)
    (d/"texts.json").write_text(json.dumps(corpus(model.tokenizer, a.tokens)))
    (d/"prepare.json").write_text(json.dumps({"hook": hook.spec, "sae_train_seconds": round(train_s, 1)}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1_000_000, help="corpus tokens to analyse (default 1M)")
    p.add_argument("--d-sae", type=int, default=4096)
    p.add_argument("--top-k", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-max-tokens", type=int, default=100_000)
    p.add_argument("--out", default=str(Path(__file__).parent/"results"/"analysis_full.json"))
    p.add_argument("--keep", help="keep the analysis directory here (default: a temporary directory, removed)")
    p.add_argument("--prepare", help=argparse.SUPPRESS)          # internal: train the SAE and write the corpus into this directory
    a = p.parse_args(argv)
    if a.prepare: return prepare(a, Path(a.prepare))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, __file__, "--prepare", d, "--tokens", str(a.tokens), "--d-sae", str(a.d_sae), "--top-k", str(a.top_k),
                        "--train-steps", str(a.train_steps)], check=True)
        prep = json.loads((Path(d)/"prepare.json").read_text()); hook, train_s = prep["hook"], prep["sae_train_seconds"]
        out = Path(a.keep) if a.keep else Path(d)/"analysis"
        print(f"analysis of {d}/sae over {d}/texts.json in a fresh process (torch threads {torch.get_num_threads()})", flush=True)
        run_comprehensive_analysis(sae_path=Path(d)/"sae", data_path=Path(d)/"texts.json", batch_size=a.batch_size, analysis_dir=out,
                                   eval_max_tokens=a.eval_max_tokens, tag="bench", device="cpu", progress=True)
        summ = json.loads((out/"results"/"run_summary_bench.json").read_text())
        res = json.loads((out/"results"/"analysis_results_bench.json").read_text())
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    report = {"tokens": res["n_tokens"], "texts": res["n_texts"], "nnz": res["nnz"], "d_sae": a.d_sae, "top_k": a.top_k, "hook": hook,
              "stages": summ["stages"], "analysis_seconds": summ["total_seconds"], "sae_train_seconds": round(train_s, 1),
              "analysis_dir_mib": round(size / 2**20, 1), "headline": summ["headline"], "eval_tokens": res["eval_tokens"],
              "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "versions": summ["versions"], "wall_seconds": round(time.time() - t0, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(report, indent=2))
    print(f"\n{res['n_tokens']:,} tokens, {res['nnz']:,} stored activations, d_sae {a.d_sae}: analysis {summ['total_seconds']:.1f}s "
          f"(SAE training {train_s:.1f}s), analysis directory {size / 2**20:,.0f} MiB")
    for s in summ["stages"]: print(f"  {s['stage']:<28} {s['seconds']:8.1f}s   peak RSS {s['peak_rss_mib'] or 0:8,.0f} MiB")
    print(f"headline: {summ['headline']}\nwritten {a.out}")


if __name__ == "__main__":
    sys.exit(main())
