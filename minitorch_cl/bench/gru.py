"""nn.GRU at the LSTM benchmark's shape (sequence 100, batch 64, input 512, hidden 256)."""
from . import lstm

NOTE = lstm.NOTE


def run(dev, quick=False):
    return lstm.run(dev, quick, cls="GRU")
