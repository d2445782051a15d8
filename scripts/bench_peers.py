"""seqlab and NCRF++ side by side: same converted data, same architecture, same epochs, equal threads;
or, with --torch, seqlab and a plain PyTorch BiLSTM-CRF written the way a PyTorch user would.

    git clone https://github.com/jiesutd/NCRFpp /path/to/NCRFpp       # the user's own checkout
    pip install torch==2.13.0                                          # NCRF++ runs on it unmodified
    python scripts/bench_peers.py --ncrfpp /path/to/NCRFpp             # CoNLL-2003 from ../shared/data
    python scripts/bench_peers.py --ncrfpp DIR --epochs 3 --threads 2 --rounds 2 --work /tmp/peers
    python scripts/bench_peers.py --torch --epochs 1 --rounds 2   # words-only BiLSTM-CRF, plain PyTorch + pytorch-crf
    python scripts/bench_peers.py --transformer --limit 1000 --epochs 1 --rounds 2   # MiniLM, Hugging Face + PyTorch

NCRF++ is run from the given checkout, never copied here: `python main.py
--config <generated>` in that folder. The corpus is read by seqlab (IOB1 ->
IOB2) and written once as BIOES `token tag` files that both tools train on.
NCRF++ runs its demo architecture (demo.train.config without pretrained
vectors); seqlab runs `+experiment=ncrfpp_demo`, the same architecture and
training. Each round runs NCRF++ then seqlab, one after the other (interleaved
over rounds), each with `--threads` threads (OMP_NUM_THREADS, and
OMP_WAIT_POLICY=PASSIVE for PyTorch; trainer.threads for seqlab) and the same
batch size for training and decoding (NCRF++ decodes in its training batch size).

Printed per tool: wall seconds per training epoch (dev and test scoring
excluded), CPU seconds of the whole run per epoch, training and decoding
sentences per second (decoding: dev, tagging only, scoring excluded, as NCRF++ times it), dev F1 after each epoch, test F1 (NCRF++: after the last
epoch; seqlab: the best epoch's, as it reports), and the peak RSS of the process.

--torch (torch_reference): a words-only BiLSTM-CRF in plain PyTorch 2.13 with pytorch-crf 0.7.2, written
as a PyTorch user would: embedding 100, packed BiLSTM 2 x 100, dropout 0.5, a linear layer and the CRF;
Adam at 0.002 with clipping at 5, length-sorted batches of 32 in shuffled order; the test set decoded in
batches of 256 from token strings to tag strings. seqlab runs the same model (`+encoder=bilstm
words=words_only head=crf head.constrained=false words.dim=100`). Compared: the training epoch without
dev scoring, and decoding the test set (seqlab's `predict_sentences_per_sec`, strings to tags too). Then
where each side's decoding goes: encoding the strings, the encoder up to the emissions, the CRF's Viterbi,
ids to tag strings (PyTorch's timed in its own decoding loop; seqlab's after the race, on the race's model).

--transformer (hf_reference): the MiniLM-L6 of the pretrained extra fine-tuned as a Hugging Face user would:
`AutoModelForTokenClassification` from the same folder, the fast tokenizer with `is_split_into_words`, each
word's first subtoken labelled (-100 elsewhere), AdamW at 5e-5 with linear decay, shuffled batches of
`--batch` (default 16) padded per batch; the test set tagged in batches of `--eval-batch` from token strings to
tag strings (argmax of each word's first subtoken). seqlab runs the same model: `+encoder=transformer
encoder.preset=minilm_l6 head=softmax`, words off (no word embedding, characters or casing), first-subtoken
pooling, AdamW at 5e-5 with linear decay. Same comparisons as --torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print(f'PEER_USAGE {u.ru_maxrss} {u.ru_utime + u.ru_stime}', flush=True); sys.exit(rc)")


def measured(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[str, float, float]:
    """Run `cmd`; its output (also written to `log`), peak RSS in MiB and CPU seconds."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    log.write_text(out)
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise SystemExit(f"error: {' '.join(cmd[:3])} ... failed (exit {proc.returncode}); log {log}:\n{tail}")
    rss_kb, cpu = re.search(r"PEER_USAGE (\d+) ([\d.]+)", out).groups()
    return out, int(rss_kb) / 1024, float(cpu)


