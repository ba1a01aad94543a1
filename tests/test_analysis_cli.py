"`sae-analyze` end to end: `--quick` and `--full` as separate processes on a tiny model saved with save_pretrained, and bad inputs."
import contextlib, io, json, os, subprocess, sys, warnings
from pathlib import Path

import pytest
import torch

CLI = "import sys; from sae_nb.cli import analyze_main; sys.exit(analyze_main(sys.argv[1:]))"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def sae_analyze(*args, timeout=600):
    "Run `sae-analyze` (analyze_main) in a fresh process."
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    "A tiny random Qwen3 saved with save_pretrained, a TopK SAE on its layer-1 residual stream (with a history), a 32-wide SAE that does not fit, and texts."
    from transformers import Qwen3ForCausalLM
    from sae_nb.config import SAEConfig
    from sae_nb.models import embedded_tokenizer, qwen3_config, embedded_corpus
    from sae_nb.sae import make_sae
    d = tmp_path_factory.mktemp("analysis_cli")
    tok = embedded_tokenizer()
    torch.manual_seed(0)
    Qwen3ForCausalLM(qwen3_config(len(tok), n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, n_ctx=256)).save_pretrained(d/"model")
    tok.save_pretrained(d/"model")
    kw = dict(architecture="topk", top_k=4, hook_layer=1, model_name=str(d/"model"), device="cpu")
    make_sae(SAEConfig(d_in=64, d_sae=128, **kw)).save(d/"sae", history={"loss": [1.0, 0.5, 0.3], "val_loss": [0.9, 0.6, 0.4]})
    make_sae(SAEConfig(d_in=32, d_sae=64, **kw)).save(d/"sae32")
    (d/"texts.json").write_text(json.dumps(embedded_corpus("val")[:12]))
    return d


def test_quick(setup):
    r = sae_analyze("--quick", "--sae-path", setup/"sae", "--data-path", setup/"texts.json", "--max-texts", 6, "--output", setup/"quick.json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "loss recovered" in r.stdout and "blocks.1.hook_resid_post" in r.stdout
    res = json.loads((setup/"quick.json").read_text())
    assert res["mode"] == "quick" and res["hook_spec"] == "blocks.1.hook_resid_post" and res["n_texts"] == 6
    assert res["sparsity"]["l0_mean"] == pytest.approx(4.0)                       # TopK: exactly k per token
    assert 0 <= res["dead_features"]["dead_percentage"] <= 100
    assert set(res["ablation"]) >= {"ce_clean", "ce_sae", "ce_zero", "loss_recovered", "kl_sae"}


def test_full(setup):
    from sae_nb.dashboard import generate_dashboard, load_feature_data
    out = setup/"analysis"
    r = sae_analyze("--full", "--sae-path", setup/"sae", "--data-path", setup/"texts.json", "--analysis-dir", out, "--tag", "e2e",
                    "--max-length", 64, "--batch-size", 4, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"report: {out/'README.md'}" in r.stdout and f"dashboard: {out/'dashboard.html'}" in r.stdout
    for p in ["README.md", "dashboard.html", "activation_database/manifest.json", "matrices/feature_similarity_e2e.npy",
              "matrices/feature_cooccurrence_e2e.npy", "results/analysis_results_e2e.json", "results/feature_summaries_e2e.jsonl",
              "results/feature_summaries_e2e_meta.json", "results/run_summary_e2e.json", "plots/training_history.png",
              "plots/l0_histogram.png", "plots/feature_density.png", "plots/ablation.png"]:
        assert (out/p).exists(), p
    res = json.loads((out/"results/analysis_results_e2e.json").read_text())
    assert res["n_texts"] == 12 and res["sparsity"]["l0_mean"] == pytest.approx(4.0)
    data = load_feature_data(out)                                                  # what the dashboard reads, validated
    assert data["meta"]["d_sae"] == 128 and len(data["features"]) == 128
    alive = [f for f in data["features"] if f["count"]]
    assert alive and all(f["examples"] and f["top_tokens"] and f["logit_lens"]["promoted"] and f["neighbors"]["decoder"] for f in alive)
    assert generate_dashboard(out, setup/"dash.html").stat().st_size > 10_000
    assert "| activation database |" in (out/"README.md").read_text()


def run_in_process(*args):
    "analyze_main in this process: (exit code, stdout, stderr)."
    from sae_nb.cli import analyze_main
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = analyze_main([str(a) for a in args])
    return rc, o.getvalue(), e.getvalue()


@pytest.mark.parametrize("args,msg", [
    (["--sae-path", "{d}/missing"], "no SAE at"),
    (["--sae-path", "{d}/sae32"], "the SAE was trained at blocks.1.hook_resid_post (d_in=32"),
    (["--sae-path", "{d}/sae", "--hook-name", "hook_nope"], "unknown hook_name 'hook_nope'"),
    (["--sae-path", "{d}/sae", "--layer", "0"], "is given blocks.0.hook_resid_post (d_in=64)"),
    (["--sae-path", "{d}/sae", "--model-name", "{d}/no-model"], "no model directory at"),
    (["--sae-path", "{d}/sae", "--data-path", "{d}/none.json"], "none.json does not exist"),
    (["--sae-path", "{d}/sae", "--batch-size", "0"], "must be >= 1"),
    (["--quick", "--full", "--sae-path", "{d}/sae"], "not allowed with argument"),
    (["--max-texts", "2"], "the following arguments are required: --sae-path"),
])
def test_bad_input(setup, args, msg):
    rc, out, err = run_in_process(*[a.format(d=setup) for a in args], "--quiet")
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err                                # one line, no traceback
    assert msg in err, err


def test_bad_input_process(setup):
    "As a process: exit status 2, one line on stderr, nothing half-written."
    r = sae_analyze("--full", "--sae-path", setup/"sae32", "--analysis-dir", setup/"never", "--quiet")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "(d_in=32" in r.stderr, r.stderr
    assert not (setup/"never").exists()
