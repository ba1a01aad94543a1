"Multi-process LoRA capture: two CPU processes (torchrun with gloo over loopback, and spawned) give the single-process file."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("peft"); h5py = pytest.importorskip("h5py")
from sae_nb.lora import (ACTIVATIONS_FILE, activation_dir_name, capture_lora, capture_lora_activations, load_lora_model,
                         read_lora_info, save_tiny_lora, tiny_lora_model)

TEXTS = ["The assert statement is a convenient way to insert debugging assertions into a program.",
         "Return the sum of a and b.",
         "Raise ValueError when an argument has the right type but an inappropriate value.",
         "Lists are mutable sequences, typically used to store collections of homogeneous items.",
         "A dictionary maps hashable keys to arbitrary objects.",
         "with statements wrap the execution of a block with methods defined by a context manager.",
         "Generators are written like regular functions but use the yield statement."]   # 7 texts: the two ranks get 4 and 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    "A tiny rank-2 LoRA on disk, its texts, and the single-process capture of them."
    d = tmp_path_factory.mktemp("lora_dist")
    model = tiny_lora_model(r=2, seed=3)
    base, adapter = save_tiny_lora(model, d/"tiny")
    (d/"texts.json").write_text(json.dumps(TEXTS))
    ref = capture_lora_activations(load_lora_model(adapter, base, device="cpu"), TEXTS, d/"single.h5", "all", max_length=24, batch_size=1,
                                   progress=False, metadata=dict(model_name=str(base), adapter_path=str(adapter), data_path=str(d/"texts.json")))
    return d, base, adapter, ref


def assert_same(p, q):
    "Same rows, ids, offsets and attributes; activations equal to float32 rounding (thread counts differ between processes)."
    with h5py.File(p) as f, h5py.File(q) as g:
        assert sorted(f.keys()) == sorted(g.keys())
        for k in f.keys():
            if k == "activations": np.testing.assert_allclose(f[k][:], g[k][:], rtol=0, atol=1e-5)
            else: assert np.array_equal(f[k][:], g[k][:]), k
        fa, ga = (dict(h.attrs) for h in (f, g))
        assert fa.keys() == ga.keys()
        for k in fa: assert np.array_equal(fa[k], ga[k]), (k, fa[k], ga[k])


def test_torchrun_two_processes(setup, tmp_path):
    d, base, adapter, ref = setup
    script = tmp_path/"capture.py"
    script.write_text("from sae_nb.cli import lora_capture_main\nraise SystemExit(lora_capture_main())\n")
    out = tmp_path/"out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           "--adapter-path", str(adapter), "--model-path", str(base), "--all-adapters", "--data-path", str(d/"texts.json"),
           "--num-examples", "7", "--max-length", "24", "--batch-size", "1", "--chunk-size", "5", "--output-dir", str(out), "--device", "cpu", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    merged = out/activation_dir_name("all")/ACTIVATIONS_FILE
    assert r.stdout.count("wrote ") == 1 and str(merged) in r.stdout      # rank 0 reports, once
    assert_same(merged, ref)
    assert sorted(p.name for p in merged.parent.iterdir()) == [ACTIVATIONS_FILE]   # the part files are gone
    assert read_lora_info(merged).n_tokens == read_lora_info(ref).n_tokens


def test_torchrun_bad_input_exits_2(setup, tmp_path):
    d, base, adapter, ref = setup
    script = tmp_path/"capture.py"
    script.write_text("from sae_nb.cli import lora_capture_main\nraise SystemExit(lora_capture_main())\n")
    r = subprocess.run([sys.executable, str(script), "--adapter-path", str(tmp_path), "--quiet"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "no PEFT adapter at" in r.stderr and "Traceback" not in r.stderr


def test_spawned_processes(setup, tmp_path):
    d, base, adapter, ref = setup
    p = capture_lora(adapter, TEXTS, tmp_path, "all", model_name=base, max_length=24, batch_size=1, num_procs=2, device="cpu", progress=False,
                     metadata=dict(data_path=str(d/"texts.json")))
    assert_same(p, ref)
    assert sorted(x.name for x in p.parent.iterdir()) == [ACTIVATIONS_FILE]


def test_torchrun_training_two_ranks(setup, tmp_path):
    "sae-lora train under torchrun: ranks get equal shares of an odd number of rows (no hang), rank 0 writes the export once."
    d, base, adapter, ref = setup
    script = tmp_path/"lora.py"
    script.write_text("from sae_nb.cli import lora_main\nraise SystemExit(lora_main())\n")
    n = read_lora_info(ref).n_tokens
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), "train",
           "--activations", str(ref), "--all-adapters", "--output-dir", str(tmp_path/"out"), "--expansion-factor", "2", "--k", "4",
           "--batch-size", "7", "--num-epochs", "2", "--device", "cpu", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path/"out"/"trained_sae_adapters_g-u-d-q-k-v-o"
    assert r.stdout.count("wrote ") == 1 and str(out) in r.stdout
    from sae_nb.sae import load_sae
    sae, hist = load_sae(out, load_history=True)
    assert sae.cfg.d_in == 2*7*2 and len(hist["loss"]) == 2
    steps = -(-(n // 2) // 7)                                       # each rank: n//2 rows in batches of 7
    assert hist["step"][-1] == 2 * steps, (hist["step"], n)
    assert json.loads((out/"lora.json").read_text())["n_tokens"] == n