def write_bioes(corpus_overrides: list[str], work: Path, limit: int | None = None) -> dict[str, int]:
    """The corpus as BIOES `token tag` files in `work`; sentence counts per split."""
    from seqlab.config import compose
    from seqlab.data import load_corpus
    from seqlab.data.schemes import iob2_to_bioes

    corpus = load_corpus(compose(corpus_overrides).data)
    counts = {}
    for split in ("train", "dev", "test"):
        sentences = getattr(corpus, split)[:limit]
        with open(work / f"{split}.bioes", "w", encoding="utf-8") as f:
            for s in sentences:
                for token, tag in zip(s.tokens, iob2_to_bioes(s.tags)):
                    f.write(f"{token} {tag}\n")
                f.write("\n")
        counts[split] = len(sentences)
    return counts


NCRFPP_CONFIG = """train_dir={work}/train.bioes
dev_dir={work}/dev.bioes
test_dir={work}/test.bioes
model_dir={work}/ncrfpp_model
norm_word_emb=False
norm_char_emb=False
number_normalized=True
seg=True
word_emb_dim=50
char_emb_dim=30
use_crf=True
use_char=True
word_seq_feature=LSTM
char_seq_feature=CNN
status=train
optimizer=SGD
iteration={epochs}
batch_size={batch}
ave_batch_loss=False
cnn_layer=4
char_hidden_dim=50
hidden_dim=200
dropout=0.5
lstm_layer=1
bilstm=True
learning_rate=0.015
lr_decay=0.05
momentum=0
l2=1e-8
"""


def run_ncrfpp(ncrfpp: Path, work: Path, epochs: int, batch: int, env: dict, round_: int) -> dict:
    config = work / "ncrfpp.config"
    config.write_text(NCRFPP_CONFIG.format(work=work, epochs=epochs, batch=batch))
    out, rss, cpu = measured([sys.executable, "main.py", "--config", str(config)], ncrfpp, env,
                             work / f"ncrfpp_round{round_}.log")
    train = [(float(t), float(v)) for t, v in re.findall(r"training finished\. Time: ([\d.]+)s, speed: ([\d.]+)st/s", out)]
    dev = [(float(v), float(f)) for v, f in re.findall(r"Dev: time: [\d.]+s,? speed: ([\d.]+)st/s; acc: [\d.]+, p: [-\d.]+, r: [-\d.]+, f: ([-\d.]+)", out)]
    test = [float(f) for f in re.findall(r"Test: time: [\d.]+s,? speed: [\d.]+st/s; acc: [\d.]+, p: [-\d.]+, r: [-\d.]+, f: ([-\d.]+)", out)]
    if len(train) != epochs or len(dev) != epochs:
        raise SystemExit(f"error: could not read {epochs} epochs from NCRF++'s output ({work}/ncrfpp_round{round_}.log)")
    return {"epoch_seconds": [t for t, _ in train], "train_rate": [v for _, v in train],
            "decode_rate": [v for v, _ in dev], "dev_f1": [f for _, f in dev], "test_f1": test[-1], "rss": rss,
            "cpu_per_epoch": cpu / epochs}


