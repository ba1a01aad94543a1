"""The training loop under torchrun: 2 CPU processes, gloo backend, loopback rendezvous.

- A DDP run equals a single-process run over the same global batches (final weights within 1e-5). For TopK (a
  per-row rule) that is one batch of both ranks' rows; for BatchTopK, whose top-k budget is taken over each
  rank's own batch (as in dictionary_learning and sparsify), it is the single-process run with
  `grad_accum_steps=2` whose micro-batches are the ranks' batches.
- Uneven data (a dataset length not divisible by the world size, ranks with different batch counts) never hangs.
- Only rank 0 writes checkpoints; every rank ends with the same weights; a run interrupted on both ranks and
  resumed under torchrun ends exactly like the uninterrupted one (per-rank state restored).
"""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

CHILD = r'''
import json, os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from sae_nb.config import SAEConfig, TrainingConfig
from sae_nb.sae import make_sae, synthetic_activations
from sae_nb.training import init_distributed, is_main_process, train_on_activations, train_sae

a = json.loads(sys.argv[1])
if a["mode"] == "shards":                                        # built before the process group exists (as a CLI might)
    from sae_nb.data import ActivationShardDataset
    shard_ds = ActivationShardDataset(a["shards"], batch_size=32, seed=0)
rank, world = init_distributed()
assert world == 2, world
out = Path(a["out"])
torch.manual_seed(0)
arch = a.get("arch", "topk")
sae = make_sae(SAEConfig(d_in=16, d_sae=64, architecture=arch, top_k=4, n_batches_to_dead=5, device="cpu"))
cfg = TrainingConfig(num_epochs=2, batch_size=64, lr=3e-3, warmup_steps=4, use_end_to_end=False, seed=0)
kw = dict(checkpoint_dir=a.get("ckpt"), checkpoint_freq=1, checkpoint_every_steps=3, progress=False, resume_from=a.get("resume"))

if a["mode"] == "activations":                                   # rank r reads rows [64 r, 64 (r+1)) of every global batch of 128
    glob = list(synthetic_activations(2048, d_in=16, seed=0).split(128))
    mine = [g[64 * rank:64 * (rank + 1)] for g in glob]
    crash = a.get("crash_at")
    def batches(epoch):
        for i, b in enumerate(mine):
            if crash is not None and epoch * len(mine) + i == crash: raise KeyboardInterrupt("interrupted on every rank")
            yield b
    hist = train_on_activations(sae, batches, cfg, val_batches=mine[:2], n_batches=len(mine), **kw)
elif a["mode"] == "uneven":                                      # 33 batches: rank 0 gets 17, rank 1 gets 16
    rows = list(synthetic_activations(33 * 64, d_in=16, seed=0).split(64))
    hist = train_on_activations(sae, rows[rank::2], cfg, **kw)
elif a["mode"] == "text":                                        # 13 windows on 2 ranks, batch 4: padded to 7 + 7
    from sae_nb.models import tiny_random_model, embedded_corpus
    from sae_nb.data import WindowedTextDataset, make_dataloader
    model = tiny_random_model(seed=0)
    torch.manual_seed(0)
    sae = make_sae(SAEConfig(d_in=64, d_sae=256, top_k=8, hook_layer=0, device="cpu"))
    tcfg = TrainingConfig(num_epochs=2, batch_size=4, use_end_to_end=True, use_logit_kl=True, seed=0)
    from torch.utils.data import Subset
    ds = Subset(WindowedTextDataset(embedded_corpus("train")[:64], model.tokenizer, 32, random_crop=False, progress=False), range(13))
    vds = WindowedTextDataset(embedded_corpus("val")[:2], model.tokenizer, 32, random_crop=False, progress=False)
    dl = make_dataloader(ds, tcfg, shuffle=True, pad_token_id=0)
    hist = train_sae(sae, model, dl, tcfg, val_loader=make_dataloader(vds, tcfg, shuffle=False), checkpoint_dir=a.get("ckpt"), progress=False)
elif a["mode"] == "shards":
    from sae_nb.training import train_on_shards
    torch.manual_seed(0)
    sae = make_sae(SAEConfig(d_in=64, d_sae=256, top_k=8, hook_layer=0, device="cpu"))
    hist = train_on_shards(sae, shard_ds, TrainingConfig(num_epochs=2, batch_size=32, use_end_to_end=False, seed=0),
                           checkpoint_dir=a.get("ckpt"), progress=False)
save_file({k: v.contiguous() for k, v in sae.state_dict().items()}, str(out/f"rank{rank}.safetensors"))
if is_main_process(): (out/"history.json").write_text(json.dumps(hist))
print(f"rank {rank} finished")
'''


