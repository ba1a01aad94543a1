"""The console scripts as a user runs them: the main job on the embedded default (reduced), bad-input sweeps
(exit code 2 and ONE stderr line, never a traceback), and the hub-upload failure path."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}

def run(cmd, *args, env=None, cwd=None, timeout=900):
    return subprocess.run([str(BIN/cmd), *map(str, args)], capture_output=True, text=True, env=env or ENV, cwd=cwd, timeout=timeout)

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    "A tiny random Qwen3 saved as a local HuggingFace directory (what a user's own model looks like)."
    d = tmp_path_factory.mktemp("tiny")
    code = ("import torch; from transformers import Qwen3ForCausalLM; from sae_nb.models import tiny_random_model, qwen3_config\n"
            "torch.manual_seed(0); tok = tiny_random_model().tokenizer\n"
            "hf = Qwen3ForCausalLM(qwen3_config(vocab_size=len(tok), n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128))\n"
            f"hf.save_pretrained({str(d)!r}); tok.save_pretrained({str(d)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV, capture_output=True)
    return d

def test_main_job_on_the_embedded_default(tmp_path):
    "The README's main job, reduced: train -> analysis -> dashboard on sae-nb/tiny-qwen3, offline, paths printed."
    r = run("sae-run", "--run-name", "demo", "--output-dir", tmp_path, "--max-texts", "300", "--num-epochs", "1", "--batch-size", "16",
            "--max-text-length", "128", "--topk", "16", "--sae-expansion", "8", "--analysis-max-tokens", "8000", "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    export, adir = tmp_path/"pretrained_models"/"demo", tmp_path/"analysis"/"demo"
    for p in [export/"weights.safetensors", export/"config.json", export/"history.json", adir/"README.md", adir/"dashboard.html"]:
        assert p.exists(), p
        assert str(p.parent if p.name != "README.md" and p.name != "dashboard.html" else p) in r.stdout, (p, r.stdout)
    cfg = json.loads((export/"config.json").read_text())
    assert cfg["model_name"] == "sae-nb/tiny-qwen3" and cfg["hook_spec"] == "blocks.1.hook_resid_post"
    hist = json.loads((export/"history.json").read_text())
    assert {"loss", "recon_loss", "l1_loss", "sparsity", "aux_loss", "dead_features", "dead_feature_percentage", "logit_kl", "val_loss"} <= set(hist)
    assert "training on the embedded corpus" in r.stdout

BAD = [  # (argv after the model flag, what the one line must say)
    (["--topk", "0"], "needs --topk > 0"),
    (["--no-use-logit-kl"], "needs use_logit_kl=True or use_block_mse=True"),
    (["--data-path", "/no/such/file.json"], "does not exist"),
    (["--hook-layer", "5", "--max-texts", "5"], "out of range"),
    (["--hook-name", "hook_nonsense", "--max-texts", "5"], "hook_nonsense"),
    (["--resume-from", "/no/such/ckpt"], "--resume-from /no/such/ckpt does not exist"),
    (["--upload-to-hf"], "--hf-repo-id"),
]

@pytest.mark.parametrize("argv,msg", BAD, ids=[m for _, m in BAD])
def test_sae_train_bad_input_one_line(tiny_dir, tmp_path, argv, msg):
    r = run("sae-train", "--model-name", tiny_dir, "--device", "cpu", "--quiet", "--output-dir", tmp_path, *argv)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert msg in lines[0], lines[0]

def test_unknown_model_one_line(tmp_path):
    r = run("sae-train", "--model-name", "no-such-org/no-such-model", "--device", "cpu", "--quiet")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no-such-org/no-such-model" in r.stderr, r.stderr
    r = run("sae-train", "--model-name", "Qwen/Qwen3-0.6B", "--device", "cpu", "--quiet")   # offline and not cached
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "sae-nb/tiny-qwen3" in r.stderr, r.stderr

def test_missing_sae_directory_one_line(tmp_path):
    for cmd, args in [("sae-analyze", ["--quick", "--sae-path", tmp_path/"nope"]), ("sae-dashboard", ["--input", tmp_path/"nope"]),
                      ("sae-train-shards", ["--shard-dir", tmp_path/"nope"])]:
        r = run(cmd, *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (cmd, r.stderr)

def test_upload_failure_leaves_export_untouched(tiny_dir, tmp_path):
    "Hub upload without network: a clear one-line error, exit 2, the local export intact."
    args = ["--model-name", tiny_dir, "--device", "cpu", "--quiet", "--output-dir", tmp_path, "--max-texts", "20", "--num-epochs", "1",
            "--batch-size", "8", "--max-text-length", "32", "--topk", "4", "--sae-expansion", "2", "--no-use-end-to-end", "--run-name", "up",
            "--upload-to-hf", "--hf-repo-id", "me/sae-test"]
    env = {**ENV, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_not_a_real_token", "HF_ENDPOINT": "http://127.0.0.1:9"}
    r = run("sae-train", *args, env=env, timeout=600)
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    assert "upload to me/sae-test failed" in r.stderr and "local export is unchanged" in r.stderr, r.stderr
    export = tmp_path/"pretrained_models"/"up"
    assert (export/"weights.safetensors").exists() and (export/"config.json").exists()

def test_every_command_has_help():
    for cmd in ["sae-train", "sae-train-qwen3", "sae-capture", "sae-train-shards", "sae-analyze", "sae-dashboard", "sae-lora-capture", "sae-lora", "sae-run"]:
        r = run(cmd, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, (cmd, r.stderr)

def _free_port() -> int:
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def test_sae_train_under_torchrun_with_wandb_offline(tiny_dir, tmp_path):
    "`torchrun --nproc_per_node 2 sae-train ...` (gloo, CPU, loopback) with W&B offline: one export, one W&B run, from rank 0."
    args = ["--model-name", tiny_dir, "--device", "cpu", "--quiet", "--output-dir", tmp_path/"out", "--max-texts", "40", "--num-epochs", "2",
            "--batch-size", "8", "--max-text-length", "32", "--topk", "4", "--sae-expansion", "2", "--run-name", "ddp",
            "--wandb", "--wandb-mode", "offline", "--wandb-project", "sae-nb-test", "--wandb-tags", "ci", "ddp"]
    env = {**ENV, "WANDB_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                        "--master_port", str(_free_port()), str(BIN/"sae-train"), *map(str, args)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    export = tmp_path/"out"/"pretrained_models"/"ddp"
    assert (export/"weights.safetensors").exists() and (export/"config.json").exists()
    hist = json.loads((export/"history.json").read_text())
    assert len(hist["loss"]) > 0 and max(hist["epoch"]) == 2, {k: v[-3:] for k, v in hist.items()}
    runs = list((tmp_path/"wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs                                        # rank 0 only
    assert any(runs[0].rglob("*.wandb")), list(runs[0].rglob("*"))
    ckpts = list((tmp_path/"out"/"checkpoints"/"ddp").iterdir())
    assert ckpts and not any(p.name.startswith(".") or "tmp" in p.name for p in ckpts), ckpts   # no half-written checkpoint left behind
