"""Issue 21's quality table: sae_nb's TopK, BatchTopK, Matryoshka-BatchTopK and JumpReLU against SAELens's BatchTopK,
Matryoshka-BatchTopK and JumpReLU, each library training with its own trainer (`train_on_activations`, SAELens's
`SAETrainer`) on the same cached activations of the embedded model at one hook, the same rows in the same order (equal
tokens), the same k (the JumpReLUs pull their L0 towards k with the quadratic penalty). Held-out rows of the val split
give explained variance, normalised MSE, L0 and dead % (never firing in inference mode: BatchTopK-style SAEs use their
learned threshold); held-out windows give loss recovered (non-BOS positions spliced with the SAE vs zero-ablated).

    nice -n 15 python bench/sae_quality.py                      # ~10 min on 2 cores; prints a markdown table
    python bench/sae_quality.py --steps 8 --only sae_nb:batch_topk,saelens:batchtopk   # a quick look
"""
import argparse, json, math, tempfile, time, warnings
from dataclasses import replace
import torch, torch.nn.functional as F

from sae_nb.config import SAEConfig, TrainingConfig
from sae_nb.models import EMBEDDED_MODEL, embedded_corpus, load_model
from sae_nb.sae import make_sae
from sae_nb.training import train_on_activations

ARCHS = ["sae_nb:topk", "sae_nb:batch_topk", "sae_nb:matryoshka_batch_topk", "sae_nb:jumprelu",
         "saelens:batchtopk", "saelens:matryoshka_batchtopk", "saelens:jumprelu"]


def windows(model, texts, n_rows, T):
    "Token windows `[W, T]`, the non-pad mask, and the hook's activations at the real non-BOS positions (>= n_rows)."
    toks, keep, acts, n = [], [], [], 0
    for i in range(0, len(texts), 32):
        t = model.to_tokens(texts[i:i + 32], padding_side="right")[:, :T]
        t = F.pad(t, (0, T - t.shape[1]), value=model.tokenizer.pad_token_id)
        k = t != model.tokenizer.pad_token_id
        k[:, 0] = True                                                     # BOS (= pad id in some tokenizers)
        with torch.no_grad(): _, cache = model.run_with_cache(t, names_filter=HOOK, stop_at_layer=LAYER + 1)
        toks.append(t); keep.append(k); acts.append(cache[HOOK][:, 1:][k[:, 1:]]); n += int(k[:, 1:].sum())
        if n >= n_rows: break
    return torch.cat(toks), torch.cat(keep), torch.cat(acts)


def train_sae_nb(arch, train, a):
    "sae_nb's own loop on the cached rows (batches in the given order); returns the SAE in eval mode."
    torch.manual_seed(a.seed)
    jr = dict(jumprelu_sparsity="quadratic", target_l0=a.k, jumprelu_bandwidth=0.05, jumprelu_init_threshold=0.1,
              pre_act_loss_coeff=a.pre_act_loss, l1_coefficient=a.l0_coeff * a.d_sae / train.shape[1])   # SAELens's λ
    kw = dict(top_k=a.k) if "topk" in arch else jr
    if arch == "matryoshka_batch_topk": kw["matryoshka_widths"] = widths(a)
    cfg = SAEConfig(d_in=train.shape[1], d_sae=a.d_sae, architecture=arch, device="cpu", hook_layer=LAYER,
                    n_batches_to_dead=a.dead_window, b_dec_init="geometric_median", **kw)
    sae = make_sae(cfg)
    tc = TrainingConfig(num_epochs=1, batch_size=a.batch, lr=a.lr, use_end_to_end=False, device="cpu", seed=a.seed)
    train_on_activations(sae, list(train.split(a.batch)), tc, progress=False)
    return sae.eval(), sae