def _torchrun(tmp: Path, args: dict, expect_ok=True, timeout=600):
    "Run the child under torchrun with 2 CPU processes."
    script = tmp/"child.py"
    script.write_text(CHILD)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), json.dumps(args)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if expect_ok: assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    return r


def _weights(p): return load_file(str(p))


def _single(arch, grad_accum=1, **kw):
    "The single-process reference over the same global batches."
    from sae_nb.config import SAEConfig, TrainingConfig
    from sae_nb.sae import make_sae, synthetic_activations
    from sae_nb.training import train_on_activations
    torch.manual_seed(0)
    sae = make_sae(SAEConfig(d_in=16, d_sae=64, architecture=arch, top_k=4, n_batches_to_dead=5, device="cpu"))
    glob = list(synthetic_activations(2048, d_in=16, seed=0).split(128))
    cfg = TrainingConfig(num_epochs=2, batch_size=128, lr=3e-3, warmup_steps=4, use_end_to_end=False, seed=0, grad_accum_steps=grad_accum)
    batches = glob if grad_accum == 1 else [h for g in glob for h in g.split(64)]   # micro-batches = the ranks' batches, in rank order
    hist = train_on_activations(sae, batches, cfg, val_batches=[g[:64] for g in glob[:2]] + [g[64:] for g in glob[:2]], progress=False, **kw)
    return sae, hist


