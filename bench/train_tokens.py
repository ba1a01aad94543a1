"""Training throughput on the fly: tokens/s of `train_sae` vs the model's forward pass alone up to the hook.

    python bench/train_tokens.py                          # embedded sae-nb/tiny-qwen3, CPU
    python bench/train_tokens.py --device cuda --batch-size 32 --max-len 256
    python bench/train_tokens.py --model tiny-random      # no embedded model needed (random 2-layer Qwen3)

Rows measured, each over the same batches of padded windows (real tokens counted, padding not):
  forward_to_hook   models.get_activations (stop_at_layer = hook layer + 1), no_grad: the floor any on-the-fly trainer pays
  train             train_sae, end-to-end losses off
  train_kl          train_sae with the logit KL (clean pass to the logits + spliced pass from the hooked block)
  train_kl_block    train_sae with logit KL and block MSE at every later layer
The target for `train / forward_to_hook` is >= 0.7. Each timing is the median of --repeats runs after a warm-up run.
Prints a table and writes JSON (--out).
"""
import argparse, json, os, statistics, sys, time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sae-nb/tiny-qwen3", help="model name for models.load_model, or 'tiny-random'")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--batches", type=int, default=20, help="batches per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", default="batch_topk")
    ap.add_argument("--expansion", type=float, default=4)
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--activation-batch-size", type=int, default=None, help="sequences per SAE chunk (default: whole batch)")
    ap.add_argument("--amp", action="store_true", help="use_amp (bf16 on CPU, fp16 on CUDA)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)

    from sae_nb.config import SAEConfig, TrainingConfig
    from sae_nb.models import load_model, tiny_random_model, embedded_corpus, resolve_hook, get_activations
    from sae_nb.sae import make_sae
    from sae_nb.data import WindowedTextDataset, make_dataloader
    from sae_nb.training import train_sae

    model = tiny_random_model(device=a.device) if a.model == "tiny-random" else load_model(a.model, device=a.device)
    hook = resolve_hook(model)
    cfg = TrainingConfig(batch_size=a.batch_size, num_epochs=1, max_steps=a.batches, use_end_to_end=False,
                         activation_batch_size=a.activation_batch_size, log_freq=10**9, seed=0, use_amp=a.amp)
    ds = WindowedTextDataset(embedded_corpus("train"), model.tokenizer, a.max_len, seed=0, progress=False)
    batches = []
    for b in make_dataloader(ds, cfg):
        batches.append(b)
        if len(batches) == a.batches: break
    n_tokens = sum(int(b.attention_mask.sum()) for b in batches)
    sync = (lambda: torch.cuda.synchronize()) if a.device.startswith("cuda") else (lambda: None)

    def forward_only():
        with torch.no_grad():
            for b in batches: get_activations(model, b.tokens.to(a.device), hook, attention_mask=b.attention_mask.to(a.device))
        sync()

    def trainer(c):
        def run():
            torch.manual_seed(0)
            sae = make_sae(SAEConfig(d_in=hook.d_in, expansion_factor=a.expansion, architecture=a.arch,
                                     top_k=a.top_k if "topk" in a.arch else None, hook_layer=hook.layer, hook_name=hook.name, device=a.device))
            train_sae(sae, model, batches, c, save_best=False, progress=False)
            sync()
        return run

    def timed(fn):
        fn()                                                            # warm-up (allocations, kernels, caches)
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    rows = {"forward_to_hook": timed(forward_only), "train": timed(trainer(cfg)),
            "train_kl": timed(trainer(replace(cfg, use_end_to_end=True, use_logit_kl=True))),
            "train_kl_block": timed(trainer(replace(cfg, use_end_to_end=True, use_logit_kl=True, use_block_mse=True)))}
    tps = {k: n_tokens / v for k, v in rows.items()}
    res = dict(model=model.cfg.model_name, hook=hook.spec, device=a.device, threads=torch.get_num_threads(), batch_size=a.batch_size,
               max_len=a.max_len, batches=a.batches, tokens=n_tokens, arch=a.arch, d_sae=int(round(a.expansion * hook.d_in)),
               top_k=a.top_k, amp=a.amp, tokens_per_s={k: round(v, 1) for k, v in tps.items()},
               ratio_train_vs_forward=round(tps["train"] / tps["forward_to_hook"], 3),
               ratio_kl_vs_train=round(tps["train_kl"] / tps["train"], 3), ratio_kl_block_vs_train=round(tps["train_kl_block"] / tps["train"], 3))
    print(f"{res['model']} {hook}  d_sae={res['d_sae']} {a.arch} k={a.top_k}  {a.batches} batches x {a.batch_size} x <= {a.max_len} "
          f"({n_tokens} tokens), device={a.device}, threads={res['threads']}")
    for k, v in tps.items(): print(f"  {k:16s} {v:12,.0f} tok/s")
    print(f"  train / forward_to_hook = {res['ratio_train_vs_forward']:.2f} (target >= 0.7); "
          f"KL costs x{1 / res['ratio_kl_vs_train']:.2f}, KL + block MSE x{1 / res['ratio_kl_block_vs_train']:.2f} of plain training")
    if a.out: Path(a.out).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
