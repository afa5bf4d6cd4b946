"""The article's nn.Transformer forward, as PyTorch code (only the import lines differ in the
minitorch_cl version). The article's shape is src 512 x batch 64, tgt 128 x batch 64."""
import time

import torch
import torch.nn as nn


def main(src_len=512, tgt_len=128, batch=64, d_model=512, nhead=8, layers=6):
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = nn.Transformer(d_model=d_model, nhead=nhead, num_encoder_layers=layers,
                           num_decoder_layers=layers).to(device).eval()
    src = torch.randn(src_len, batch, d_model, device=device)
    tgt = torch.randn(tgt_len, batch, d_model, device=device)
    with torch.no_grad():
        start = time.perf_counter()
        out = model(src, tgt)
        out.sum().item()
    print(f"Transformer src {src_len} x {batch}, tgt {tgt_len} x {batch}: forward "
          f"{time.perf_counter() - start:.2f} s, output {tuple(out.shape)}")
    return model, (src, tgt), out


if __name__ == "__main__":
    main()