def widths(a): return [a.d_sae // 8, a.d_sae // 4, a.d_sae // 2, a.d_sae]


def train_saelens(arch, train, a):
    "SAELens's SAETrainer with its architecture defaults; BatchTopK-style SAEs are evaluated as the JumpReLU they save."
    import sae_lens
    from sae_lens import LoggingConfig, SAETrainer
    from sae_lens.config import SAETrainerConfig
    torch.manual_seed(a.seed)
    d = dict(d_in=train.shape[1], d_sae=a.d_sae, dtype="float32", device="cpu")
    if arch == "batchtopk": sae = sae_lens.BatchTopKTrainingSAE(sae_lens.BatchTopKTrainingSAEConfig(k=a.k, **d))
    elif arch == "matryoshka_batchtopk":
        c = sae_lens.MatryoshkaBatchTopKTrainingSAEConfig(k=a.k, matryoshka_widths=widths(a), **d)
        sae = sae_lens.MatryoshkaBatchTopKTrainingSAE(c)
    else: sae = sae_lens.JumpReLUTrainingSAE(sae_lens.JumpReLUTrainingSAEConfig(
            jumprelu_sparsity_loss_mode="quadratic", target_l0=a.k, l0_coefficient=a.l0_coeff, **d))
    tcfg = SAETrainerConfig(total_training_samples=train.shape[0], train_batch_size_samples=a.batch, lr=a.lr,
                            lr_end=a.lr, lr_scheduler_name="constant", device="cpu", autocast=False, n_checkpoints=0,
                            checkpoint_path=None, save_final_checkpoint=False, dead_feature_window=a.dead_window,
                            logger=LoggingConfig(log_to_wandb=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SAETrainer(cfg=tcfg, sae=sae, data_provider=iter(train.split(a.batch))).fit()
        with tempfile.TemporaryDirectory() as tmp:
            sae.save_inference_model(tmp)
            inf = sae_lens.SAE.load_from_disk(tmp, device="cpu")
    return inf.eval(), inf


def recon_fn(lib, sae):
    "x -> (x_hat, codes) in inference mode."
    if lib == "sae_nb": return lambda x: tuple(sae(x))
    return lambda x: (lambda f: (sae.decode(f), f))(sae.encode(x))


@torch.no_grad()
def evaluate(recon, model, held, toks, keep):
    "Held-out EV, NMSE, L0, dead %, and loss recovered on the windows."
    sse = sst = l0 = 0.; fired = None
    mu = held.mean(0)
    for x in held.split(4096):
        x_hat, f = recon(x)
        sse += float((x_hat - x).pow(2).sum()); sst += float((x - mu).pow(2).sum())
        l0 += float(f.ne(0).sum()); fire = f.ne(0).any(0)
        fired = fire if fired is None else fired | fire
    def ce(fn=None):
        hooks = [] if fn is None else [(HOOK, lambda act, hook: torch.cat([act[:, :1], fn(act[:, 1:])], 1))]
        out = model.run_with_hooks(toks, fwd_hooks=hooks, return_type="loss", loss_per_token=True,
                                   attention_mask=keep.long())
        m = keep[:, 1:].float()
        return float((out * m).sum() / m.sum())
    shape = lambda a: a.reshape(-1, a.shape[-1])
    c, z = ce(), ce(lambda a: torch.zeros_like(a))
    s = ce(lambda a: recon(shape(a))[0].view_as(a))
    return {"ev": 1 - sse / sst, "nmse": sse / float(held.pow(2).sum()), "l0": l0 / held.shape[0],
            "dead_pct": 100 * float((~fired).float().mean()), "loss_recovered": (z - s) / (z - c)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=64); p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--d-sae", type=int, default=1536); p.add_argument("--k", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3); p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dead-window", type=int, default=8, help="steps without firing before a latent is dead (both)")
    p.add_argument("--l0-coeff", type=float, default=1e-3, help="l0_coefficient of both JumpReLUs (SAELens units)")
    p.add_argument("--pre-act-loss", type=float, default=0.0, help="sae_nb JumpReLU pre_act_loss_coeff")
    p.add_argument("--held-rows", type=int, default=16384); p.add_argument("--lr-windows", type=int, default=64)
    p.add_argument("--hook", default="blocks.1.hook_resid_post"); p.add_argument("--only", default=",".join(ARCHS))
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args()
    global HOOK, LAYER
    HOOK, LAYER = a.hook, int(a.hook.split(".")[1])
    torch.manual_seed(0)
    model = load_model(EMBEDDED_MODEL, device="cpu").eval()
    t0 = time.perf_counter()
    _, _, train = windows(model, embedded_corpus("train"), a.steps * a.batch, 128)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    train = train[order][:a.steps * a.batch].contiguous()
    toks, keep, held = windows(model, embedded_corpus("val"), a.held_rows, 128)
    held = held[:a.held_rows]; toks, keep = toks[:a.lr_windows], keep[:a.lr_windows]
    print(f"{HOOK}: {tuple(train.shape)} train rows, {tuple(held.shape)} held-out rows, "
          f"mean norm {float(train.norm(dim=1).mean()):.1f}, {a.steps} steps of {a.batch}, d_sae {a.d_sae}, k {a.k} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for name in a.only.split(","):
        lib, arch = name.split(":")
        t = time.perf_counter()
        sae, _ = (train_sae_nb if lib == "sae_nb" else train_saelens)(arch, train, a)
        r = {"lib": lib, "arch": arch, **evaluate(recon_fn(lib, sae), model, held, toks, keep),
             "train_s": time.perf_counter() - t}
        rows.append(r); print(json.dumps(r), flush=True)
    print("\n| lib | arch | held-out EV | NMSE | loss recovered | L0 | dead % | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows: print(f"| {r['lib']} | {r['arch']} | {r['ev']:.4f} | {r['nmse']:.4f} | {r['loss_recovered']:.4f} | "
                         f"{r['l0']:.1f} | {r['dead_pct']:.1f} | {r['train_s']:.0f} |")
    if a.json: open(a.json, "w").write(json.dumps(rows, indent=1))


if __name__ == "__main__": main()
