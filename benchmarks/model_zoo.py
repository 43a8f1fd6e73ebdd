"""PyTorch definitions of the benchmark and test models, exported to ONNX with seeded weights.

ResNet (18/50 and small variants), MobileNetV2, and a BERT-style encoder, written out here so no
download is needed. Requires torch (CPU build): `pip install torch`.

    python benchmarks/model_zoo.py resnet18 out/resnet18.onnx
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


# ----- ResNet ----------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    def __init__(self, block, layers, widths=(64, 128, 256, 512), num_classes=1000, stem=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], stem
        for i, (n, w) in enumerate(zip(layers, widths)):
            for j in range(n):
                blocks.append(block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


# ----- MobileNetV2 -----------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    #: (expand, channels, repeats, stride) as in the paper
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]

    def __init__(self, width: float = 1.0, num_classes: int = 1000, settings=None):
        super().__init__()

        def ch(c):
            return max(8, int(c * width + 4) // 8 * 8)

        cin = ch(32)
        layers = [nn.Conv2d(3, cin, 3, 2, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6()]
        for t, c, n, s in settings or self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, ch(c), s if i == 0 else 1, t))
                cin = ch(c)
        last = ch(1280) if width > 1.0 else 1280 if settings is None else ch(256)
        layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


# ----- BERT-style encoder ------------------------------------------------------------------------
class SelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x):
        b, s, d = x.size()
        return x.view(b, s, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x):
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / (q.size(-1) ** 0.5)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        b, h, s, dh = ctx.size()
        return self.out(ctx.transpose(1, 2).reshape(b, s, h * dh))


class EncoderLayer(nn.Module):
    """Post-norm transformer layer as in BERT: attention, add & norm, GELU MLP, add & norm."""

    def __init__(self, d_model: int, heads: int, ff: int):
        super().__init__()
        self.attn = SelfAttention(d_model, heads)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ff)
        self.ff2 = nn.Linear(ff, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff2(nn.functional.gelu(self.ff1(x)))))


class BertEncoder(nn.Module):
    """Token + position embeddings followed by post-norm transformer layers."""

    def __init__(self, vocab=1000, d_model=256, heads=4, ff=1024, layers=4, max_len=128):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff) for _ in range(layers))

    def forward(self, ids):
        positions = torch.arange(ids.size(1), device=ids.device).unsqueeze(0)
        x = self.norm(self.tok(ids) + self.pos(positions))
        for layer in self.layers:
            x = layer(x)
        return x


# ----- registry and export ---------------------------------------------------------------------
MODELS = {
    # name: (constructor, example input)
    "resnet18": (lambda: ResNet(BasicBlock, [2, 2, 2, 2]), lambda: torch.randn(1, 3, 224, 224)),
    "resnet50": (lambda: ResNet(Bottleneck, [3, 4, 6, 3]), lambda: torch.randn(1, 3, 224, 224)),
    "mobilenetv2": (lambda: MobileNetV2(), lambda: torch.randn(1, 3, 224, 224)),
    "bert_encoder": (lambda: BertEncoder(d_model=256, heads=4, ff=1024, layers=4),
                     lambda: torch.randint(0, 1000, (1, 128))),
    # small variants for tests and the bundled example
    "resnet_tiny": (lambda: ResNet(BasicBlock, [1, 1, 1], widths=(16, 32, 64), num_classes=10, stem=16),
                    lambda: torch.randn(1, 3, 64, 64)),
    "mobilenetv2_tiny": (lambda: MobileNetV2(width=0.5, num_classes=10,
                                             settings=[(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2)]),
                         lambda: torch.randn(1, 3, 64, 64)),
    "transformer_tiny": (lambda: BertEncoder(vocab=100, d_model=64, heads=4, ff=128, layers=2, max_len=32),
                         lambda: torch.randint(0, 100, (1, 16))),
}


def _randomize_batch_norm(model: nn.Module, gen: torch.Generator) -> None:
    """Give BatchNorm layers non-trivial statistics, as a trained model has."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def build(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    make, example = MODELS[name]
    torch.manual_seed(seed)
    model = make().eval()
    _randomize_batch_norm(model, torch.Generator().manual_seed(seed))
    return model, example()


def export(name: str, path: str, seed: int = 0, opset: int = 17, dynamic: bool = False) -> str:
    """Export model `name` to `path` (atomically) with the TorchScript-based exporter.

    With `dynamic`, every input axis is symbolic, so the graph computes shapes at run time
    (Shape -> Gather -> Concat chains), as models exported for variable sizes do.
    """
    model, example = build(name, seed)
    input_name = "input_ids" if example.dtype == torch.int64 else "input"
    from edgecc._files import atomic_output

    with atomic_output(path, suffix=".onnx") as tmp, torch.no_grad():
        axes = {input_name: {i: f"dim{i}" for i in range(example.dim())}} if dynamic else None
        torch.onnx.export(model, (example,), tmp, input_names=[input_name], output_names=["output"],
                          opset_version=opset, dynamo=False, do_constant_folding=True, dynamic_axes=axes)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--dynamic", action="store_true", help="export with symbolic input dimensions")
    args = parser.parse_args()
    export(args.model, args.output, args.seed, args.opset, args.dynamic)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
