"""Training-step benchmark of sae_nb's top-k SAEs at the peer-bench shape (d_in 512, d_sae 4096, k 32, 4096 rows).

    python bench/train_step.py                    # step times: sparse path vs dense reference, BatchTopK and TopK
    python bench/train_step.py --profile          # + where the time of the sparse BatchTopK step goes (torch.profiler)
    python bench/train_step.py --peers --repeats 3 [--seed 1]
        # the shared peer benchmark (/work/shared/peer-bench): torch_ref, sparsify and our adapter
        # (bench/peer_adapter.py, sae_nb.training.train_on_activations) in one driver run; prints its table of
        # medians and our ratios against the targets (>= 1.5x sparsify's rows/s, normalized MSE <= torch_ref's,
        # no dead latents, peak RSS <= torch_ref's)

Options: --device cpu|cuda (default: cuda when available), --threads N (CPU), --steps N.
Each line gives wall time and process CPU time per step; on a busy machine the CPU times (best with --threads 1)
are the steadier measure. The machine may be shared: compare numbers only within one run (the peer driver waits for a quiet machine and
drops disturbed runs). Note on --seed: the peer driver's data use generator seed 0 for the true feature
directions and torch_ref draws its decoder from seed --seed with the same shape, so with --seed 0 torch_ref starts
at the true dictionary; --seed 1 compares the libraries from an uninformed start.
"""
from __future__ import annotations
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sae_nb.config import SAEConfig                      # noqa: E402
from sae_nb.sae import batch_topk_select, make_sae, synthetic_activations   # noqa: E402

D_IN, D_SAE, K, BATCH = 512, 4096, 32, 4096
PEER_DIR = Path(os.environ.get("PEER_BENCH_DIR", "/work/shared/peer-bench"))
PEER_PY = Path(os.environ.get("PEER_BENCH_VENV", Path.home()/".cache"/"peer-bench"/"venv"))/"bin"/"python"
OURS, MINIMAL = "bench.peer_adapter:train", "bench.peer_adapter:train_minimal"


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()


def make(arch, dev, seed=0):
    torch.manual_seed(seed)
    return make_sae(SAEConfig(d_in=D_IN, d_sae=D_SAE, top_k=K, architecture=arch, device=str(dev)))


def step_fn(sae, opt, dense, features):
    "One training step in the library's order (seed 003), through the SAE's public methods."
    def step(x):
        out = sae.training_forward(x, dense=dense, return_features=features)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        sae.project_decoder_gradients()
        opt.step()
        sae.normalize_decoder()
        sae.update_inactive_features(out)
    return step


def time_steps(step, xs, dev, warmup=2):
    "Median wall time and median process CPU time of one step over `xs` (after `warmup` steps)."
    for x in xs[:warmup]: step(x)
    sync(dev)
    wall, cpu = [], []
    for x in xs[warmup:]:
        t, c = time.perf_counter(), time.process_time()
        step(x); sync(dev)
        wall.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def bench_steps(a, dev):
    xs = synthetic_activations((a.steps + 2) * BATCH, d_in=D_IN, n_true=4096, k_true=16, seed=0).split(BATCH)
    xs = [x.to(dev) for x in xs]
    enc = make("batch_topk", dev)
    with torch.no_grad():                                 # the floor: the encoder matmul every path must do
        mm, mm_cpu = time_steps(lambda x: torch.addmm(enc.b_enc, x, enc.W_enc), xs[:6], dev)
        flat_topk, _ = time_steps(lambda x: enc.pre_acts(x).flatten().topk(K * BATCH, sorted=False), xs[:5], dev)
        fast_topk, _ = time_steps(lambda x: batch_topk_select(enc.pre_acts(x), K * BATCH), xs[:5], dev)
    print(f"device {dev}, threads {torch.get_num_threads()}, shape d_in={D_IN} d_sae={D_SAE} k={K} batch={BATCH}")
    print(f"encoder matmul alone: {mm*1e3:.0f} ms (cpu {mm_cpu*1e3:.0f} ms);  batch top-k incl. encoder: plain topk {flat_topk*1e3:.0f} ms, "
          f"batch_topk_select {fast_topk*1e3:.0f} ms")
    rows = []
    for arch in a.archs.split(","):
        for dense, feats in ((True, True), (False, True), (False, False)):
            sae = make(arch, dev)
            opt = torch.optim.Adam(sae.parameters(), lr=1e-3, fused=True)
            t, cpu = time_steps(step_fn(sae, opt, dense, feats), xs, dev)
            name = f"{arch:10} {'dense reference' if dense else 'sparse'}{'' if feats else ', return_features=False'}"
            rows.append((name, t))
            print(f"{name:48} {t*1e3:7.0f} ms/step  {BATCH/t:8.0f} rows/s  {t/mm:4.1f}x the encoder matmul  "
                  f"| cpu {cpu*1e3:6.0f} ms/step, {cpu/mm_cpu:4.1f}x the matmul's", flush=True)
    return rows


