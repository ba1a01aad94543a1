"""The dashboard reads examples from a real `sae_nb.activation_db.ActivationDatabase`, and they agree with the
dashboard's own streaming pass over the same texts."""
import numpy as np
import pytest

activation_db = pytest.importorskip("sae_nb.activation_db", reason="sae_nb.activation_db is not in this checkout")
from sae_nb.config import SAEConfig
from sae_nb.dashboard import collect_feature_examples, generate_dashboard, load_feature_data
from sae_nb.files import to_json
from sae_nb.models import embedded_corpus, tiny_random_model
from sae_nb.sae import make_sae


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = tiny_random_model()
    sae = make_sae(SAEConfig(d_in=model.cfg.d_model, d_sae=96, top_k=6, architecture="topk", hook_layer=1, device="cpu", prepend_bos=True))
    texts = embedded_corpus("val")[:12]
    db = activation_db.collect_all_activations(model, sae, texts, batch_size=4, max_length=64,
                                               save_path=tmp_path_factory.mktemp("adb") / "activation_database", progress=False)
    return model, sae, texts, db


def test_database_examples_match_the_streaming_pass(setup):
    model, sae, texts, db = setup
    a = collect_feature_examples(db=db, n_examples=5, context=4, progress=False)
    b = collect_feature_examples(model=model, sae=sae, texts=texts, n_examples=5, context=4, batch_size=4, max_length=64, progress=False)
    same = 0
    for f in range(sae.cfg.d_sae):
        for x, y in zip(a[f], b[f]):
            if (x["text_idx"], x["position"]) != (y["text_idx"], y["position"]): continue   # ties may be ordered differently
            same += 1
            lo = x["target"] - y["target"]   # the stream clips windows at max_length rows, the database at text ends
            assert lo >= 0 and x["tokens"][lo:lo + len(y["tokens"])] == y["tokens"]
            np.testing.assert_allclose(x["activations"][lo:lo + len(y["tokens"])], y["activations"], atol=1e-5)
            assert x["max_activation"] == pytest.approx(y["max_activation"], abs=1e-5)
    assert same >= 0.95 * sum(map(len, b.values())) > 0


def test_analysis_dir_without_examples_gets_them_from_its_database(setup, tmp_path):
    model, sae, texts, db = setup
    adir = db.path.parent                      # <analysis_dir>/activation_database is opened on its own
    res = adir / "results"; res.mkdir()
    recs = [{"index": f, "frequency": float(db.feature_frequency[f]), "count": int(db.feature_count[f]),
             "mean_activation": None, "max_activation": None} for f in range(db.d_sae)]
    (res / "feature_summaries_t.jsonl").write_text("\n".join(map(to_json, recs)))
    to_json({"d_sae": db.d_sae, "model_name": model.cfg.model_name}, res / "feature_summaries_t_meta.json")
    data = load_feature_data(adir, n_examples=3, context=2, progress=False)
    alive = [f for f in data["features"] if f["count"]]
    assert alive and all(1 <= len(f["examples"]) <= 3 for f in alive)
    assert all(not f["examples"] for f in data["features"] if not f["count"])
    page = generate_dashboard(data, tmp_path / "dash.html")
    assert page.stat().st_size > 10_000
