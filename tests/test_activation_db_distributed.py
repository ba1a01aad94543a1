"""Distributed activation collection: two `torchrun` ranks (gloo, CPU, loopback) shard the corpus and rank 0 merges
their parts; the merged database must equal the single-process one exactly. Run as a script by torchrun (see `_main`)."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve()


def _texts(bad_rank1: bool = False) -> list:
    from sae_nb.models import embedded_corpus
    texts = embedded_corpus("val")[:9] + ["", "x"]            # 11 texts: not divisible by 2 ranks, one empty
    if bad_rank1: texts[1] = None                            # text 1 belongs to rank 1 (texts r::world)
    return texts


def _collect(sae_dir: Path, out: Path, bad_rank1: bool = False):
    from sae_nb.activation_db import collect_all_activations
    from sae_nb.models import tiny_random_model
    from sae_nb.sae import load_sae
    # one window per forward pass and one thread: both runs then do identical arithmetic, so equality is exact
    # (CPU matmuls may round differently with another batch shape or thread count)
    torch.set_num_threads(1)
    return collect_all_activations(tiny_random_model(), load_sae(sae_dir), _texts(bad_rank1), batch_size=1, max_length=32,
                                   top_n=6, save_path=out, progress=False)


def _main():
    "Entry point of each torchrun rank: `python -m torch.distributed.run ... this_file SAE_DIR OUT [bad]`."
    sae_dir, out, bad = Path(sys.argv[1]), Path(sys.argv[2]), len(sys.argv) > 3
    torch.distributed.init_process_group("gloo")
    try:
        db = _collect(sae_dir, out, bad)
        if torch.distributed.get_rank() == 0:
            print(json.dumps({"n_tokens": db.n_tokens, "world_size": db.manifest["world_size"]}))
    finally:
        torch.distributed.destroy_process_group()


def _torchrun(*args, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(HERE), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    from sae_nb.config import SAEConfig
    from sae_nb.sae import TopKSAE
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=64, d_sae=128, top_k=8, architecture="topk", hook_layer=0, device="cpu"))
    d = tmp_path_factory.mktemp("sae")/"sae"
    sae.save(d)
    return d


def test_two_ranks_equal_one_process(sae_dir, tmp_path):
    from sae_nb.activation_db import _ARRAYS, ActivationDatabase
    r = _torchrun(sae_dir, tmp_path/"merged")
    assert r.returncode == 0, r.stderr[-4000:]
    merged = ActivationDatabase.load(tmp_path/"merged")
    threads = torch.get_num_threads()
    try: single = _collect(sae_dir, tmp_path/"single")
    finally: torch.set_num_threads(threads)
    assert merged.manifest["world_size"] == 2 and single.manifest["world_size"] == 1
    assert merged.n_tokens == single.n_tokens > 0 and merged.n_texts == 11
    for k in _ARRAYS:
        a, b = np.asarray(getattr(merged, k)), np.asarray(getattr(single, k))
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{k} differs between the 2-rank and the 1-process database"
    for k in ("hook_spec", "model_name", "activation_threshold", "top_n", "nnz", "sae_config"):
        assert merged.manifest[k] == single.manifest[k], k
    assert merged.get_token_context(3) == single.get_token_context(3)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "the ranks' parts were not removed"


def test_failure_on_one_rank_fails_all_without_hanging(sae_dir, tmp_path):
    r = _torchrun(sae_dir, tmp_path/"db", "bad", timeout=600)
    assert r.returncode != 0
    assert "collection failed on rank(s) [1]" in r.stderr and "texts[1] is a NoneType" in r.stderr, r.stderr[-4000:]
    assert not (tmp_path/"db").exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())


if __name__ == "__main__":
    _main()
