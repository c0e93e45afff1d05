"""The C++ runner's training loop in PyTorch's Python API, for bench_train.

Same network as plugins/models/vgg.cpp (3x3 convs without bias, BatchNorm,
ReLU, ceil-mode max-pools, global average pooling, one linear layer), SGD with
momentum and weight decay, cross-entropy, gradients set to None; as a timm
user would set it: --precision bf16/fp16 runs forward and loss under
torch.autocast (fp16 with a GradScaler), --channels-last converts the model
and the batch. Prints the images per second of the timed steps.
"""
import argparse
import time

import torch
import torch.nn as nn

CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class Vgg(nn.Module):
    def __init__(self, cfg, width, channels, classes):
        super().__init__()
        layers = []
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                out = max(1, round(v * width))
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vgg11")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = Vgg(CONFIGS[a.model], a.width, a.channels, 10).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, a.channels, a.size, a.size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    scaler = torch.cuda.amp.GradScaler() if a.precision == "fp16" else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.train()
    warmup = 5
    for i in range(warmup + a.steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(a.batch * a.steps / (time.perf_counter() - start))


if __name__ == "__main__":
    main()