def run_seqlab(work: Path, epochs: int, batch: int, threads: int, env: dict, round_: int, counts: dict) -> dict:
    from seqlab import tracking

    store = work / f"seqlab_round{round_}"
    cmd = [sys.executable, "-m", "experiments.run", "+experiment=ncrfpp_demo", "data=conll", "data.name=peers",
           f"data.train={work}/train.bioes", f"data.dev={work}/dev.bioes", f"data.test={work}/test.bioes",
           "data.scheme=bioes", "data.sep= ", f"trainer.epochs={epochs}", f"trainer.patience={epochs}",
           f"trainer.threads={threads}", f"trainer.eval_batch_size={batch}", f"tracking.uri=sqlite:///{store}/mlflow.db",
           f"tracking.artifact_location={store}/mlruns", "tracking.log_model=false", "tracking.system_metrics=false",
           f"hydra.run.dir={store}/hydra"]
    _, rss, cpu = measured(cmd, REPO, env, work / f"seqlab_round{round_}.log")
    client = tracking.client(f"sqlite:///{store}/mlflow.db")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"])[0]

    def history(key):
        return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]

    # dev_decode_seconds: seqlab's pass over dev, which gives the dev loss too (NCRF++'s decodes only): it
    # counts against seqlab, never for it.
    epoch_s, dev_s, decode_s = history("epoch_seconds"), history("dev_seconds"), history("dev_decode_seconds")
    train_s = [e - d for e, d in zip(epoch_s, dev_s)]
    return {"epoch_seconds": train_s, "train_rate": [counts["train"] / t for t in train_s],
            "decode_rate": [counts["dev"] / d for d in decode_s], "dev_f1": history("val_entity_f1"),
            "test_f1": run.data.metrics["test_entity_f1"], "rss": rss, "cpu_per_epoch": cpu / epochs}


# ---------------------------------------------------------------- a plain PyTorch tagger (--torch)
def read_bioes(path: Path) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) per sentence of a `token tag` file (write_bioes's)."""
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        token, tag = line.split(" ")
        tokens.append(token)
        tags.append(tag)
    return sentences


def torch_reference(work: Path, epochs: int, batch: int, eval_batch: int, threads: int) -> dict:
    """A words-only BiLSTM-CRF as a PyTorch user writes it (pytorch-crf 0.7.2): embedding 100 -> dropout 0.5 ->
    packed BiLSTM 2 x 100 -> dropout 0.5 -> linear -> CRF; Adam (lr 0.002, gradient norm clipped at 5) on
    length-sorted batches of `batch` sentences in shuffled order; the test set decoded in batches of
    `eval_batch`, from token strings to tag strings. Runs in this process (a child of --torch)."""
    import random
    import time

    import torch
    from torch import nn
    from torchcrf import CRF

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    random.seed(1)

    norm = lambda w: re.sub(r"[0-9]", "0", w)  # noqa: E731 - digits to zero, as seqlab's default
    train, test = read_bioes(work / "train.bioes"), read_bioes(work / "test.bioes")
    words = {"<pad>": 0, "<unk>": 1}
    labels: dict[str, int] = {}
    for tokens, tags in train:
        for w in tokens:
            words.setdefault(norm(w), len(words))
        for t in tags:
            labels.setdefault(t, len(labels))
    names = {i: t for t, i in labels.items()}

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(len(words), 100, padding_idx=0)
            self.lstm = nn.LSTM(100, 100, batch_first=True, bidirectional=True)
            self.drop = nn.Dropout(0.5)
            self.out = nn.Linear(200, len(labels))
            self.crf = CRF(len(labels), batch_first=True)

        def emissions(self, ids, lengths):
            x = self.drop(self.embed(ids))
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=ids.shape[1])
            return self.out(self.drop(h))

    def encode(batch_tokens):
        lengths = torch.tensor([len(t) for t in batch_tokens])
        ids = torch.zeros(len(batch_tokens), int(lengths.max()), dtype=torch.long)
        for i, tokens in enumerate(batch_tokens):
            ids[i, : len(tokens)] = torch.tensor([words.get(norm(w), 1) for w in tokens])
        return ids, lengths, ids > 0

    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    order = sorted(range(len(train)), key=lambda i: len(train[i][0]))
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    epoch_seconds = []
    for _ in range(epochs):
        model.train()
        random.shuffle(batches)
        started = time.perf_counter()
        for idx in batches:
            ids, lengths, mask = encode([train[i][0] for i in idx])
            gold = torch.zeros_like(ids)
            for row, i in enumerate(idx):
                gold[row, : lengths[row]] = torch.tensor([labels[t] for t in train[i][1]])
            loss = -model.crf(model.emissions(ids, lengths), gold, mask, reduction="mean")
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - started)
    model.eval()
    started = time.perf_counter()
    predicted = []
    with torch.no_grad():
        for start in range(0, len(test), eval_batch):
            chunk = [tokens for tokens, _ in test[start : start + eval_batch]]
            ids, lengths, mask = encode(chunk)
            predicted += [[names[i] for i in path] for path in model.crf.decode(model.emissions(ids, lengths), mask)]
    decode_seconds = time.perf_counter() - started
    parts = {"encoding strings": [], "encoder (emissions)": [], "CRF Viterbi": [], "ids to tag strings": []}
    with torch.no_grad():  # the same decoding again, each part timed on its own (best of 3 passes)
        for _ in range(3):
            spent = dict.fromkeys(parts, 0.0)
            for start in range(0, len(test), eval_batch):
                t0 = time.perf_counter()
                ids, lengths, mask = encode([tokens for tokens, _ in test[start : start + eval_batch]])
                t1 = time.perf_counter()
                emissions = model.emissions(ids, lengths)
                t2 = time.perf_counter()
                paths = model.crf.decode(emissions, mask)
                t3 = time.perf_counter()
                [[names[i] for i in path] for path in paths]
                t4 = time.perf_counter()
                for part, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    spent[part] += seconds
            for part in parts:
                parts[part].append(spent[part])
    parts["the whole decoding, as timed in the race"] = [sum(p) for p in zip(*parts.values())]
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOBES

    f1 = f1_score([tags for _, tags in test], predicted, mode="strict", scheme=IOBES)
    return {"epoch_seconds": epoch_seconds, "train_rate": [len(train) / t for t in epoch_seconds],
            "decode_rate": [len(test) / decode_seconds], "test_f1": float(f1),
            "decode_parts": {part: min(seconds) for part, seconds in parts.items()}}


