"""sae_nb's BatchTopK SAE as a library in the shared peer benchmark.

    PYTHONPATH=/work/main ~/.cache/peer-bench/venv/bin/python /work/shared/peer-bench/peer_sae_step.py \
        --lib torch_ref,sparsify,bench.peer_adapter:train --repeats 3

`train(acts_iterator, cfg)` follows the contract in the docstring of `peer_sae_step.run_external`: it trains
through sae_nb's public API (`make_sae`, `SAE.initialize_b_dec`, `sae_nb.training.train_on_activations`),
calls `cfg.on_step()` after every optimizer step (a global optimizer step hook: the training loop is not
modified), calibrates the BatchTopK inference threshold on the last training batch
(`BatchTopKSAE.calibrate_threshold`, after the timed steps), and returns a `recon(x) -> (x_hat, codes)` callable
that uses the SAE's inference path (eval mode: the threshold, each row on its own).

Environment switches (for finding where the time goes, not for the headline numbers):
  SAE_NB_BENCH_DEVICE=cpu|cuda   default: cuda when available
  SAE_NB_BENCH_LOOP=minimal      a 10-line loop over the SAE's public methods instead of train_on_activations
                                 (or --lib bench.peer_adapter:train_minimal)
  SAE_NB_BENCH_DENSE=1           the dense reference step (training_forward(dense=True))
  SAE_NB_BENCH_B_DEC=mean|geometric_median|zeros   b_dec initialisation (default: mean, as torch_ref and sparsify)
"""
from __future__ import annotations
import itertools, os
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from sae_nb import __version__  # noqa: F401  (the driver reports it)
from sae_nb.config import SAEConfig, TrainingConfig
from sae_nb.sae import make_sae


def _device() -> str:
    return os.environ.get("SAE_NB_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def _minimal_loop(sae, batches, cfg, dense: bool) -> str:
    "The step order of seed 003 over the SAE's public methods; fused Adam."
    from bench.train_step import step_fn                     # the one copy of the step order (also timed there)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, fused=True)
    sae.train()
    step = step_fn(sae, opt, dense, features=False)
    for x in batches: step(x.to(sae.device))
    return f"torch Adam(fused) lr={cfg.lr:g} constant, minimal loop over SAE methods"


def _library_loop(sae, batches, cfg, dense: bool) -> str:
    "sae_nb.training.train_on_activations: the loop every sae_nb entry point uses."
    from sae_nb.training import train_on_activations
    if dense: raise ValueError("SAE_NB_BENCH_DENSE=1 needs SAE_NB_BENCH_LOOP=minimal (the library loop always takes the default path)")
    tc = TrainingConfig(num_epochs=1, batch_size=cfg.batch_size, lr=cfg.lr, grad_clip=None,
                        use_end_to_end=False, seed=cfg.seed, log_freq=10**9, lr_schedule="constant", warmup_steps=0)
    train_on_activations(sae, batches, tc, progress=False, save_best=False, n_batches=cfg.warmup_steps + cfg.n_steps)
    return f"torch Adam lr={cfg.lr:g} constant, no grad clip (sae_nb.training.train_on_activations)"


def train(acts_iterator, cfg, loop=None):
    "Train sae_nb's BatchTopKSAE on `acts_iterator` (peer-bench contract); return the reconstruction callable and notes."
    dev, loop = _device(), loop or os.environ.get("SAE_NB_BENCH_LOOP", "library")
    dense, b_dec = os.environ.get("SAE_NB_BENCH_DENSE") == "1", os.environ.get("SAE_NB_BENCH_B_DEC", "mean")
    torch.manual_seed(cfg.seed)
    sae = make_sae(SAEConfig(d_in=cfg.d_in, d_sae=cfg.d_sae, top_k=cfg.k, architecture="batch_topk", device=dev))
    it = iter(acts_iterator)
    first = next(it)
    if b_dec != "zeros": sae.initialize_b_dec(first, method=b_dec)
    last = [first]
    def batches():
        for x in itertools.chain([first], it): last[0] = x; yield x
    hook = register_optimizer_step_post_hook(lambda *_: cfg.on_step())
    try: optimizer = (_minimal_loop if loop == "minimal" else _library_loop)(sae, batches(), cfg, dense)
    finally: hook.remove()
    ema = float(sae.threshold)
    sae.calibrate_threshold(last[0].to(dev))                 # the EMA threshold lags in a 67-step run; see 02_sae
    sae.eval()

    @torch.no_grad()
    def recon(x):
        out = sae(x.to(dev))
        return out.x_recon.float().cpu(), out.features.cpu()

    return {"reconstruct": recon, "arch": "batchtopk", "optimizer": optimizer,
            "b_dec_init": "first-batch mean (SAE.initialize_b_dec)" if b_dec == "mean" else f"{b_dec} (SAE.initialize_b_dec)",
            "notes": f"sae_nb BatchTopKSAE, {'dense reference' if dense else 'sparse'} step on {dev}, loop={loop}; "
                     f"eval: learned threshold, calibrated on the last training batch ({float(sae.threshold):.4g}; EMA {ema:.4g})"}


train.api = "sae_nb: make_sae(SAEConfig(architecture='batch_topk')) + initialize_b_dec + training.train_on_activations"


def train_minimal(acts_iterator, cfg):
    "As `train`, with the minimal loop over the SAE's public methods (`--lib bench.peer_adapter:train_minimal`): the SAE step without the library loop's overhead."
    return train(acts_iterator, cfg, loop="minimal")


train_minimal.api = "sae_nb: make_sae + initialize_b_dec + a minimal loop (training_forward(return_features=False), fused Adam, update_inactive_features(out))"
