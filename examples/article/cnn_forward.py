"""The article's CNN forward at 224x224, as PyTorch code. The import lines are the only lines that
differ from the minitorch_cl version (see docs/PORTING.md)."""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CNN(nn.Module):
    """Five conv/ReLU/max-pool stages and a classifier: (B, 3, 224, 224) -> (B, 1000) logits."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv4 = nn.Conv2d(128, 128, 3, padding=1)
        self.conv5 = nn.Conv2d(128, 256, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc = nn.Linear(256 * 7 * 7, num_classes)

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = self.pool(F.relu(conv(x)))
        return self.fc(torch.flatten(x, 1))


def main(batch=2, repeats=3):
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = CNN().to(device).eval()
    x = torch.randn(batch, 3, 224, 224, device=device)
    with torch.no_grad():
        model(x)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            out = model(x)
        out.sum().item()
    print(f"CNN forward, batch {batch} at 224x224: {1e3 * (time.perf_counter() - start) / repeats:.1f} ms, "
          f"output {tuple(out.shape)}")
    return model, x, out


if __name__ == "__main__":
    main()
