"Our SAELens export passes SAELens's own checks: load_from_disk, equal encode/decode, fold_W_dec_norm, dead latents."
import os, warnings
import pytest
import torch

sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install 'sae_nb[interop]'); SAELens interop not tested")

from sae_nb.config import SAEConfig
from sae_nb.sae import SAE_CLASSES, from_saelens, make_sae, to_saelens

ARCHS = list(SAE_CLASSES)
SAELENS_ARCH = {"standard": "standard", "topk": "topk", "batch_topk": "jumprelu", "jumprelu": "jumprelu",
                "matryoshka_batch_topk": "jumprelu"}


def trained_like(arch, dtype="float32", d_in=16, d_sae=64, **kw):
    "An SAE with non-trivial biases, decoder norms and thresholds, in eval mode."
    torch.manual_seed(0)
    meta = dict(hook_layer=5, model_name="Qwen/Qwen3-0.6B", prepend_bos=True, context_size=128) | kw
    sae = make_sae(SAEConfig(d_in=d_in, d_sae=d_sae, architecture=arch, top_k=8 if "topk" in arch else None, device="cpu", dtype=dtype, **meta))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1); sae.b_dec.normal_(0, 0.5)
        if "batch_topk" in arch: sae.threshold.fill_(0.15)
        if arch == "jumprelu": sae.log_threshold.uniform_(-3, -1)
    return sae.eval()


