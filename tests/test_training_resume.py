"""Kill a training run with SIGKILL and resume it: the result must equal an uninterrupted run, bit for bit.

Each run is a separate process training a BatchTopK SAE on the embedded `sae-nb/tiny-qwen3` (CPU, one thread,
fixed seed): the reference runs to the end; one run is killed in the middle of epoch 2 and resumed from its
latest checkpoint; one is killed while it writes the epoch-2 checkpoint, which must leave epoch 1's intact.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

CHILD = r'''
import json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from sae_nb.config import SAEConfig, TrainingConfig
from sae_nb.models import load_model, embedded_corpus, resolve_hook
from sae_nb.sae import make_sae
from sae_nb.data import WindowedTextDataset, make_dataloader
import sae_nb.training as T

a = json.loads(sys.argv[1])
model = load_model("sae-nb/tiny-qwen3", device="cpu")
hook = resolve_hook(model)
cfg = TrainingConfig(num_epochs=3, batch_size=8, lr=2e-3, warmup_steps=6, lr_schedule="cosine",
                     activation_batch_size=4, use_end_to_end=False, seed=0, log_freq=5)
torch.manual_seed(0)
sae = make_sae(SAEConfig(d_in=hook.d_in, expansion_factor=4, top_k=16, hook_layer=hook.layer, hook_name=hook.name, device="cpu"))
ds = WindowedTextDataset(embedded_corpus("train")[:24], model.tokenizer, 64, seed=0, progress=False)
vds = WindowedTextDataset(embedded_corpus("val")[:4], model.tokenizer, 64, random_crop=False, progress=False)
dl, vl = make_dataloader(ds, cfg), make_dataloader(vds, cfg, shuffle=False)
marker = Path(a["marker"]) if a.get("marker") else None

if a.get("slow_epoch2"):                         # from the 6th batch of epoch 2 on (a step checkpoint is behind): say so, go slowly until killed
    collate, seen = dl.collate_fn, [0]
    def slow(b):
        if ds.epoch == 1:
            seen[0] += 1
            if seen[0] >= 6: marker.touch(); time.sleep(0.3)
        return collate(b)
    dl.collate_fn = slow

if a.get("hang_in_save"):                        # stop forever in the middle of writing checkpoint_epoch2.pt
    save = torch.save
    def hanging_save(obj, f, *args, **kw):
        save(obj, f, *args, **kw)
        if ".checkpoint_epoch2.pt.tmp" in str(f): marker.touch(); time.sleep(3600)
    torch.save = hanging_save

T.train_sae(sae, model, dl, cfg, checkpoint_dir=a["ckpt"], checkpoint_freq=1, checkpoint_every_steps=4, val_loader=vl,
            resume_from=a.get("resume"), progress=False)
print("finished")
'''


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore")
    return env


def _run(args: dict, timeout=600):
    "Run the child to completion."
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 and "finished" in r.stdout, r.stderr[-3000:]


def _run_and_kill(args: dict, marker: Path, timeout=600):
    "Start the child, SIGKILL it as soon as `marker` appears; return its exit code."
    p = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists():
        if p.poll() is not None: pytest.fail(f"the run ended before it could be killed:\n{p.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout: p.kill(); pytest.fail("timed out waiting for the run to reach the kill point")
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return p.returncode


def _assert_same(a: Path, b: Path):
    "Weights and buffers, optimizer/scheduler/scaler state and history of two checkpoints are identical."
    wa, wb = load_file(str(a/"weights.safetensors")), load_file(str(b/"weights.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa: assert torch.equal(wa[k], wb[k]), f"weights differ: {k}"
    oa, ob = (torch.load(p/"optimizer.pt", weights_only=True) for p in (a, b))
    def same(x, y, path):
        if isinstance(x, dict): assert x.keys() == y.keys(), path; [same(x[k], y[k], f"{path}/{k}") for k in x]
        elif isinstance(x, (list, tuple)): assert len(x) == len(y), path; [same(u, v, f"{path}[{i}]") for i, (u, v) in enumerate(zip(x, y))]
        elif torch.is_tensor(x): assert torch.equal(x, y), path
        else: assert x == y, (path, x, y)
    same(oa, ob, "optimizer.pt")
    assert json.loads((a/"history.json").read_text()) == json.loads((b/"history.json").read_text())
    sa, sb = (json.loads((p/"trainer_state.json").read_text()) for p in (a, b))
    for k in ("step", "epoch", "batch_in_epoch", "best_val", "best_step"): assert sa[k] == sb[k], k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    _run({"ckpt": str(d)})
    assert (d/"checkpoint_epoch3.pt").is_dir()
    return d


def test_sigkill_in_epoch2_then_resume_equals_uninterrupted(reference, tmp_path):
    from sae_nb.training import latest_checkpoint
    marker = tmp_path/"in_epoch2"
    _run_and_kill({"ckpt": str(tmp_path/"ck"), "marker": str(marker), "slow_epoch2": True}, marker)
    last = latest_checkpoint(tmp_path/"ck")
    state = json.loads((last/"trainer_state.json").read_text())
    assert state["epoch"] == 1 and state["batch_in_epoch"] > 0, state             # killed mid-epoch 2, after a step checkpoint
    assert not (tmp_path/"ck"/"checkpoint_epoch2.pt").exists()
    _run({"ckpt": str(tmp_path/"ck"), "resume": str(last)})
    _assert_same(reference/"checkpoint_epoch3.pt", tmp_path/"ck"/"checkpoint_epoch3.pt")
    _assert_same(reference/"checkpoint_epoch2.pt", tmp_path/"ck"/"checkpoint_epoch2.pt")
    assert not [p.name for p in (tmp_path/"ck").iterdir() if p.name.startswith(".")]   # no temporaries left behind


def test_sigkill_while_writing_checkpoint_keeps_previous(reference, tmp_path):
    from sae_nb.sae import load_sae
    from sae_nb.training import latest_checkpoint, read_checkpoint
    marker, ck = tmp_path/"saving", tmp_path/"ck"
    _run_and_kill({"ckpt": str(ck), "marker": str(marker), "hang_in_save": True}, marker)
    names = sorted(p.name for p in ck.iterdir())
    assert "checkpoint_epoch2.pt" not in names and "checkpoint_epoch1.pt" in names, names
    assert any(n.startswith(".checkpoint_epoch2.pt.tmp-") for n in names), names   # the half-written one stayed hidden
    read_checkpoint(ck/"checkpoint_epoch1.pt")                                     # intact and complete
    sae = load_sae(ck/"checkpoint_epoch1.pt")
    x = torch.randn(16, sae.d_in)
    assert torch.isfinite(sae(x).x_recon).all()
    last = latest_checkpoint(ck)
    assert json.loads((last/"trainer_state.json").read_text())["epoch"] >= 1
    _run({"ckpt": str(ck), "resume": str(last)})
    _assert_same(reference/"checkpoint_epoch3.pt", ck/"checkpoint_epoch3.pt")
    assert not [p.name for p in ck.iterdir() if p.name.startswith(".")]
