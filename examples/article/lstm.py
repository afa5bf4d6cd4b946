"""The article's nn.LSTM forward and backward, as PyTorch code (only the import lines differ in the
minitorch_cl version)."""
import time

import torch
import torch.nn as nn


def main(seq=100, batch=64, input_size=512, hidden=256, repeats=2):
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    lstm = nn.LSTM(input_size, hidden, num_layers=1).to(device)
    x = torch.randn(seq, batch, input_size, device=device)
    start = time.perf_counter()
    for _ in range(repeats):
        out, (h, c) = lstm(x)
        out.sum().backward()
    print(f"LSTM ({seq}, {batch}, {input_size}) -> {hidden}: forward+backward "
          f"{1e3 * (time.perf_counter() - start) / repeats:.1f} ms, h_n {tuple(h.shape)}")
    return lstm, x, out


if __name__ == "__main__":
    main()