@pytest.fixture(scope="module")
def ddp_topk(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp_topk")
    _torchrun(d, {"mode": "activations", "arch": "topk", "out": str(d), "ckpt": str(d/"ck")})
    return d


def test_ddp_equals_single_process_topk(ddp_topk):
    w0, w1 = _weights(ddp_topk/"rank0.safetensors"), _weights(ddp_topk/"rank1.safetensors")
    for k in w0: assert torch.equal(w0[k], w1[k]), f"ranks disagree on {k}"
    sae, hist = _single("topk")
    for k in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(w0[k], sae.state_dict()[k], atol=1e-5, rtol=0)
    assert torch.equal(w0["num_batches_not_active"], sae.num_batches_not_active)       # dead-latent counters all-reduced
    ddp_hist = json.loads((ddp_topk/"history.json").read_text())
    assert ddp_hist["step"] == hist["step"] == [16, 32]
    assert abs(ddp_hist["loss"][-1] - hist["loss"][-1]) < 1e-5


def test_ddp_batch_topk_equals_grad_accumulation(tmp_path):
    _torchrun(tmp_path, {"mode": "activations", "arch": "batch_topk", "out": str(tmp_path)})
    w = _weights(tmp_path/"rank0.safetensors")
    sae, _ = _single("batch_topk", grad_accum=2)
    for k in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(w[k], sae.state_dict()[k], atol=1e-5, rtol=0)
    glob, _ = _single("batch_topk", grad_accum=1)                                       # one top-k over both ranks' rows differs
    assert (w["W_enc"] - glob.W_enc.detach()).abs().max() > 1e-4


def test_only_rank0_writes_checkpoints_with_per_rank_state(ddp_topk):
    ck = ddp_topk/"ck"
    assert sorted(p.name for p in ck.iterdir()) == ["best_model.pt", "checkpoint_epoch1.pt", "checkpoint_epoch2.pt", "checkpoint_step30.pt"]
    st = json.loads((ck/"checkpoint_epoch2.pt"/"trainer_state.json").read_text())
    assert st["world_size"] == 2 and len(st["ranks"]) == 2
    assert st["ranks"][0]["tokens"] == st["ranks"][1]["tokens"] == 2 * 1024


def test_ddp_interrupted_and_resumed_equals_uninterrupted(ddp_topk, tmp_path):
    from sae_nb.training import latest_checkpoint
    r = _torchrun(tmp_path, {"mode": "activations", "arch": "topk", "out": str(tmp_path), "ckpt": str(tmp_path/"ck"), "crash_at": 23}, expect_ok=False)
    assert r.returncode != 0
    last = latest_checkpoint(tmp_path/"ck")
    assert last.name == "checkpoint_step21.pt", last
    _torchrun(tmp_path, {"mode": "activations", "arch": "topk", "out": str(tmp_path), "ckpt": str(tmp_path/"ck"), "resume": str(last)})
    a, b = _weights(ddp_topk/"rank0.safetensors"), _weights(tmp_path/"rank0.safetensors")
    for k in a: assert torch.equal(a[k], b[k]), k
    assert json.loads((ddp_topk/"history.json").read_text()) == json.loads((tmp_path/"history.json").read_text())
    oa = torch.load(ddp_topk/"ck"/"checkpoint_epoch2.pt"/"optimizer.pt", weights_only=True)
    ob = torch.load(tmp_path/"ck"/"checkpoint_epoch2.pt"/"optimizer.pt", weights_only=True)
    for i, s in oa["optimizer"]["state"].items():
        for k, v in s.items(): assert torch.equal(v, ob["optimizer"]["state"][i][k]), (i, k)


def test_uneven_batches_do_not_hang(tmp_path):
    _torchrun(tmp_path, {"mode": "uneven", "out": str(tmp_path)}, timeout=300)
    hist = json.loads((tmp_path/"history.json").read_text())
    assert hist["step"] == [16, 32]                                                   # both ranks stop after the 16 batches they share
    w0, w1 = _weights(tmp_path/"rank0.safetensors"), _weights(tmp_path/"rank1.safetensors")
    for k in w0: assert torch.equal(w0[k], w1[k]), k


def test_on_the_fly_end_to_end_under_torchrun(tmp_path):
    _torchrun(tmp_path, {"mode": "text", "out": str(tmp_path), "ckpt": str(tmp_path/"ck")}, timeout=600)
    hist = json.loads((tmp_path/"history.json").read_text())
    assert hist["step"] == [2, 4] and len(hist["logit_kl"]) == 2 and len(hist["val_loss"]) == 2   # 13 windows -> 7 per rank -> 2 batches of 4
    w0, w1 = _weights(tmp_path/"rank0.safetensors"), _weights(tmp_path/"rank1.safetensors")
    for k in w0: assert torch.equal(w0[k], w1[k]), k
    assert (tmp_path/"ck"/"checkpoint_epoch2.pt").is_dir()


def test_shards_under_torchrun_each_rank_reads_its_half(tmp_path):
    from sae_nb.models import tiny_random_model, embedded_corpus, resolve_hook
    from sae_nb.data import capture_activations, read_manifest
    shards = capture_activations(m := tiny_random_model(seed=0), embedded_corpus("train")[:16], resolve_hook(m, 0), tmp_path/"shards",
                                 tokens_per_shard=1000, max_length=48, progress=False)
    _torchrun(tmp_path, {"mode": "shards", "out": str(tmp_path), "shards": str(shards), "ckpt": str(tmp_path/"ck")})
    hist = json.loads((tmp_path/"history.json").read_text())
    per_epoch = sum(s["rows"] // 2 * 2 for s in read_manifest(shards)["shards"])     # each rank reads its half of every shard, once
    assert hist["tokens"] == [per_epoch, 2 * per_epoch], (hist["tokens"], per_epoch)
    w0, w1 = _weights(tmp_path/"rank0.safetensors"), _weights(tmp_path/"rank1.safetensors")
    for k in w0: assert torch.equal(w0[k], w1[k]), k
