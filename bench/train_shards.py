"""Training from cached activation shards: is the data path (and the loop) ever the bottleneck? And DDP on CPU.

    python bench/train_shards.py                              # embedded model's activations, CPU, 1 and 2 processes
    python bench/train_shards.py --model tiny-random --rows 100000
    python bench/train_shards.py --device cuda --batch-size 8192 --no-ddp

Rows measured (rows/s of SAE training, same SAE, batch size and number of steps):
  sae_step_alone     the bare step on batches already in memory: training_forward, backward, project_decoder_gradients,
                     clip, Adam, normalize_decoder, update_inactive_features — no loop, no data loading
  loop_in_memory     train_on_activations over the same in-memory batches (the loop's own overhead)
  shards             train_on_shards reading the shards from disk (ActivationShardDataset: shuffle pool, batching)
  shards_<n>workers  the same with n DataLoader worker processes reading and shuffling while the SAE trains
  ddp_1proc / ddp_2proc  train_on_shards under torchrun with 1 and 2 processes (gloo on CPU, NCCL on GPUs);
                     batch_size is per process, so 2 processes train 2x the rows per step
The target for shards / sae_step_alone is >= 0.9. The shards are captured once (data.capture_activations) into --shard-dir.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch


def _sae(a, d_in):
    from sae_nb.config import SAEConfig
    from sae_nb.sae import make_sae
    torch.manual_seed(0)
    return make_sae(SAEConfig(d_in=d_in, expansion_factor=a.expansion, architecture=a.arch,
                              top_k=a.top_k if "topk" in a.arch else None, l1_coefficient=0.01, device=a.device))


def _cfg(a, **kw):
    from sae_nb.config import TrainingConfig
    return TrainingConfig(**{**dict(batch_size=a.batch_size, lr=1e-3, num_epochs=1000, max_steps=a.steps, use_end_to_end=False,
                                    log_freq=10**9, seed=0), **kw})


def _shards(a) -> Path:
    "Capture (once) the model's activations at its middle layer into --shard-dir."
    from sae_nb.models import load_model, tiny_random_model, embedded_corpus, resolve_hook
    from sae_nb.data import capture_activations, read_manifest
    d = Path(a.shard_dir)
    if (d/"manifest.json").exists() and read_manifest(d)["complete"] and read_manifest(d)["total_rows"] >= a.rows: return d
    model = tiny_random_model() if a.model == "tiny-random" else load_model(a.model, device="cpu")
    texts, n, out = embedded_corpus("train"), 0, []
    for t in texts:                                       # enough text for --rows tokens
        out.append(t); n += len(t) // 3
        if n > a.rows * 1.3: break
    capture_activations(model, out, resolve_hook(model), d, tokens_per_shard=a.shard_rows, batch_size=16, max_length=256, overwrite=True, progress=True)
    return d


def _sync(a):
    if a.device.startswith("cuda"): torch.cuda.synchronize()


def bare_step(a, batches) -> float:
    "Seconds for --steps bare SAE steps over in-memory batches."
    from sae_nb.sae import TopKSAE
    sae = _sae(a, batches[0].shape[1]).train()
    opt, sparse = torch.optim.Adam(sae.parameters(), lr=1e-3), isinstance(sae, TopKSAE)
    def run(n):
        for i in range(n):
            x = batches[i % len(batches)]
            out = sae.training_forward(x, return_features=not sparse)   # top-k classes: no [N, d_sae] tensor
            out["loss"].backward()
            sae.project_decoder_gradients()
            torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
            opt.step(); opt.zero_grad(set_to_none=True)
            sae.normalize_decoder()
            sae.update_inactive_features(out)
        _sync(a)
    run(3)
    t0 = time.perf_counter(); run(a.steps); return time.perf_counter() - t0


def loop_in_memory(a, batches) -> float:
    from sae_nb.training import train_on_activations
    train_on_activations(_sae(a, batches[0].shape[1]), batches[:3], _cfg(a, max_steps=3), save_best=False, progress=False)
    t0 = time.perf_counter()
    train_on_activations(_sae(a, batches[0].shape[1]), batches, _cfg(a), save_best=False, progress=False)
    _sync(a); return time.perf_counter() - t0


def shards(a, shard_dir, workers=0) -> float:
    from sae_nb.training import train_on_shards
    from sae_nb.data import read_manifest
    d_in = read_manifest(shard_dir)["d_in"]
    train_on_shards(_sae(a, d_in), shard_dir, _cfg(a, max_steps=3, num_dataloader_workers=workers), save_best=False, progress=False)
    t0 = time.perf_counter()
    train_on_shards(_sae(a, d_in), shard_dir, _cfg(a, num_dataloader_workers=workers), save_best=False, progress=False)
    _sync(a); return time.perf_counter() - t0


def ddp_worker(a):
    "Under torchrun: time train_on_shards; rank 0 writes rows/s to --result."
    from sae_nb.training import init_distributed, train_on_shards, is_main_process
    from sae_nb.data import read_manifest
    rank, world = init_distributed()
    if a.device == "cuda": a.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    d_in = read_manifest(a.shard_dir)["d_in"]
    train_on_shards(_sae(a, d_in), a.shard_dir, _cfg(a, max_steps=3), save_best=False, progress=False)
    t0 = time.perf_counter()
    train_on_shards(_sae(a, d_in), a.shard_dir, _cfg(a), save_best=False, progress=False)
    _sync(a); dt = time.perf_counter() - t0
    if is_main_process(): Path(a.result).write_text(json.dumps({"world": world, "seconds": dt, "rows_per_s": a.steps * a.batch_size * world / dt}))


def run_ddp(a, nproc) -> dict:
    res = Path(tempfile.mkdtemp())/"ddp.json"
    args = [sys.argv[0], "--worker", "--result", str(res), "--shard-dir", a.shard_dir, "--steps", str(a.steps), "--batch-size", str(a.batch_size),
            "--expansion", str(a.expansion), "--top-k", str(a.top_k), "--arch", a.arch, "--device", a.device, "--threads", str(a.threads or 1)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads or 1))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args], check=True, env=env)
    return json.loads(res.read_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sae-nb/tiny-qwen3", help="model whose activations are captured ('tiny-random' needs nothing)")
    ap.add_argument("--shard-dir", default=str(Path(tempfile.gettempdir())/"sae_nb_bench_shards"))
    ap.add_argument("--rows", type=int, default=200_000, help="rows to capture")
    ap.add_argument("--shard-rows", type=int, default=32768)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process (DDP runs use this, default 1)")
    ap.add_argument("--batch-size", type=int, default=4096, help="rows per step (per process under DDP)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--arch", default="batch_topk")
    ap.add_argument("--expansion", type=float, default=8)
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="also time train_on_shards with this many DataLoader workers reading the shards (0: skip)")
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.worker: return ddp_worker(a)

    shard_dir = _shards(a); a.shard_dir = str(shard_dir)
    from sae_nb.data import ActivationShardDataset
    ds = ActivationShardDataset(shard_dir, shuffle=True, batch_size=a.batch_size, seed=0)
    batches = []
    for b in ds:
        batches.append(b.to(a.device).float())
        if len(batches) == min(a.steps, 16): break
    med = lambda f: statistics.median(f() for _ in range(a.repeats))
    secs = {"sae_step_alone": med(lambda: bare_step(a, batches)), "loop_in_memory": med(lambda: loop_in_memory(a, batches)),
            "shards": med(lambda: shards(a, shard_dir))}
    if a.workers: secs[f"shards_{a.workers}workers"] = med(lambda: shards(a, shard_dir, a.workers))
    rows = {k: a.steps * a.batch_size / v for k, v in secs.items()}
    if not a.no_ddp:
        for n in (1, 2):
            r = run_ddp(a, n); rows[f"ddp_{n}proc"] = r["rows_per_s"]
    res = dict(device=a.device, threads=torch.get_num_threads(), d_in=batches[0].shape[1], d_sae=int(round(a.expansion * batches[0].shape[1])),
               arch=a.arch, top_k=a.top_k, batch_size=a.batch_size, steps=a.steps, rows_per_s={k: round(v) for k, v in rows.items()},
               ratio_shards_vs_step=round(rows["shards"] / rows["sae_step_alone"], 3), ratio_loop_vs_step=round(rows["loop_in_memory"] / rows["sae_step_alone"], 3),
               cpu_count=os.cpu_count())
    if "ddp_2proc" in rows: res["ddp_speedup_2_vs_1"] = round(rows["ddp_2proc"] / rows["ddp_1proc"], 3)
    print(f"d_in={res['d_in']} d_sae={res['d_sae']} {a.arch} k={a.top_k}, batch {a.batch_size} x {a.steps} steps, device={a.device}, threads={res['threads']}")
    for k, v in rows.items(): print(f"  {k:16s} {v:12,.0f} rows/s")
    print(f"  shards / sae_step_alone = {res['ratio_shards_vs_step']:.2f} (target >= 0.9); loop in memory / step alone = {res['ratio_loop_vs_step']:.2f}")
    if "ddp_speedup_2_vs_1" in res: print(f"  DDP 2 processes vs 1: x{res['ddp_speedup_2_vs_1']:.2f} ({os.cpu_count()} CPU cores)")
    if a.out: Path(a.out).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
