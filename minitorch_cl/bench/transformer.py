"""nn.Transformer forward (eval, no grad) at the shape of "Attention Is All You Need": d_model 512,
8 heads, 6 + 6 layers, feed-forward 2048, src length 512, tgt length 128 with a causal mask; and a
training step (train mode, MSE loss, backward, Adam) at a CI-sized shape; next to PyTorch's
nn.Transformer on the CPU when it is installed."""
import os
import warnings

import numpy as np

from . import our_step_peak_mib, paired_times, torch_or_none, torch_step_peak_rss_mib

BATCH = int(os.environ.get("MINITORCH_CL_TRANSFORMER_BATCH", "8"))
NOTE = ((f"Batch {BATCH} rather than the article's 64, which takes tens of seconds per forward on a 2-core CPU "
         "(set MINITORCH_CL_TRANSFORMER_BATCH=64 for the full shape). " if BATCH != 64 else "The article's batch 64. ")
        + "Medians of 3, ours and PyTorch's alternating call by call; both sides with the same weights (forward: eval mode). The training step: "
        f"d_model 128, 4 heads, 2+2 layers, feed-forward 512, src 64, tgt 32, batch 8, dropout 0.1, "
        "MSE loss against a fixed target, backward, Adam; peak MiB as in bench convnet's note. "
        "--quick: forward at d_model 128, 2 heads, 2+2 layers, src 128, tgt 32, batch 4.")
TRAIN = dict(d_model=128, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=512)
TRAIN_SHAPE = (64, 32, 8)  # src length, tgt length, batch


def run(dev, quick=False):
    import minitorch_cl as mt
    from minitorch_cl import nn
    torch = torch_or_none()
    if quick:
        cfg = dict(d_model=128, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=512)
        S, T, B = 128, 32, 4
    else:
        cfg = dict(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048)
        S, T, B = 512, 128, BATCH
    E = cfg["d_model"]
    rng = np.random.default_rng(0)
    src = rng.standard_normal((S, B, E)).astype(np.float32)
    tgt = rng.standard_normal((T, B, E)).astype(np.float32)
    model = nn.Transformer(**cfg, device=dev).eval()
    msrc, mtgt = mt.tensor(src, device=dev), mt.tensor(tgt, device=dev)
    mmask = nn.Transformer.generate_square_subsequent_mask(T, device=dev)

    def ours():
        with mt.no_grad():
            model(msrc, mtgt, tgt_mask=mmask, tgt_is_causal=True)

    theirs = None
    if torch is not None:
        ref = _reference(torch, model, cfg, train=False)
        tsrc, ttgt = torch.tensor(src), torch.tensor(tgt)
        tmask = torch.nn.Transformer.generate_square_subsequent_mask(T)

        def theirs():
            with torch.no_grad():
                ref(tsrc, ttgt, tgt_mask=tmask, tgt_is_causal=True)

    t_ours, t_ref, ratio = paired_times(ours, theirs, 3, 1, dev.synchronize)
    row = {"pass": "forward", "shape": f"src ({S},{B},{E}) tgt ({T},{B},{E})", "layers": f"{cfg['num_encoder_layers']}+"
           f"{cfg['num_decoder_layers']}", "minitorch s": t_ours}
    if t_ref is not None:
        row["torch s"] = t_ref
        row["ratio (ours/torch time)"] = ratio
    return [row, _training_step(dev, torch, rng)]


def _reference(torch, model, cfg, train):
    """PyTorch's nn.Transformer of this configuration, its weights copied into our model."""
    with warnings.catch_warnings():  # PyTorch's note about nested tensors with batch_first=False
        warnings.simplefilter("ignore")
        ref = torch.nn.Transformer(**cfg, dropout=0.1).train(train)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return ref


def _training_step(dev, torch, rng):
    import minitorch_cl as mt
    from minitorch_cl import nn
    S, T, B = TRAIN_SHAPE
    E = TRAIN["d_model"]
    src, tgt, goal = (rng.standard_normal((n, B, E)).astype(np.float32) for n in (S, T, T))
    model = nn.Transformer(**TRAIN, device=dev).train()
    opt = mt.optim.Adam(model.parameters(), lr=1e-4)
    msrc, mtgt, mgoal = (mt.tensor(a, device=dev) for a in (src, tgt, goal))
    mmask = nn.Transformer.generate_square_subsequent_mask(T, device=dev)

    def ours():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(msrc, mtgt, tgt_mask=mmask, tgt_is_causal=True), mgoal)
        loss.backward()
        opt.step()

    theirs = None
    if torch is not None:
        ref = _reference(torch, model, TRAIN, train=True)
        topt = torch.optim.Adam(ref.parameters(), lr=1e-4)
        tsrc, ttgt, tgoal = (torch.tensor(a) for a in (src, tgt, goal))
        tmask = torch.nn.Transformer.generate_square_subsequent_mask(T)

        def theirs():
            topt.zero_grad()
            loss = torch.nn.functional.mse_loss(ref(tsrc, ttgt, tgt_mask=tmask, tgt_is_causal=True), tgoal)
            loss.backward()
            topt.step()

    t_ours, t_ref, ratio = paired_times(ours, theirs, 5, 1, dev.synchronize)
    row = {"pass": "train step", "shape": f"src ({S},{B},{E}) tgt ({T},{B},{E})",
           "layers": f"{TRAIN['num_encoder_layers']}+{TRAIN['num_decoder_layers']}",
           "minitorch s": t_ours, "minitorch peak MiB": our_step_peak_mib(dev, ours)}
    if t_ref is not None:
        row["torch s"] = t_ref
        row["ratio (ours/torch time)"] = ratio
        row["torch peak MiB"] = torch_step_peak_rss_mib(theirs)
    return row
