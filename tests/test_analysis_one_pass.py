"""`sae-analyze --full` reads the corpus with ONE model pass: the activation database and the evaluation
(reconstruction, ablation) consume the same forward of each batch; only the intervened forwards of the
evaluation (SAE-spliced and zero-ablated) run the model again. Counted by wrapping `model.forward`, which both
`model(...)` and TransformerLens's `run_with_hooks` call."""
import json, math, warnings

import pytest
import torch


@pytest.mark.parametrize("eval_max_tokens", [None, 150])
def test_full_analysis_runs_the_model_once_per_batch(tmp_path, eval_max_tokens):
    from sae_nb import metrics
    from sae_nb.analysis import run_comprehensive_analysis
    from sae_nb.config import SAEConfig
    from sae_nb.models import embedded_corpus, tiny_random_model
    from sae_nb.sae import make_sae
    model = tiny_random_model()
    sae = make_sae(SAEConfig(d_in=64, d_sae=64, architecture="topk", top_k=4, hook_layer=0, device="cpu", prepend_bos=True))
    texts, max_length, batch_size = embedded_corpus("val")[:6], 40, 3
    lens = [len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    n_batches = math.ceil(sum(math.ceil(n / (max_length - 1)) for n in lens) / batch_size)
    calls, writers = [], []
    forward = model.forward
    def counting_forward(tokens, *a, **kw):
        if tokens.shape != (1, 1): calls.append(kw.get("stop_at_layer"))     # not resolve_hook's one-token probe of d_in
        return forward(tokens, *a, **kw)
    model.forward = counting_forward
    real_writer = metrics._writer
    def counting_writer(*a):
        writers.append(1); return real_writer(*a)
    metrics._writer = counting_writer
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run_comprehensive_analysis(model=model, sae=sae, texts=texts, data_source="test", batch_size=batch_size,
                                             max_length=max_length, eval_max_tokens=eval_max_tokens, analysis_dir=tmp_path/"a",
                                             tag="t", dashboard=False, progress=False)
    finally:
        del model.forward; metrics._writer = real_writer
    res = json.loads((out/"results/analysis_results_t.json").read_text())
    assert res["n_tokens"] == sum(lens) and res["eval_tokens"] > 0
    clean = len(calls) - len(writers)
    assert clean == n_batches, f"{clean} un-intervened forwards for {n_batches} batches: the corpus was read more than once"
    n_eval = len(writers) // 2                                      # SAE-spliced + zero-ablated per evaluated batch
    assert len(writers) == 2 * n_eval and 1 <= n_eval <= n_batches
    if eval_max_tokens is None: assert n_eval == n_batches and res["eval_tokens"] == sum(lens)
    else:
        assert n_eval < n_batches and res["eval_tokens"] >= eval_max_tokens
        assert calls[-1] == 1, "once the evaluation is done the pass stops at the hook's layer"
