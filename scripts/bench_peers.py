"""seqlab and NCRF++ side by side: same converted data, same architecture, same epochs, equal threads.

    git clone https://github.com/jiesutd/NCRFpp /path/to/NCRFpp       # the user's own checkout
    pip install torch==2.13.0                                          # NCRF++ runs on it unmodified
    python scripts/bench_peers.py --ncrfpp /path/to/NCRFpp             # CoNLL-2003 from ../shared/data
    python scripts/bench_peers.py --ncrfpp DIR --epochs 3 --threads 2 --rounds 2 --work /tmp/peers

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
"""

from __future__ import annotations

import argparse
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

    epoch_s, dev_s, decode_s = history("epoch_seconds"), history("dev_seconds"), history("dev_decode_seconds")
    train_s = [e - d for e, d in zip(epoch_s, dev_s)]
    return {"epoch_seconds": train_s, "train_rate": [counts["train"] / t for t in train_s],
            "decode_rate": [counts["dev"] / d for d in decode_s], "dev_f1": history("val_entity_f1"),
            "test_f1": run.data.metrics["test_entity_f1"], "rss": rss, "cpu_per_epoch": cpu / epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ncrfpp", help="a checkout of https://github.com/jiesutd/NCRFpp")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"), help="holds conll2003/")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10, help="training and decoding batch size, both tools")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences of each split (a smoke test)")
    parser.add_argument("--work", default=None, help="a folder for the converted data, logs and stores")
    parser.add_argument("--smoke", action="store_true", help="seqlab's side only, 40 sentences, 1 epoch: does it still run?")
    args = parser.parse_args()
    if args.smoke:
        args.limit, args.epochs, args.rounds = 40, 1, 1
        if not (Path(args.data_root) / "conll2003" / "train.txt").exists():
            raise SystemExit(f"error: --data-root {args.data_root} holds no conll2003/train.txt")
    elif not args.ncrfpp:
        parser.error("--ncrfpp DIR is required (or --smoke)")
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
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; NCRF++ {commit or '(not a git checkout)'}; "
          f"CoNLL-2003 as BIOES: {counts['train']} / {counts['dev']} / {counts['test']} sentences; {args.epochs} epochs, "
          f"batch {args.batch}, {args.threads} threads each; work folder {work}", flush=True)
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


if __name__ == "__main__":
    main()