def seqlab_decode_profile(work: Path, eval_batch: int, threads: int) -> dict:
    """--torch: where seqlab's decoding of the test set goes, part by part, as `pipeline.evaluate`
    decodes it (`Tagger.tag_ids`, then tag strings), on the race's model untrained (the work does not depend on
    the weights). Seconds per part, best of 3 passes. Runs in this process, once the race is over."""
    import time

    from seqlab.runtime.quiet import import_backend

    import_backend()
    import tensorflow as tf

    from seqlab.config import compose
    from seqlab.jobs.pipeline import prepare
    from seqlab.model.backend import compiled_function
    from seqlab.runtime import threads as cpu_threads

    cpu_threads.apply(threads)
    model = prepare(compose([*SEQLAB_WORDS_ONLY, *seqlab_data(work)])).model
    task = model.task
    test = [tokens for tokens, _ in read_bioes(work / "test.bioes")]
    emissions_of = compiled_function(model, lambda x: model(x, training=False))
    model.tag_ids(test[:1], eval_batch)  # traced before the clock, as pipeline.evaluate does
    batches = list(task.prediction_batches(test, eval_batch))
    first = emissions_of(batches[0][1])  # float [B, T, K]
    viterbi = tf.function(lambda e, m: model.head.decode(e, m), autograph=False, input_signature=[
        tf.TensorSpec((None, None, first.shape[-1]), tf.float32), tf.TensorSpec((None, None), tf.bool)])
    viterbi(first, batches[0][1]["words"] > 0)
    parts = {"encoding strings": [], "encoder (emissions)": [], "CRF Viterbi": [], "ids to tag strings": [],
             "the whole decoding, as timed in the race": []}
    for _ in range(3):
        t0 = time.perf_counter()
        batches = list(task.prediction_batches(test, eval_batch))
        t1 = time.perf_counter()
        emissions = [emissions_of(inputs) for _, inputs in batches]
        t2 = time.perf_counter()
        for (_, inputs), e in zip(batches, emissions):
            viterbi(e, inputs["words"] > 0).numpy()
        t3 = time.perf_counter()
        ids = model.tag_ids(test, eval_batch)
        t4 = time.perf_counter()
        [task.to_output(task.names(row)) for row in ids]
        t5 = time.perf_counter()
        for part, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t5 - t3)):
            parts[part].append(seconds)
    return {part: min(seconds) for part, seconds in parts.items()}


