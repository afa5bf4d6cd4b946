"""The CIFAR-10 ConvNet from the article, written the way a PyTorch user writes it: two conv/ReLU/
max-pool blocks and two linear layers, CrossEntropyLoss, SGD with momentum.

    python examples/cifar_convnet.py --dataset digits            # no network needed
    python examples/cifar_convnet.py --download --epochs 2        # the real CIFAR-10 (170 MB)

--dataset digits uses scikit-learn's bundled 8x8 digits scaled to 3x32x32. It is small (1437
training images, 23 steps an epoch), so its defaults are lr 0.03 and 6 epochs rather than the
article's 0.001 and 2: with 0.001 it needs some 30 epochs to pass 95% test accuracy; with 0.03
(same momentum 0.9, same batch) 6 epochs reach about 98%."""
import click

import minitorch_cl as mt
from minitorch_cl import distributed as dist, nn, training
from minitorch_cl.nn import functional as F
from minitorch_cl.nn.parallel import DistributedDataParallel
from minitorch_cl.optim import SGD
from minitorch_cl.utils.data import DataLoader, DistributedSampler
from minitorch_cl.vision.datasets import CIFAR10, DatasetError, Digits
from minitorch_cl.vision.transforms import Compose, Normalize, ToTensor

DEFAULTS = {"cifar10": {"lr": 0.001, "epochs": 2}, "digits": {"lr": 0.03, "epochs": 6}}


class Net(nn.Module):
    """(B, 3, 32, 32) -> (B, 10) logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))  # (B, 32, 16, 16)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 64, 8, 8)
        x = mt.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def datasets(name, data_dir, download):
    transform = Compose([ToTensor(), Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    if name == "digits":
        return Digits(train=True, transform=transform), Digits(train=False, transform=transform)
    return (CIFAR10(data_dir, train=True, download=download, transform=transform),
            CIFAR10(data_dir, train=False, download=download, transform=transform))


@click.command()
@training.options(epochs=None)
@click.option("--dataset", type=click.Choice(["cifar10", "digits"]), default="cifar10", show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=None, help="Default: 0.001 for cifar10 (the article's), 0.03 for digits.")
@click.option("--data-dir", default="data", show_default=True, help="Where cifar-10-batches-py/ lives.")
@click.option("--download/--no-download", default=False, show_default=True, help="Fetch CIFAR-10 if missing.")
@click.option("--workers", type=int, default=0, show_default=True,
              help="DataLoader worker processes preparing batches ahead (0: in the main process).")
@click.option("--distributed", is_flag=True,
              help="Data-parallel over the ranks of `mpiexec -n N` (--batch-size is per rank); rank 0 reports.")
def main(device, epochs, checkpoint, resume, seed, plot, dataset, batch_size, lr, data_dir, download, workers,
         distributed):
    """Train the article's ConvNet on CIFAR-10 (or digits) and report test accuracy.

    --epochs defaults to 2 for cifar10 and 6 for digits."""
    if distributed:
        dist.init_process_group("mpi")
        dist.quiet_unless_rank0()
    dev = training.open_device(device)
    run = training.Run("cifar_convnet", dev, checkpoint=checkpoint, resume=resume, plot=plot,
                       writes=not distributed or dist.get_rank() == 0)  # every rank resumes; rank 0 writes
    fixed = run.config(dataset=dataset, seed=seed)
    dataset, seed = fixed["dataset"], fixed["seed"]
    epochs = DEFAULTS[dataset]["epochs"] if epochs is None else epochs
    lr = DEFAULTS[dataset]["lr"] if lr is None else lr
    todo = run.remaining(epochs)
    if not todo:
        return
    try:
        train_set, test_set = datasets(dataset, data_dir, download)
    except DatasetError as err:
        raise click.ClickException(str(err))
    mt.manual_seed(seed)
    model = Net().to(dev)
    criterion = nn.CrossEntropyLoss()
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    net = DistributedDataParallel(model) if distributed else model  # model's state_dict keys stay unprefixed
    sampler = DistributedSampler(train_set, seed=seed) if distributed else None
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, seed=seed, device=dev,
                              sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    test_loader = DataLoader(test_set, batch_size=256, device=dev)
    run.track(model, optimizer, generators=[train_loader.generator])
    click.echo(f"{dataset}: {len(train_set)} train / {len(test_set)} test images on {dev.spec} ({dev.name}); "
               f"lr {optimizer.param_groups[0]['lr']}, batch {batch_size}, epochs {todo.start}..{epochs}")
    for epoch in todo:
        if sampler is not None:
            sampler.set_epoch(epoch)
        progress = training.train_epoch(net, train_loader, criterion, optimizer, f"epoch {epoch}/{epochs}")
        accuracy = training.evaluate(model, test_loader)
        click.echo(f"epoch {epoch}: train {progress.summary()}; test accuracy {100 * accuracy:.2f}%")
        run.end_epoch(epoch, train_loss=progress.loss, test_accuracy=accuracy, images_per_s=progress.rate,
                      lr=optimizer.param_groups[0]["lr"], seconds=progress.seconds)
    click.echo(f"done: {dataset}, test accuracy {100 * accuracy:.2f}% after {training.plural(epochs, 'epoch')}")
    run.finish()


if __name__ == "__main__":
    main()
