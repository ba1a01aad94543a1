"""CPU throughput of the three activation-pipeline paths: on-the-fly training, shard capture, DB collection.

    HF_HUB_OFFLINE=1 python bench/pipeline_cpu.py OUT.json
    PYTHONPATH=/path/to/older/checkout python bench/pipeline_cpu.py OLD.json    # the same on another version

Tokens per CPU second (process_time, 1 torch thread, min of 3 runs after a warm-up) on the embedded tiny-qwen3 at its
middle layer, 400 texts of the embedded corpus: `train_sae` over 20 batches of 16 x 128-token crops (BatchTopK, 768
latents, e2e off), `capture_activations` and `collect_all_activations` (batch 8, 128-token windows). CPU seconds are
steadier than wall time on a shared machine. It runs on versions before the `Hook` value too (hook strings)."""
import json, sys, tempfile, time, os, warnings
os.environ.setdefault("HF_HUB_OFFLINE", "1"); warnings.filterwarnings("ignore")
import torch; torch.set_num_threads(1)
from sae_nb.config import SAEConfig, TrainingConfig
from sae_nb.models import load_model, embedded_corpus, resolve_hook
from sae_nb.sae import make_sae
from sae_nb.data import WindowedTextDataset, make_dataloader, capture_activations
from sae_nb.training import train_sae
from sae_nb.activation_db import collect_all_activations
R = 3
model = load_model("sae-nb/tiny-qwen3", device="cpu")
hook = resolve_hook(model)
try: d_in = hook.d_in
except AttributeError:
    from sae_nb.models import hook_d_in; d_in = hook_d_in(model, hook)
layer, name = (hook.layer, hook.name) if hasattr(hook, "layer") else (int(hook.split(".")[1]), hook.split(".", 2)[2])
texts = embedded_corpus("train")[:400]
cfg = TrainingConfig(batch_size=16, num_epochs=1, max_steps=20, use_end_to_end=False, log_freq=10**9, seed=0)
ds = WindowedTextDataset(texts, model.tokenizer, 128, seed=0, progress=False)
batches = []
for b in make_dataloader(ds, cfg):
    batches.append(b)
    if len(batches) == 20: break
ntr = sum(int(b[1].sum()) for b in batches)
def sae_():
    torch.manual_seed(0)
    return make_sae(SAEConfig(d_in=d_in, expansion_factor=4, architecture="batch_topk", top_k=32, hook_layer=layer,
                              hook_name=name, device="cpu"))
def best(fn):
    fn(); ts = []
    for _ in range(R):
        t0 = time.process_time(); fn(); ts.append(time.process_time() - t0)
    return min(ts)
def train(): train_sae(sae_(), model, batches, cfg, save_best=False, progress=False)
def capture():
    with tempfile.TemporaryDirectory() as d:
        capture_activations(model, texts, hook, d + "/s", batch_size=8, max_length=128, progress=False)
def collect():
    s = sae_().eval()
    with tempfile.TemporaryDirectory() as d:
        collect_all_activations(model, s, texts, hook, 8, save_path=d + "/db", max_length=128, progress=False)
ncorp = int(sum(len(x) for x in model.tokenizer(texts, add_special_tokens=False)["input_ids"]))
res = {"train_tokens": ntr, "corpus_tokens": ncorp}
for k, fn, n in (("train", train, ntr), ("capture", capture, ncorp), ("collect", collect, ncorp)):
    s = best(fn); res[k] = {"cpu_s": round(s, 3), "tok_per_cpu_s": round(n / s, 1)}
    print(k, res[k], flush=True)
json.dump(res, open(sys.argv[1], "w"), indent=1)
