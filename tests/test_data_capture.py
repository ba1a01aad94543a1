"Activation capture survives a real SIGKILL, and the datasets work in spawned DataLoader workers (pickling)."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

def _texts():
    from sae_nb.data import process_textbooks, sample_raw_dir, load_processed_data
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        texts = load_processed_data(process_textbooks(sample_raw_dir(), Path(d)/"t.json", progress=False))
    return [f"{t}\n\n(copy {i})" for i in range(4) for t in texts]          # ~12k tokens: a few hundred batches

KW = dict(tokens_per_shard=256, batch_size=2, max_length=64)
HOOK = "blocks.1.hook_resid_post"

CHILD = textwrap.dedent("""
    import json, sys, time
    from sae_nb.models import resolve_hook, tiny_random_model
    from sae_nb.data import capture_activations
    texts, out, kw = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    model = tiny_random_model(seed=0)
    hook = resolve_hook(model, hook_name=sys.argv[4])
    model.add_hook("blocks.0.hook_resid_pre", lambda x, hook: (time.sleep(0.02), x)[1])   # slow, same values
    capture_activations(model, texts, hook, out, progress=False, **kw)
""")

def test_capture_killed_with_sigkill_resumes_to_identical_shards(tmp_path):
    from sae_nb.models import resolve_hook, tiny_random_model
    from sae_nb.data import capture_activations, read_manifest
    texts, out = _texts(), tmp_path/"killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(texts), str(out), json.dumps(KW), HOOK], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            man = out/"manifest.json"
            if man.exists() and len(json.loads(man.read_text())["shards"]) >= 3: break
            assert proc.poll() is None, f"the capture ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
            time.sleep(0.05)
        else: pytest.fail("the capture wrote no 3 shards in time")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None: proc.kill()
        proc.wait()
    part = read_manifest(out)
    assert not part["complete"] and 3 <= len(part["shards"]) < 40, part["shards"]
    model = tiny_random_model(seed=0)
    capture_activations(model, texts, resolve_hook(model, hook_name=HOOK), out, progress=False, **KW)          # resume
    ref = capture_activations(model, texts, resolve_hook(model, hook_name=HOOK), tmp_path/"ref", progress=False, **KW)
    names = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    assert len(names) > 10
    for n in names: assert (out/n).read_bytes() == (ref/n).read_bytes(), n

def test_datasets_in_spawned_workers(tmp_path):
    "Spawned workers (the default on macOS and from Python 3.14) pickle the datasets; rows stay exactly-once."
    from sae_nb.config import TrainingConfig
    from sae_nb.models import resolve_hook, tiny_random_model
    from sae_nb.data import WindowedTextDataset, ActivationShardDataset, capture_activations, make_dataloader, set_epoch
    model, texts = tiny_random_model(seed=0), _texts()[:6]
    ds = WindowedTextDataset(texts, model.tokenizer, max_length=32, progress=False)
    cfg = TrainingConfig(batch_size=8, num_dataloader_workers=2, persistent_workers=True)
    def run(loader, n=2):
        out = []
        for e in range(n):
            set_epoch(loader, e); out.append([b.tokens.tolist() for b in loader])
        return out
    ref = run(make_dataloader(ds, TrainingConfig(batch_size=8)))
    dl = make_dataloader(ds, cfg); dl.multiprocessing_context = "spawn"
    assert run(dl) == ref and ref[0] != ref[1]
    shards = capture_activations(model, texts, resolve_hook(model, hook_name=HOOK), tmp_path/"acts", progress=False, **KW)
    sds = ActivationShardDataset(shards, batch_size=32, buffer_rows=300)
    dl = make_dataloader(sds, cfg); dl.multiprocessing_context = "spawn"
    full = torch.cat(list(ActivationShardDataset(shards, shuffle=False, batch_size=32)))
    for e in range(2):
        set_epoch(dl, e)
        rows = torch.cat(list(dl))
        assert rows.shape == full.shape
        assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, full.tolist()))   # the same rows, each once