def lens(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sae_lens.SAE.load_from_disk(str(path), **kw)


@pytest.mark.parametrize("arch", ARCHS)
def test_load_from_disk_gives_same_outputs(arch, tmp_path):
    ours = trained_like(arch)
    theirs = lens(to_saelens(ours, tmp_path/arch))
    assert theirs.cfg.architecture() == SAELENS_ARCH[arch]
    assert theirs.cfg.metadata.hook_name == "blocks.5.hook_resid_post"
    assert (theirs.cfg.metadata.model_name, theirs.cfg.metadata.model_class_name, theirs.cfg.metadata.prepend_bos) == ("Qwen/Qwen3-0.6B", "HookedTransformer", True)
    x = torch.randn(64, 16) * 3
    with torch.no_grad():
        f_ours, f_theirs = ours.encode(x), theirs.encode(x)
        assert f_ours.ne(0).any()
        torch.testing.assert_close(f_theirs, f_ours, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs.decode(f_ours), ours.decode(f_ours), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs(x), ours(x).x_recon, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_through_saelens(arch, tmp_path):
    "Ours -> SAELens directory -> SAELens save_model -> ours again: same class and outputs."
    ours = trained_like(arch)
    theirs = lens(to_saelens(ours, tmp_path/"a"))
    theirs.save_model(tmp_path/"b")                          # SAELens writes its own directory
    back = from_saelens(tmp_path/"b").eval()
    assert type(back) is type(ours) and back.cfg.top_k == ours.cfg.top_k
    x = torch.randn(64, 16)
    with torch.no_grad():
        torch.testing.assert_close(back.encode(x), ours.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(back(x).x_recon, ours(x).x_recon, atol=1e-5, rtol=1e-5)
    for k in ("W_enc", "b_enc", "W_dec", "b_dec"): assert torch.equal(getattr(back, k), getattr(ours, k))
    if arch == "matryoshka_batch_topk": assert back.cfg.matryoshka_widths == [8, 16, 32, 64]


@pytest.mark.parametrize("arch", ARCHS)
def test_normalised_sae_exports_for_raw_activations(arch, tmp_path):
    "An SAE trained on normalised inputs (mean-centred or E|x| = sqrt(d_in)): SAELens runs its export on raw ones."
    for i, norm in enumerate(("expected_average_only_in", "mean_center")):
        ours = trained_like(arch, normalize_activations=norm).train()
        x = torch.randn(64, 16) * 20 + 5
        ours.training_forward(x); ours.eval()
        theirs = lens(to_saelens(ours, tmp_path/f"{arch}{i}"))
        assert ours.cfg.normalize_activations == norm and theirs.cfg.normalize_activations == "none"
        with torch.no_grad(): torch.testing.assert_close(theirs(x), ours(x).x_recon, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_is_kept(dtype, tmp_path):
    ours = trained_like("jumprelu", dtype=dtype)
    path = to_saelens(ours, tmp_path/"a")
    from safetensors.torch import load_file
    assert {v.dtype for v in load_file(str(path/"sae_weights.safetensors")).values()} == {getattr(torch, dtype)}
    theirs = lens(path)
    assert theirs.W_enc.dtype == getattr(torch, dtype) and theirs.cfg.dtype == dtype
    assert from_saelens(tmp_path/"a").W_enc.dtype == getattr(torch, dtype)


@pytest.mark.parametrize("arch", ["standard", "batch_topk", "jumprelu"])
def test_fold_W_dec_norm_keeps_reconstructions(arch, tmp_path):
    "Decoder rows of arbitrary norms, some zero (dead latents): SAELens's fold leaves outputs unchanged and finite."
    ours = trained_like(arch)
    with torch.no_grad():
        ours.W_dec.mul_(torch.rand(64, 1) * 3 + 0.1)
        ours.W_dec[:4] = 0
    theirs = lens(to_saelens(ours, tmp_path/arch))
    x = torch.randn(64, 16) * 3
    with torch.no_grad():
        before = theirs(x)
        torch.testing.assert_close(before, ours(x).x_recon, atol=1e-5, rtol=1e-5)
        theirs.fold_W_dec_norm()
        after = theirs(x)
    for t in (theirs.W_enc, theirs.W_dec, theirs.b_enc, after): assert torch.isfinite(t).all()
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    assert lens(to_saelens(ours, tmp_path/"b"), fold_W_dec_norm=True) is not None


def test_topk_fold_is_refused_like_ours(tmp_path):
    "SAELens refuses fold_W_dec_norm on a TopK that selects on raw pre-activations; so does sae_nb."
    theirs = lens(to_saelens(trained_like("topk"), tmp_path/"t"))
    with pytest.raises(NotImplementedError): theirs.fold_W_dec_norm()


def test_zero_norm_rows_export_without_nan(tmp_path):
    ours = trained_like("standard")
    with torch.no_grad(): ours.W_dec[:8] = 0
    ours.normalize_decoder()
    assert torch.isfinite(ours.W_dec).all()
    theirs = lens(to_saelens(ours, tmp_path/"z"), fold_W_dec_norm=True)
    x = torch.randn(32, 16)
    with torch.no_grad(): assert torch.isfinite(theirs(x)).all()


@pytest.fixture(scope="module")
def tiny_models():
    "Our tiny Qwen3-architecture model and a HookedSAETransformer holding the same weights (and tokenizer)."
    from sae_nb.models import tiny_random_model
    model = tiny_random_model(seed=0).eval()
    hooked = sae_lens.HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
    hooked.load_state_dict(model.state_dict())
    return model, hooked.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_hooked_sae_transformer_splice(arch, tiny_models, tmp_path):
    "Our export spliced into HookedSAETransformer: with the error term the logits are the model's; without it, those of our own splice of sae(x)."
    model, hooked = tiny_models
    hook = "blocks.0.hook_resid_post"
    ours = trained_like(arch, d_in=model.cfg.d_model, d_sae=256, hook_layer=0, model_name=model.cfg.model_name, prepend_bos=False)
    with torch.no_grad(): ours.b_dec.normal_(0, 0.05)
    theirs = lens(to_saelens(ours, tmp_path/arch))
    assert (theirs.cfg.metadata.hook_name, theirs.cfg.metadata.model_name) == (hook, model.cfg.model_name)
    tokens = torch.randint(0, model.cfg.d_vocab, (3, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = model(tokens)
        torch.testing.assert_close(hooked(tokens), clean)                         # same weights: same model
        with_error = hooked.run_with_saes(tokens, saes=[theirs], use_error_term=True)
        spliced = hooked.run_with_saes(tokens, saes=[theirs], use_error_term=False)
        own = model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda act, hook: ours(act).x_recon)])
    assert hooked.acts_to_saes == {}                                              # run_with_saes removed it again
    torch.testing.assert_close(with_error, clean, atol=1e-4, rtol=1e-4)          # the error term restores the activations exactly
    assert (spliced - clean).abs().max() > 1e-2                                   # the SAE was really spliced in (it changes the logits)
    torch.testing.assert_close(spliced, own, atol=1e-4, rtol=1e-4)               # SAELens's splice == ours