def hf_reference(work: Path, epochs: int, batch: int, eval_batch: int, threads: int) -> dict:
    """The MiniLM token classifier as a Hugging Face user writes it (transformers + PyTorch): first subtokens
    labelled, AdamW 5e-5 with linear decay, shuffled batches padded per batch; the test set tagged in batches
    of `eval_batch` from token strings to tag strings. Runs in this process (a child of --transformer)."""
    import random
    import time

    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from seqlab.config.pretrained import backbone_folder

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    random.seed(1)
    folder = backbone_folder("minilm_l6")
    train, test = read_bioes(work / "train.bioes"), read_bioes(work / "test.bioes")
    labels = sorted({t for _, tags in train for t in tags})
    ids = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(labels))

    def encode(batch_tokens, batch_tags=None):
        enc = tokenizer(batch_tokens, is_split_into_words=True, truncation=True, padding=True, return_tensors="pt")
        if batch_tags is None:
            return enc
        gold = torch.full(enc["input_ids"].shape, -100)
        for row, tags in enumerate(batch_tags):
            previous = None
            for position, word in enumerate(enc.word_ids(row)):
                if word is not None and word != previous:
                    gold[row, position] = ids.get(tags[word], 0)
                previous = word
        return enc, gold

    order = list(range(len(train)))
    steps = epochs * -(-len(order) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    epoch_seconds = []
    for _ in range(epochs):
        model.train()
        random.shuffle(order)
        started = time.perf_counter()
        for start in range(0, len(order), batch):
            chunk = [train[i] for i in order[start : start + batch]]
            enc, gold = encode([t for t, _ in chunk], [g for _, g in chunk])
            loss = model(**enc, labels=gold).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        epoch_seconds.append(time.perf_counter() - started)
    model.eval()
    predicted = []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(test), eval_batch):
            chunk = [tokens for tokens, _ in test[start : start + eval_batch]]
            enc = encode(chunk)
            best = model(**enc).logits.argmax(-1)
            for row, tokens in enumerate(chunk):
                tags, previous = ["O"] * len(tokens), None
                for position, word in enumerate(enc.word_ids(row)):
                    if word is not None and word != previous:
                        tags[word] = labels[int(best[row, position])]
                    previous = word
                predicted.append(tags)
    decode_seconds = time.perf_counter() - started
    from seqeval.metrics import f1_score

    f1 = f1_score([tags for _, tags in test], predicted)  # conlleval-style, as an HF user scores
    return {"epoch_seconds": epoch_seconds, "train_rate": [len(train) / t for t in epoch_seconds],
            "decode_rate": [len(test) / decode_seconds], "test_f1": float(f1)}


def run_torch(work: Path, epochs: int, batch: int, eval_batch: int, threads: int, env: dict, round_: int,
              transformer: bool = False) -> dict:
    cmd = [str(REPO / "scripts" / "bench_peers.py"), "--torch-child", str(work), "--epochs", str(epochs),
           "--batch", str(batch), "--eval-batch", str(eval_batch), "--threads", str(threads),
           *(["--transformer"] if transformer else [])]
    out, rss, cpu = measured([sys.executable, *cmd], REPO, env, work / f"torch_round{round_}.log")
    result = json.loads(re.search(r"TORCH_RESULT (.*)", out).group(1))
    return {**result, "rss": rss, "cpu_per_epoch": cpu / epochs}


