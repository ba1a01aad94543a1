"""Every text source (issue 20 §2) on data written locally, through the API (`sources.TextSource`) and through the
command line (`sae-capture`, in-process), and bad sources: one clear line, exit code 2."""
import json, shutil, warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from sae_nb.cli import analyze_main, capture_main, train_main
from sae_nb.data import load_processed_data, process_textbooks, read_manifest, sample_raw_dir, texts_fingerprint
from sae_nb.models import embedded_corpus, embedded_tokenizer, qwen3_config
from sae_nb.sources import TextSource

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
CHATS = [[{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
         for i in range(3)]
RECORDS = [{"id": i, "body": f"record number {i} " * 3} for i in range(6)]

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A tiny random Qwen3 saved twice: `plain` (the embedded tokenizer, no chat template) and `chat` (with one)."
    from transformers import Qwen3ForCausalLM
    d, tok = tmp_path_factory.mktemp("tiny"), embedded_tokenizer()
    torch.manual_seed(0)
    hf = Qwen3ForCausalLM(qwen3_config(vocab_size=len(tok), n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, d_mlp=64))
    hf.save_pretrained(d/"plain"); tok.save_pretrained(d/"plain")
    shutil.copytree(d/"plain", d/"chat")
    cfg = json.loads((d/"chat"/"tokenizer_config.json").read_text())
    (d/"chat"/"tokenizer_config.json").write_text(json.dumps({**cfg, "chat_template": TEMPLATE}))
    return d

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "One local copy of every kind of source."
    d = tmp_path_factory.mktemp("data")
    process_textbooks(sample_raw_dir(), d/"book.json", progress=False)
    (d/"list.json").write_text(json.dumps(["first text", "", "second text"])); (d/"records.csv").write_text("a,b")
    (d/"records.json").write_text(json.dumps(RECORDS))
    rec = datasets.Dataset.from_list(RECORDS)
    rec.to_json(str(d/"records.jsonl")); rec.to_parquet(str(d/"records.parquet"))
    (d/"pq").mkdir()
    for name, rows in [("a", range(3)), ("b", range(3, 6))]: rec.select(rows).to_parquet(str(d/"pq"/f"{name}.parquet"))
    (d/"one.txt").write_text("para one\nstill one\n\n\npara two\n  \npara three\n")
    (d/"txt").mkdir(); (d/"txt"/"b.txt").write_text("file b")
    (d/"txt"/"a.txt").write_text("file a\n\nsecond para of a")
    datasets.DatasetDict(train=rec, test=rec.select(range(2))).save_to_disk(str(d/"saved"))
    datasets.Dataset.from_dict({"messages": CHATS}).save_to_disk(str(d/"chat"))
    datasets.Dataset.from_dict({"input_ids": [[5, 6, 7, 8], [9, 10, 11]]}).save_to_disk(str(d/"tokens"))
    datasets.Dataset.from_dict({"input_ids": [[5, 6], [4096 * 4]]}).save_to_disk(str(d/"big_ids"))
    empty = datasets.Dataset.from_dict({"text": []}, features=datasets.Features(text=datasets.Value("string")))
    empty.save_to_disk(str(d/"empty"))
    return d

bodies = lambda idx: [RECORDS[i]["body"] for i in idx]
# (id, TextSource keyword arguments with `{d}` = the data folder, the expected documents; None = the textbook's first 3)
SOURCES = [
    ("textbook-json", dict(path="{d}/book.json", max_texts=3), None),
    ("json-list", dict(path="{d}/list.json"), ["first text", "second text"]),
    ("json-records", dict(path="{d}/records.json", text_column="body", max_texts=4), bodies(range(4))),
    ("jsonl", dict(path="{d}/records.jsonl", text_column="body"), bodies(range(6))),
    ("parquet", dict(path="{d}/records.parquet", text_column="body"), bodies(range(6))),
    ("parquet-folder-streaming", dict(path="{d}/pq", text_column="body", streaming=True, max_texts=4),
     bodies(range(4))),
    ("txt-file", dict(path="{d}/one.txt"), ["para one\nstill one\n\n\npara two\n  \npara three\n"]),
    ("txt-paragraphs", dict(path="{d}/one.txt", txt_split="paragraph"),
     ["para one\nstill one", "para two", "para three"]),
    ("txt-folder", dict(path="{d}/txt"), ["file a\n\nsecond para of a", "file b"]),
    ("save-to-disk-split", dict(path="{d}/saved", split="test", text_column="body"), bodies(range(2))),
    ("embedded", dict(max_texts=3), embedded_corpus("all")[:3]),
    ("hub-call-on-a-local-folder",                              # the hub path, load_dataset(name, ...), offline
     dict(dataset="{d}/pq", split="train", text_column="body", streaming=True, max_texts=5), bodies(range(5))),
]
FLAGS = dict(path="--data-path", dataset="--dataset", dataset_config="--dataset-config", split="--split",
             text_column="--text-column", txt_split="--txt-split", max_texts="--max-texts")

def _kw(kw, d): return {k: v.format(d=d) if isinstance(v, str) else v for k, v in kw.items()}
def _flags(kw, d):
    "The command-line flags that name the same source as the keyword arguments `kw`."
    return [a for k, v in _kw(kw, d).items() for a in (["--streaming"] if v is True else [FLAGS[k], str(v)])]
def _expected(exp, d): return load_processed_data(d/"book.json")[:3] if exp is None else exp

@pytest.mark.parametrize("kw,expected", [s[1:] for s in SOURCES], ids=[s[0] for s in SOURCES])
def test_source_api(data, kw, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # list.json's empty text is dropped with a warning
        assert TextSource(**_kw(kw, data)).texts() == _expected(expected, data)

def capture(tiny, out, *args, model="plain"):
    return capture_main(["--model-name", str(tiny/model), "--device", "cpu", "--quiet", "--output-dir", str(out),
                         "--max-text-length", "16", "--batch-size", "4", "--tokens-per-shard", "64", *map(str, args)])

@pytest.mark.parametrize("kw,expected", [s[1:] for s in SOURCES], ids=[s[0] for s in SOURCES])
def test_source_cli(tiny, data, tmp_path, capsys, kw, expected):
    "`sae-capture` reads exactly the documents the API does (the manifest fingerprints the corpus)."
    expected = _expected(expected, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert capture(tiny, tmp_path/"out", *_flags(kw, data)) == 0, capsys.readouterr().err
    st = read_manifest(tmp_path/"out")["settings"]
    assert (st["n_texts"], st["texts_fingerprint"]) == (len(expected), texts_fingerprint(expected))

def test_chat_records(tiny, data, tmp_path, capsys):
    "Chat records go through the tokenizer's chat template, API and CLI alike."
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny/"chat")
    want = [f"<|user|>question {i}\n<|assistant|>answer {i}\n" for i in range(3)]
    assert TextSource(data/"chat", text_column="messages", chat_template=True).texts(tok) == want
    args = ["--data-path", data/"chat", "--text-column", "messages", "--chat-template"]
    assert capture(tiny, tmp_path/"out", *args, model="chat") == 0, capsys.readouterr().err
    assert read_manifest(tmp_path/"out")["settings"]["texts_fingerprint"] == texts_fingerprint(want)

def test_pretokenized(data):
    "A pre-tokenized dataset yields its token ids as int32 arrays (no tokenizer), checked against the vocabulary."
    ids = TextSource(data/"tokens").documents(d_vocab=12)
    assert [a.tolist() for a in ids] == [[5, 6, 7, 8], [9, 10, 11]] and all(a.dtype == np.int32 for a in ids)
    with pytest.raises(ValueError, match="holds token id 11, outside the model's vocabulary 0..10"):
        TextSource(data/"tokens").documents(d_vocab=11)
    assert [a.tolist() for a in TextSource(data/"tokens", streaming=True, max_texts=1).documents()] == [[5, 6, 7, 8]]

def test_pretokenized_cli(tiny, data, tmp_path, capsys):
    "`sae-capture` of a pre-tokenized dataset skips the tokenizer: its shards equal those of the same text's."
    from safetensors.torch import load_file
    from transformers import AutoTokenizer
    ids = AutoTokenizer.from_pretrained(tiny/"plain")(bodies(range(6)), add_special_tokens=False)["input_ids"]
    datasets.Dataset.from_dict({"input_ids": ids}).save_to_disk(str(tmp_path/"ids"))
    assert capture(tiny, tmp_path/"a", "--data-path", tmp_path/"ids") == 0, capsys.readouterr().err
    assert capture(tiny, tmp_path/"b", "--data-path", data/"records.jsonl", "--text-column", "body") == 0
    shards = lambda d: [load_file(f) for f in sorted(d.glob("*.safetensors"))]
    a, b = shards(tmp_path/"a"), shards(tmp_path/"b")
    assert len(a) == len(b) > 0 and all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    fp = read_manifest(tmp_path/"a")["settings"]["texts_fingerprint"]
    assert fp == texts_fingerprint([np.asarray(i, np.int32) for i in ids]) != texts_fingerprint(bodies(range(6)))

BAD = [  # (id, flags, what the one line says)
    ("missing-column", ["--data-path", "{d}/records.jsonl"], "has no column 'text' (columns: ['id', 'body'])"),
    ("empty-dataset", ["--data-path", "{d}/empty"], "holds no documents"),
    ("wrong-vocabulary", ["--data-path", "{d}/big_ids"], "holds token id 16384, outside the model's vocabulary"),
    ("offline-hub", ["--dataset", "allenai/c4", "--dataset-config", "en", "--split", "train", "--streaming",
                     "--max-texts", "5"], "dataset 'allenai/c4' cannot be loaded"),
    ("no-chat-template", ["--data-path", "{d}/chat", "--text-column", "messages", "--chat-template"],
     "has no chat template"),
    ("chat-without-flag", ["--data-path", "{d}/chat", "--text-column", "messages"], "pass --chat-template"),
    ("missing-split", ["--data-path", "{d}/saved", "--split", "validation"],
     "has no split 'validation' (splits: ['train', 'test'])"),
    ("path-and-dataset", ["--data-path", "{d}/list.json", "--dataset", "x/y"], "not both"),
    ("unknown-file-type", ["--data-path", "{d}/records.csv"], "unknown file type '.csv'"),
    ("missing-path", ["--data-path", "{d}/nope.parquet"], "nope.parquet does not exist"),
]

@pytest.mark.parametrize("args,msg", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_source_one_line(tiny, data, tmp_path, capsys, args, msg):
    assert capture(tiny, tmp_path/"out", *[a.format(d=data) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err

def test_train_reads_sources(tiny, data, tmp_path, capsys):
    """`sae-train` and `sae-analyze` take the same flags: a JSONL column and a pre-tokenized dataset train, a parquet
    column is analysed; an offline hub name is one line, exit 2."""
    args = [*map(str, ["--model-name", tiny/"plain", "--device", "cpu", "--quiet", "--output-dir", tmp_path]),
            "--num-epochs", "1", "--batch-size", "4", "--max-text-length", "16", "--topk", "4", "--sae-expansion", "2",
            "--no-use-end-to-end", "--run-name", "src", "--val-fraction", "0"]
    rc = train_main([*args, "--data-path", str(data/"records.jsonl"), "--text-column", "body"])
    assert rc == 0, capsys.readouterr().err
    assert "6 texts from" in capsys.readouterr().out
    assert (tmp_path/"pretrained_models"/"src"/"weights.safetensors").exists()
    assert train_main([*args, "--data-path", str(data/"tokens"), "--run-name", "ids"]) == 0, capsys.readouterr().err
    assert (tmp_path/"pretrained_models"/"ids"/"weights.safetensors").exists()           # pre-tokenized trains too
    assert train_main([*args, "--dataset", "no-org/no-dataset"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset 'no-org/no-dataset' cannot be loaded" in err[0] and "--data-path" in err[0], err
    q = ["--quick", "--sae-path", str(tmp_path/"pretrained_models"/"src"), "--device", "cpu", "--quiet",
         "--max-length", "16",
         "--data-path", str(data/"records.parquet"), "--text-column", "body", "--max-texts", "4",
         "--output", str(tmp_path/"q.json")]
    assert analyze_main(q) == 0, capsys.readouterr().err
    res = json.loads((tmp_path/"q.json").read_text())
    assert (res["n_texts"], res["data_source"]) == (4, str(data/"records.parquet")), res