def profile(a, dev):
    from torch.profiler import ProfilerActivity, profile as tprofile
    xs = [x.to(dev) for x in synthetic_activations(6 * BATCH, d_in=D_IN, n_true=4096, k_true=16, seed=0).split(BATCH)]
    sae = make("batch_topk", dev)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3, fused=True)
    step = step_fn(sae, opt, dense=False, features=a.features)
    for x in xs[:2]: step(x)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with tprofile(activities=acts) as prof:
        for x in xs[2:]: step(x)
        sync(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=45))
    groups = {"encoder matmul (addmm)": ("aten::addmm", "aten::mm"),
              "selection (ge, nonzero, kthvalue, topk, index)": ("aten::ge", "aten::nonzero", "aten::kthvalue", "aten::topk", "aten::index",
                                                                  "aten::cumsum", "aten::eq", "aten::gt", "aten::bitwise_or", "aten::bitwise_and", "aten::le"),
              "sparse decoder/gradients (embedding_bag, sampled_addmm, index_add, argsort)": (
                  "aten::_embedding_bag_forward_only", "aten::_embedding_bag", "aten::sparse_sampled_addmm", "aten::index_add_",
                  "aten::sort", "aten::searchsorted", "aten::scatter"),
              "optimizer (fused Adam)": ("aten::_fused_adam_",)}
    ev = {e.key: (e.self_device_time_total if dev.type == "cuda" else e.self_cpu_time_total) for e in prof.key_averages()}
    total = sum(ev.values())
    print(f"\nwhere the time goes (self {'CUDA' if dev.type == 'cuda' else 'CPU'} time, {len(xs) - 2} steps):")
    seen = set()
    for g, names in groups.items():
        t = sum(ev.get(n, 0) for n in names); seen |= set(names)
        print(f"  {t/total:6.1%}  {g}")
    print(f"  {sum(v for k, v in ev.items() if k not in seen)/total:6.1%}  everything else (elementwise passes over [N, d_in] and [d_sae, d_in], losses, bookkeeping)")


def peers(a):
    if not PEER_PY.exists():
        sys.exit(f"no peer venv at {PEER_PY}; build it with: bash {PEER_DIR}/setup.sh {REPO}")
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="peers-"))/"peers.jsonl"
    libs = ["torch_ref", "sparsify", OURS] + ([MINIMAL] if a.minimal else [])
    cmd = [str(PEER_PY), str(PEER_DIR/"peer_sae_step.py"), "--lib", ",".join(libs), "--repeats", str(a.repeats),
           "--out", str(out), "--seed", str(a.seed)] + (["--threads", str(a.threads)] if a.threads else []) + a.driver_args
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    if a.device: env["SAE_NB_BENCH_DEVICE"] = a.device
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)
    runs = [json.loads(l) for l in out.read_text().splitlines() if l.strip()]
    med = {}
    for lib in libs:
        rs = [r for r in runs if r["lib"] == lib]
        clean = [r for r in rs if not r.get("contended")]
        use = clean or rs
        med[lib] = {k: statistics.median(r[k] for r in use) for k in ("rows_per_s", "nmse_heldout", "dead_frac", "peak_rss_mib", "l0_heldout")}
        med[lib]["runs"] = f"{len(clean)}/{len(rs)} clean"
    o, sp, ref = med[OURS], med["sparsify"], med["torch_ref"]
    checks = [("rows/s vs sparsify", o["rows_per_s"] / sp["rows_per_s"], ">= 1.5", o["rows_per_s"] >= 1.5 * sp["rows_per_s"]),
              ("held-out normalized MSE vs torch_ref", o["nmse_heldout"] / ref["nmse_heldout"], "<= 1", o["nmse_heldout"] <= ref["nmse_heldout"]),
              ("dead latents (fraction)", o["dead_frac"], "== 0", o["dead_frac"] == 0),
              ("peak RSS vs torch_ref", o["peak_rss_mib"] / ref["peak_rss_mib"], "<= 1", o["peak_rss_mib"] <= ref["peak_rss_mib"])]
    print(f"\nmedians ({out}):")
    for lib, m in med.items(): print(f"  {lib:26} {m}")
    if a.minimal: print(f"  (the SAE step alone, minimal loop: {med[MINIMAL]['rows_per_s'] / sp['rows_per_s']:.3f}x sparsify's rows/s)")
    print(f"\nsae_nb against the targets (--seed {a.seed}):")
    for name, ratio, target, ok in checks: print(f"  {name:40} {ratio:8.3f}  target {target:6}  {'ok' if ok else 'MISSED'}")
    if a.seed == 0: print("  note: with --seed 0 torch_ref's decoder starts at the data's true feature directions (same generator seed and shape)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    p.add_argument("--archs", default="batch_topk,topk", help="architectures to time (e.g. batch_topk,matryoshka_batch_topk)")
    p.add_argument("--profile", action="store_true", help="also profile the sparse BatchTopK step")
    p.add_argument("--features", action="store_true", help="profile with return_features=True (the dense features tensor)")
    p.add_argument("--peers", action="store_true", help="run the shared peer benchmark instead")
    p.add_argument("--repeats", type=int, default=3, help="--peers: clean runs per library")
    p.add_argument("--seed", type=int, default=0, help="--peers: SAE init seed passed to the driver (see the note above)")
    p.add_argument("--out", default=None, help="--peers: JSONL file for the driver's runs")
    p.add_argument("--minimal", action="store_true", help="--peers: also run bench.peer_adapter:train_minimal (the SAE step without the library loop)")
    a, rest = p.parse_known_args()
    a.driver_args = rest                                   # anything else goes to the peer driver (e.g. --quiet-wait 60)
    if rest and not a.peers: p.error(f"unrecognized arguments: {' '.join(rest)}")
    if a.peers: return peers(a)
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bench_steps(a, dev)
    if a.profile: profile(a, dev)


if __name__ == "__main__":
    main()