SEQLAB_WORDS_ONLY = ["+encoder=bilstm", "words=words_only", "head=crf", "head.constrained=false", "words.dim=100",
                     "encoder.units=100"]
SEQLAB_TRANSFORMER = ["+encoder=transformer", "encoder.preset=minilm_l6", "head=softmax", "words.dim=0",
                      "words.chars=none", "words.casing=false", "optimizer.name=adamw", "optimizer.lr=5e-5",
                      "optimizer.schedule=linear", "optimizer.warmup=0", "optimizer.clipnorm=null"]


def seqlab_data(work: Path) -> list[str]:
    """The overrides that point seqlab at the race's BIOES files in `work`."""
    return ["data=conll", "data.name=peers", f"data.train={work}/train.bioes", f"data.dev={work}/dev.bioes",
            f"data.test={work}/test.bioes", "data.scheme=bioes", "data.train_scheme=bioes", "data.sep= "]


def run_seqlab_words_only(work: Path, epochs: int, batch: int, eval_batch: int, threads: int, env: dict,
                          round_: int, counts: dict, model: list[str] = SEQLAB_WORDS_ONLY) -> dict:
    """seqlab's side of --torch (--transformer: `model` is SEQLAB_TRANSFORMER): the same model, as
    `python -m experiments.run` trains it."""
    from seqlab import tracking

    store = work / f"seqlab_torch_round{round_}"
    cmd = [sys.executable, "-m", "experiments.run", *model, *seqlab_data(work), f"trainer.epochs={epochs}",
           f"trainer.patience={epochs}", f"trainer.batch_size={batch}", f"trainer.eval_batch_size={eval_batch}",
           f"trainer.threads={threads}", f"tracking.uri=sqlite:///{store}/mlflow.db", f"tracking.artifact_location={store}/mlruns",
           "tracking.log_model=false", "tracking.system_metrics=false", "tracking.calibration=false",
           "tracking.latency_sentences=0", f"hydra.run.dir={store}/hydra"]
    _, rss, cpu = measured(cmd, REPO, env, work / f"seqlab_torch_round{round_}.log")
    client = tracking.client(f"sqlite:///{store}/mlflow.db")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"])[0]
    history = lambda key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]  # noqa: E731
    train_s = [e - d for e, d in zip(history("epoch_seconds"), history("dev_seconds"))]
    return {"epoch_seconds": train_s, "train_rate": [counts["train"] / t for t in train_s],
            "decode_rate": [run.data.metrics["predict_sentences_per_sec"]], "test_f1": run.data.metrics["test_entity_f1"],
            "rss": rss, "cpu_per_epoch": cpu / epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ncrfpp", help="a checkout of https://github.com/jiesutd/NCRFpp")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"), help="holds conll2003/")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None,
                        help="training batch size, both tools (default 10, NCRF++'s; with --torch 32); NCRF++ decodes in it too")
    parser.add_argument("--torch", action="store_true",
                        help="against a plain PyTorch words-only BiLSTM-CRF (pytorch-crf) instead of NCRF++")
    parser.add_argument("--transformer", action="store_true",
                        help="against a Hugging Face + PyTorch MiniLM token classifier (needs the pretrained extra)")
    parser.add_argument("--eval-batch", type=int, default=256, help="--torch: the test set's decoding batch size, both sides")
    parser.add_argument("--torch-child", help=argparse.SUPPRESS)  # the PyTorch side, in its own process
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences of each split (a smoke test)")
    parser.add_argument("--work", default=None, help="a folder for the converted data, logs and stores")
    parser.add_argument("--smoke", action="store_true", help="seqlab's side only, 40 sentences, 1 epoch: does it still run?")
    args = parser.parse_args()
    args.torch = args.torch or args.transformer
    args.batch = args.batch or (16 if args.transformer else 32 if args.torch else 10)
    if args.torch_child:
        reference = hf_reference if args.transformer else torch_reference
        result = reference(Path(args.torch_child), args.epochs, args.batch, args.eval_batch, args.threads)
        print("TORCH_RESULT " + json.dumps(result), flush=True)
        return
    if args.smoke:
        args.limit, args.epochs, args.rounds = 40, 1, 1
        if not (Path(args.data_root) / "conll2003" / "train.txt").exists():
            raise SystemExit(f"error: --data-root {args.data_root} holds no conll2003/train.txt")
    elif not args.ncrfpp and not args.torch:
        parser.error("--ncrfpp DIR or --torch is required (or --smoke)")
    ncrfpp = Path(args.ncrfpp).resolve() if args.ncrfpp else None
    if ncrfpp is not None and not (ncrfpp / "main.py").exists():
        raise SystemExit(f"error: --ncrfpp {ncrfpp}: no main.py there; clone https://github.com/jiesutd/NCRFpp")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_peers_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    counts = write_bioes(["data=conll2003", f"data.root={args.data_root}"], work, args.limit)
    commit = subprocess.run(["git", "-C", str(ncrfpp), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() if ncrfpp else ""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "OMP_WAIT_POLICY": "PASSIVE", "TF_CPP_MIN_LOG_LEVEL": "2"}
    peer = ("against Hugging Face transformers + PyTorch (MiniLM-L6)" if args.transformer else
            "against plain PyTorch + pytorch-crf" if args.torch else f"NCRF++ {commit or '(not a git checkout)'}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {peer}; "
          f"CoNLL-2003 as BIOES: {counts['train']} / {counts['dev']} / {counts['test']} sentences; {args.epochs} epochs, "
          f"batch {args.batch}, {args.threads} threads each; work folder {work}", flush=True)
    if args.torch:
        torch_race(args, work, env, counts)
        return
    results = {"NCRF++": [], "seqlab": []}
    for r in range(1, args.rounds + 1):
        if ncrfpp is not None:
            results["NCRF++"].append(run_ncrfpp(ncrfpp, work, args.epochs, args.batch, env, r))
            print(f"round {r}: NCRF++ done: dev F1 {results['NCRF++'][-1]['dev_f1']}", flush=True)
        results["seqlab"].append(run_seqlab(work, args.epochs, args.batch, args.threads, env, r, counts))
        print(f"round {r}: seqlab done: dev F1 {[round(f, 4) for f in results['seqlab'][-1]['dev_f1']]}", flush=True)

    if ncrfpp is None:
        return  # the smoke run: seqlab's side ran and was read back

    def med(tool, key, index=None):
        values = [(run[key][index] if index is not None else statistics.median(run[key]) if isinstance(run[key], list)
                   else run[key]) for run in results[tool]]
        return statistics.median(values)

    rows = [("wall s per training epoch", "epoch_seconds", None, "{:.1f}"),
            ("CPU s per epoch (whole run / epochs)", "cpu_per_epoch", None, "{:.1f}"),
            ("train sentences/s", "train_rate", None, "{:.0f}"),
            (f"decode sentences/s (dev, batch {args.batch})", "decode_rate", None, "{:.0f}")]
    rows += [(f"dev F1 after epoch {e + 1}", "dev_f1", e, "{:.4f}") for e in range(args.epochs)]
    rows += [("test F1", "test_f1", None, "{:.4f}"), ("peak RSS (MiB)", "rss", None, "{:.0f}")]
    print()
    print("| | NCRF++ | seqlab | seqlab vs NCRF++ |")
    print("|---|---|---|---|")
    for name, key, index, fmt in rows:
        a, b = med("NCRF++", key, index), med("seqlab", key, index)
        ratio = f"{b / a:.2f}x" if key in ("train_rate", "decode_rate", "rss") else (
            f"{a / b:.2f}x faster" if key in ("epoch_seconds", "cpu_per_epoch") else f"{100 * (b - a):+.1f} points")
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")


def torch_race(args, work: Path, env: dict, counts: dict) -> None:
    """--torch: rounds of the PyTorch tagger then seqlab's, and the table of medians."""
    results = {"PyTorch": [], "seqlab": []}
    model = SEQLAB_TRANSFORMER if args.transformer else SEQLAB_WORDS_ONLY
    for r in range(1, args.rounds + 1):
        results["PyTorch"].append(run_torch(work, args.epochs, args.batch, args.eval_batch, args.threads, env, r,
                                            args.transformer))
        print(f"round {r}: PyTorch done: test F1 {results['PyTorch'][-1]['test_f1']:.4f}", flush=True)
        results["seqlab"].append(run_seqlab_words_only(work, args.epochs, args.batch, args.eval_batch, args.threads,
                                                       env, r, counts, model))
        print(f"round {r}: seqlab done: test F1 {results['seqlab'][-1]['test_f1']:.4f}", flush=True)
    med = lambda tool, key: statistics.median(  # noqa: E731
        statistics.median(run[key]) if isinstance(run[key], list) else run[key] for run in results[tool])
    print()
    print(f"| | {'Hugging Face + PyTorch' if args.transformer else 'plain PyTorch + pytorch-crf'} | seqlab | seqlab vs PyTorch |")
    print("|---|---|---|---|")
    for run in results["PyTorch"] + results["seqlab"]:  # the steady state, once tracing and warm-up are done
        run["last_epoch_seconds"] = run["epoch_seconds"][-1]
        run["last_train_rate"] = run["train_rate"][-1]
    rows = [("wall s per training epoch (no dev scoring)", "epoch_seconds", "{:.1f}"),
            ("wall s, last training epoch", "last_epoch_seconds", "{:.1f}"),
            ("CPU s per epoch (whole run / epochs)", "cpu_per_epoch", "{:.1f}"),
            (f"train sentences/s (batches of {args.batch})", "train_rate", "{:.0f}"),
            ("train sentences/s, last epoch", "last_train_rate", "{:.0f}"),
            (f"decode sentences/s (test, batches of {args.eval_batch}, strings to tags)", "decode_rate", "{:.0f}"),
            ("test F1", "test_f1", "{:.4f}"), ("peak RSS (MiB)", "rss", "{:.0f}")]
    for name, key, fmt in rows:
        a, b = med("PyTorch", key), med("seqlab", key)
        ratio = (f"{a / b:.2f}x faster" if key in ("epoch_seconds", "last_epoch_seconds", "cpu_per_epoch") else
                 f"{b / a:.2f}x" if key in ("train_rate", "last_train_rate", "decode_rate", "rss") else
                 f"{100 * (b - a):+.1f} points")
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    if not args.transformer:
        decoding_profile(args, work, results["PyTorch"][-1]["decode_parts"])


def decoding_profile(args, work: Path, torch_parts: dict) -> None:
    """--torch: where each side's decoding of the test set goes (seconds per part, best of 3 passes each;
    PyTorch's from its last round, seqlab's here, after the race, on the race's model built untrained)."""
    ours = seqlab_decode_profile(work, args.eval_batch, args.threads)
    print()
    print(f"Where decoding the test set goes (s, best of 3; batches of {args.eval_batch}):")
    print()
    print("| part | plain PyTorch + pytorch-crf | seqlab | seqlab vs PyTorch |")
    print("|---|---|---|---|")
    for part, theirs in torch_parts.items():
        print(f"| {part} | {theirs:.3f} | {ours[part]:.3f} | {theirs / max(ours[part], 1e-9):.2f}x |")


if __name__ == "__main__":
    main()
