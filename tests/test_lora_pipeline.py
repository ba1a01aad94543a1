"Seed 002's four steps end to end through `sae-lora` on a tiny Qwen3 with a rank-4 LoRA: capture → train → collect → dashboard."
import json, os, shutil
from pathlib import Path

import pytest

pytest.importorskip("peft"); pytest.importorskip("h5py")
from sae_nb.dashboard import load_feature_data
from sae_nb.cli import lora_main
from sae_nb.lora import ACTIVATIONS_FILE, detect_input_dim, read_lora_meta, save_tiny_lora, tiny_lora_model
from sae_nb.models import embedded_corpus
from sae_nb.sae import load_sae

CHROMIUM = os.environ.get("SAE_NB_CHROMIUM", "/usr/bin/chromium")


def test_four_steps(tmp_path, capsys):
    base, adapter = save_tiny_lora(tiny_lora_model(r=4, n_layers=2, seed=5), tmp_path/"tiny")
    (tmp_path/"texts.json").write_text(json.dumps(embedded_corpus("train")[:24]))
    out = tmp_path/"run"
    common = ["--adapter-path", str(adapter), "--model-path", str(base), "--data-path", str(tmp_path/"texts.json"), "--num-examples", "24",
              "--max-length", "48", "--batch-size", "6", "--output-dir", str(out), "--device", "cpu", "--quiet"]
    # 1. capture, MLP-only and all seven adapters: directories and widths as in the seed (n_layers × types × rank)
    assert lora_main(["capture", *common, "--adapters", "gate_proj,up_proj,down_proj"]) == 0
    assert lora_main(["capture", *common, "--all-adapters"]) == 0
    assert detect_input_dim(out/"activations"/ACTIVATIONS_FILE, "mlp") == 2*3*4
    assert detect_input_dim(out/"activations_all_adapters"/ACTIVATIONS_FILE, "all") == 2*7*4
    # 2. train on all seven (the input width comes from the file)
    assert lora_main(["train", "--activations", str(out), "--all-adapters", "--output-dir", str(out), "--expansion-factor", "4", "--k", "8",
                      "--batch-size", "128", "--num-epochs", "3", "--val-fraction", "0.1", "--device", "cpu", "--quiet"]) == 0
    sae_dir = out/"trained_sae_adapters_g-u-d-q-k-v-o"
    sae = load_sae(sae_dir)
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.top_k) == (56, 224, 8)
    assert read_lora_meta(sae_dir)["adapters"] == ["gate_proj", "up_proj", "down_proj", "q_proj", "k_proj", "v_proj", "o_proj"]
    # a selection the file does not hold is refused
    assert lora_main(["train", "--activations", str(out/"activations"/ACTIVATIONS_FILE), "--all-adapters", "--device", "cpu", "--quiet"]) == 2
    assert "holds activations of adapters g-u-d (gate_proj, up_proj, down_proj), not the requested g-u-d-q-k-v-o" in capsys.readouterr().err
    # 3. max-activating examples (seed spelling: --model-path NAME.pt finds the NAME/ export)
    assert lora_main(["collect", "--model-path", f"{sae_dir}.pt", "--top-k", "5", "--output-dir", str(out), "--device", "cpu", "--quiet"]) == 0
    fd = out/"sae_features_data_trained_sae_adapters_g-u-d-q-k-v-o.json"
    data = load_feature_data(fd)
    live = [f for f in data["features"] if f["count"] > 0]
    assert len(live) > 20 and all(1 <= len(f["examples"]) <= 5 for f in live)
    ex = live[0]["examples"][0]
    assert len(ex["tokens"]) == len(ex["activations"]) <= 21 and ex["activations"][ex["target"]] == pytest.approx(ex["max_activation"])
    assert data["meta"]["model_name"] == str(base) and data["meta"]["n_tokens"] > 500
    # 4. the dashboard
    assert lora_main(["dashboard", "--input", str(fd)]) == 0
    html = fd.with_name(fd.stem + "_dashboard.html")
    assert html.is_file() and html.read_text().startswith("<!DOCTYPE html>")
    assert "LoRA SAE features · g-u-d-q-k-v-o · base" in html.read_text()
    if Path(CHROMIUM).exists():                                                # the page runs without errors in a browser
        sync_api = pytest.importorskip("playwright.sync_api")
        with sync_api.sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = b.new_page(); errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.as_uri()); page.wait_for_timeout(500)
            text = page.inner_text("body")
            b.close()
        assert not errors, errors
        assert "LoRA SAE features" in text and "Loading" not in text
