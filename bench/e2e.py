"""The main job's training end to end: `sgs run` against PyTorch's Python API.

Runs, alternately and as whole processes (start-up, data loading, training,
evaluation on the test set), one epoch of the main job's baseline arm
(VGG-11 width 1/4 on Fashion-MNIST, batch 128) with:
  python            bench/e2e_fashion_mnist.py, DataLoader with 2 workers
  python-cl         the same with channels_last
  sgs               build/sgs run CONFIG --set epochs=N --set threads=T (the config's own settings)
  sgs-cl            the same with --set memory_format=channels_last
each with T compute threads, and prints per round and at the end the median
seconds of each and the ratio of the faster Python setting's time to each
sgs setting's (> 1: sgs is faster).

  /usr/bin/python3 bench/e2e.py [--sgs build/sgs] [--config experiments/quick/fashion_mnist.json]
      [--rounds 3] [--epochs 1] [--threads 2] [--workers 2] [--work DIR] [--only NAME,...]

Needs Debian's python3-torch and python3-torchvision (scripts/bootstrap.sh
--bench) and dataset-fashion-mnist. Not a test: timings depend on the load.
"""
import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def torchvision_root(data, work):
    """torchvision's FashionMNIST layout (ROOT/FashionMNIST/raw/*-ubyte), unpacked once."""
    raw = os.path.join(work, "torchvision", "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for name in FILES:
        target = os.path.join(raw, name)
        if os.path.exists(target):
            continue
        src = os.path.join(data, name + ".gz")
        if not os.path.exists(src):
            sys.exit(f"e2e.py: {src}: not found (install dataset-fashion-mnist or pass --data)")
        with gzip.open(src, "rb") as f, open(target + ".tmp", "wb") as g:
            shutil.copyfileobj(f, g)
        os.replace(target + ".tmp", target)
    return os.path.join(work, "torchvision")


def timed(cmd, env):
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"e2e.py: {' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sgs", default=os.path.join(SOURCE, "build", "sgs"))
    p.add_argument("--config", default=os.path.join(SOURCE, "experiments", "quick", "fashion_mnist.json"))
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default=os.path.join(SOURCE, "build", "e2e"))
    p.add_argument("--only", default="python,python-cl,sgs,sgs-cl")
    a = p.parse_args()
    root = torchvision_root(a.data, a.work)
    py = [sys.executable, os.path.join(HERE, "e2e_fashion_mnist.py"), "--root", root, "--epochs", str(a.epochs),
          "--threads", str(a.threads), "--workers", str(a.workers)]
    run_dir = os.path.join(a.work, "sgs_run")
    sgs = [a.sgs, "run", a.config, "--out", run_dir, "--quiet", "--set", f"epochs={a.epochs}",
           "--set", f"threads={a.threads}", "--set", f"data_workers={a.workers}"]
    commands = {
        "python": py,
        "python-cl": py + ["--channels-last"],
        "sgs": sgs,
        "sgs-cl": sgs + ["--set", "memory_format=channels_last"],
    }
    names = [n for n in a.only.split(",") if n]
    for n in names:
        if n not in commands:
            sys.exit(f"e2e.py: --only: unknown setting '{n}' (known: {', '.join(commands)})")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    times = {n: [] for n in names}
    print(f"# {a.epochs} epoch(s), {a.threads} compute threads, {a.workers} loader workers, {a.rounds} rounds; "
          f"config {os.path.relpath(a.config, SOURCE)}", flush=True)
    for r in range(a.rounds):
        for n in names:
            shutil.rmtree(run_dir, ignore_errors=True)
            seconds, last = timed(commands[n], env)
            times[n].append(seconds)
            print(f"round {r + 1} {n:10s} {seconds:7.1f} s   {last}", flush=True)
    med = {n: statistics.median(t) for n, t in times.items()}
    print("\nsetting     median s")
    for n in names:
        print(f"{n:10s} {med[n]:9.1f}")
    pys = [n for n in names if n.startswith("python")]
    if pys:
        best = min(pys, key=lambda n: med[n])
        for n in names:
            if n.startswith("sgs"):
                print(f"{n} vs {best}: {med[best] / med[n]:.2f}x")
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
