"""The main job's baseline arm as a PyTorch user writes it, for bench/e2e.py.

VGG-11 at width 1/4 (the network of plugins/models/vgg.cpp, as in
bench/train_step.py) on Fashion-MNIST with the recipe of
experiments/quick/fashion_mnist.json: batch 128, SGD (lr 0.05, momentum 0.9,
weight decay 5e-4), cosine annealing stepped per iteration, random crop with
padding 2 and horizontal flips, normalisation (0.2860, 0.3530); torchvision's
FashionMNIST dataset, a DataLoader with worker processes, the usual loop, the
test set evaluated after every epoch (batch 500, as sgs's eval_batch_size).
--channels-last converts the model and each batch.

  python3 bench/e2e_fashion_mnist.py --root DIR [--epochs 1] [--threads 2] [--workers 2] [--channels-last]

DIR holds FashionMNIST/raw/*-ubyte (bench/e2e.py unpacks Debian's
dataset-fashion-mnist there, as torchvision's download would). Prints one
line per epoch and, last, `seconds=... train_acc=... test_acc=...`.
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T

from train_step import CONFIGS, Vgg


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    norm = T.Normalize((0.2860,), (0.3530,))
    train_set = torchvision.datasets.FashionMNIST(
        a.root, train=True, transform=T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.ToTensor(), norm]))
    test_set = torchvision.datasets.FashionMNIST(a.root, train=False, transform=T.Compose([T.ToTensor(), norm]))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True, num_workers=a.workers,
                                               persistent_workers=a.workers > 0)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=500, num_workers=a.workers,
                                              persistent_workers=a.workers > 0)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = Vgg(CONFIGS["vgg11"], 0.25, 1, 10).to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    total = a.epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    for epoch in range(a.epochs):
        model.train()
        correct = seen = 0
        for x, y in train_loader:
            x = x.contiguous(memory_format=fmt)
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            loss.backward()
            opt.step()
            sched.step()
            correct += (out.argmax(1) == y).sum().item()
            seen += y.numel()
        train_acc = 100.0 * correct / seen
        model.eval()
        correct = seen = 0
        with torch.no_grad():
            for x, y in test_loader:
                out = model(x.contiguous(memory_format=fmt))
                correct += (out.argmax(1) == y).sum().item()
                seen += y.numel()
        test_acc = 100.0 * correct / seen
        print(f"epoch {epoch + 1}: train_acc {train_acc:.2f} test_acc {test_acc:.2f}", flush=True)
    print(f"seconds={time.perf_counter() - start:.1f} train_acc={train_acc:.2f} test_acc={test_acc:.2f}")


if __name__ == "__main__":
    main()
