"""Throughput of the embedded model's pretraining (`sae_nb.models.train_embedded_model` defaults), extrapolated.

Times `--steps` optimizer steps of the default recipe (same shapes, optimizer and batch) after a short warm-up,
reports tokens/s (wall and per CPU-second) and the projected wall time of the full default run.

    HF_HUB_OFFLINE=1 python bench/embedded_model_bench.py [--steps 30] [--threads 2]

Run it on a quiet machine: on a shared one, wall time mostly measures the neighbours.
"""
import argparse, inspect, json, math, os, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import Qwen3ForCausalLM
from sae_nb.models import embedded_tokenizer, embedded_corpus, qwen3_config, train_embedded_model, _token_stream

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
a = ap.parse_args()
if a.threads: torch.set_num_threads(a.threads)
d = {k: v.default for k, v in inspect.signature(train_embedded_model).parameters.items() if v.default is not inspect.Parameter.empty}
tok = embedded_tokenizer(d["vocab_size"])
t = time.time(); ids = _token_stream(tok, embedded_corpus("train")); t_tok = time.time() - t
torch.manual_seed(0)
m = Qwen3ForCausalLM(qwen3_config(len(tok), d["n_layers"], d["d_model"], d["n_heads"], d["n_kv_heads"], d_mlp=d["d_mlp"], n_ctx=d["seq_len"])).train()
opt = torch.optim.AdamW(m.parameters(), lr=d["lr"], betas=(0.9, 0.95))
g = torch.Generator().manual_seed(0)
def step():
    ix = torch.randint(0, len(ids) - d["seq_len"] - 1, (d["batch_size"],), generator=g)
    x = torch.stack([ids[i:i+d["seq_len"]+1] for i in ix.tolist()])
    loss = torch.nn.functional.cross_entropy(m(input_ids=x[:, :-1]).logits.flatten(0, 1), x[:, 1:].flatten())
    loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
for _ in range(3): step()
t, c = time.time(), time.process_time()
for _ in range(a.steps): step()
wall, cpu = time.time() - t, time.process_time() - c
tokens = a.steps * d["batch_size"] * d["seq_len"]
res = dict(threads=torch.get_num_threads(), load_avg=os.getloadavg()[0], n_params=sum(p.numel() for p in m.parameters()),
           tokens_per_s=round(tokens / wall), tokens_per_cpu_s=round(tokens / cpu), tokenize_s=round(t_tok, 2),
           default_steps=d["steps"], default_tokens=d["steps"] * d["batch_size"] * d["seq_len"],
           projected_train_s=round(d["steps"] * wall / a.steps, 1))
print(json.dumps(res, indent=2))
