"""The BayesFT authors' LeNet-5/MNIST procedure, re-implemented in PyTorch on NumPy arrays.

Source: github.com/JingbiaoMei/BayesFTNA (mirrored in /work/.mirror/JingbiaoMei+BayesFTNA):
``model/LeNet.py`` (LeNet_Bayes, LeNet5), ``utilis.py`` (fit_one_cycle_Bayes,
add_noise_to_weights, evaluate, accuracy) and ``assets/Bayes_Mnist.py`` (bbf_LeNet,
step_LeNet). Copied as closely as possible:

- model: ``LeNet_Bayes(p0..p4)`` verbatim: Dropout2d after conv1/conv2 (after ReLU, before
  pooling), Dropout after flatten, fc1 and the logits; PyTorch default initialization.
- training: Adam(lr=max_lr, weight_decay=1e-4, coupled L2 as torch's Adam does),
  ``OneCycleLR(max_lr, epochs, steps_per_epoch)`` with all defaults (pct_start 0.3, cos,
  div 25, final div 1e4, cycle_momentum=True: Adam's beta1 0.95 -> 0.85 -> 0.95), cross
  entropy on the (dropped-out) logits, ``clip_grad_value_(0.1)``, one scheduler step per
  batch, shuffled batches (``DataLoader(shuffle=True)``), a validation pass after every
  epoch as their loop does (it only costs time).
- drift: every parameter (kernels and biases) multiplied by ``exp(N(0, sigma^2))``
  (``torch.distributions.Normal(0, sigma).sample``), the saved state loaded from disk before
  each draw, draws from torch's global RNG.
- evaluate: eval mode (dropout off), mean over validation batches of each batch's accuracy
  (validation batch = 4 x training batch, as their loaders).
- search: ``bayes_opt.BayesianOptimization(pbounds=(0.2, 0.8) x 5, random_state=seed)``,
  ``probe({0.2, 0.2, 0.2, 0.5, 0.5}, lazy=True)``, ``maximize(init_points=3, n_iter=16)``,
  default acquisition (UCB, kappa 2.576) and GP (Matern 5/2); objective = mean accuracy over
  30 draws at sigma 1.5 on the validation data. The global torch RNG is seeded once per
  search and runs on through all trials (their script does not reseed), so each trial's
  30 chips are new draws (no common random numbers).

Deviations (none changes the algorithm):
- data come from NumPy arrays (``TensorDataset``, ``num_workers=0``, no pinned memory) instead
  of torchvision's MNIST with ``ToTensor`` and 8 workers; the arrays are NHWC float32 in
  [0, 1] (same scaling as ``ToTensor``) and are transposed to NCHW.
- the batch size is a parameter (their MNIST loader uses 2048 on 50,000 images, 25 steps an
  epoch; the benchmark's default is 256 on the smaller mnist5k train split).
- ``Normal(0, sigma)`` is built with ``validate_args=False`` so that sigma = 0 is allowed
  (torch >= 1.8 validates by default and rejects a zero scale; it then samples exactly 0).
- the per-trial ``.pth`` files go to a temporary directory and the "accu > 0.4" extra save is
  dropped; nothing is printed per epoch.
- the bayes_opt version is whatever is installed (their code predates bayes_opt 2.0; the
  defaults used here — UCB kappa 2.576, Matern 5/2 GP with alpha 1e-6, normalize_y,
  5 optimizer restarts — are unchanged since 1.x). `BAYES_OPT_VERSION` records it.
"""

import os
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

try:
    from importlib.metadata import version as _version

    BAYES_OPT_VERSION = _version("bayesian-optimization")
except Exception:  # pragma: no cover
    BAYES_OPT_VERSION = None

PROBE = {"p1": 0.2, "p2": 0.2, "p3": 0.2, "p4": 0.5, "p5": 0.5}
PBOUNDS = {name: (0.2, 0.8) for name in PROBE}


# -- model/LeNet.py ---------------------------------------------------------------


class LeNet_Bayes(nn.Module):
    def __init__(self, p0, p1, p2, p3, p4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, 1)  # 28 by 28
        self.do1 = nn.Dropout2d(p=p0)
        self.conv2 = nn.Conv2d(6, 16, 5, 1)
        self.do2 = nn.Dropout2d(p=p1)
        self.conv3 = nn.Conv2d(16, 120, 4, 1)
        self.do3 = nn.Dropout(p=p2)
        self.fc1 = nn.Linear(120, 84)
        self.do4 = nn.Dropout(p=p3)
        self.fc2 = nn.Linear(84, 10)
        self.do5 = nn.Dropout(p=p4)

    def forward(self, x):
        out = F.relu(self.conv1(x))  # 24 by 24
        out = self.do1(out)
        out = F.max_pool2d(out, 2)  # 12 by 12

        out = F.relu(self.conv2(out))  # 8 by 8
        out = self.do2(out)
        out = F.max_pool2d(out, 2)  # 4 by 4

        out = F.relu(self.conv3(out))  # 1 by 1
        out = out.view(out.size(0), -1)
        out = self.do3(out)

        out = F.relu(self.fc1(out))
        out = self.do4(out)
        out = self.fc2(out)
        out = self.do5(out)
        return out


def LeNet5():
    """Their plain ``LeNet5`` is ``LeNet_Bayes`` with every rate 0 (same layers, same init order)."""
    return LeNet_Bayes(0.0, 0.0, 0.0, 0.0, 0.0)


# -- data -------------------------------------------------------------------------


def loaders(x_train, y_train, x_val, y_val, batch_size):
    """(train_dl, valid_dl) as their select_Data: shuffled training batches, validation x4."""

    def tensors(x, y):
        x = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(x, np.float32), (0, 3, 1, 2))))
        return TensorDataset(x, torch.from_numpy(np.asarray(y, np.int64)))

    train_dl = DataLoader(tensors(x_train, y_train), batch_size, shuffle=True)
    valid_dl = DataLoader(tensors(x_val, y_val), batch_size * 4)
    return train_dl, valid_dl


def eval_loader(x, y, batch_size=8192):
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(x, np.float32), (0, 3, 1, 2))))
    return DataLoader(TensorDataset(x, torch.from_numpy(np.asarray(y, np.int64))), batch_size)


# -- utilis.py --------------------------------------------------------------------


def accuracy(outputs, labels):
    _, preds = torch.max(outputs, dim=1)
    return torch.tensor(torch.sum(preds == labels).item() / len(preds))


def training_step(model, batch):
    images, labels = batch
    out = model(images)
    return F.cross_entropy(out, labels)


def validation_step(model, batch):
    images, labels = batch
    out = model(images)
    loss = F.cross_entropy(out, labels)
    acc = accuracy(out, labels)
    return {"val_loss": loss.detach(), "val_acc": acc}


def validation_epoch_end(outputs):
    epoch_loss = torch.stack([x["val_loss"] for x in outputs]).mean()
    epoch_acc = torch.stack([x["val_acc"] for x in outputs]).mean()
    return {"val_loss": epoch_loss.item(), "val_acc": epoch_acc.item()}


@torch.no_grad()
def evaluate(model, val_loader):
    model.eval()
    outputs = [validation_step(model, batch) for batch in val_loader]
    return validation_epoch_end(outputs)


def get_lr(optimizer):
    for param_group in optimizer.param_groups:
        return param_group["lr"]


def fit_one_cycle_Bayes(epochs, max_lr, model, train_loader, val_loader, weight_decay=0, grad_clip=None,
                        opt_func=torch.optim.SGD, epoch_validation=True):
    history = []
    optimizer = opt_func(model.parameters(), max_lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, epochs=epochs,
                                                steps_per_epoch=len(train_loader))
    for epoch in range(epochs):
        model.train()
        train_losses = []
        lrs = []
        for batch in train_loader:
            loss = training_step(model, batch)
            train_losses.append(loss)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_value_(model.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            lrs.append(get_lr(optimizer))
            sched.step()
        result = evaluate(model, val_loader) if epoch_validation else {}
        result["train_loss"] = torch.stack(train_losses).mean().item()
        result["lrs"] = lrs
        history.append(result)
    return history


def add_noise_to_weights(mean, std, model):
    gassian_kernel = torch.distributions.Normal(mean, std, validate_args=False)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(torch.exp(gassian_kernel.sample(param.size())))


# -- the procedure ------------------------------------------------------------------


def train(rates, train_dl, valid_dl, epochs=20, max_lr=0.01, weight_decay=1e-4, grad_clip=0.1,
          epoch_validation=True):
    """A LeNet_Bayes with ``rates`` (5 floats) trained as bbf_LeNet does."""
    model = LeNet_Bayes(*rates)
    fit_one_cycle_Bayes(epochs, max_lr, model, train_dl, valid_dl, grad_clip=grad_clip,
                        weight_decay=weight_decay, opt_func=torch.optim.Adam,
                        epoch_validation=epoch_validation)
    return model


def drift_accuracies(model, state_path, loader, std, num):
    """``num`` draws at ``std``, each from the saved state (bbf_LeNet / evaluate_robustness)."""
    evaluated = np.zeros(num)
    for i in range(num):
        model.load_state_dict(torch.load(state_path))
        add_noise_to_weights(0, std, model)
        evaluated[i] = evaluate(model, loader)["val_acc"]
    model.load_state_dict(torch.load(state_path))
    return evaluated


def drift_curve(model, x, y, sigmas, num=20, seed=None, workdir=None):
    """evaluate_robustness: accuracies of shape (len(sigmas), num) on (x, y); clean accuracy."""
    if seed is not None:
        torch.manual_seed(seed)
    loader = eval_loader(x, y)
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        path = os.path.join(d, "model.pth")
        torch.save(model.state_dict(), path)
        clean = evaluate(model, loader)["val_acc"]
        rows = [drift_accuracies(model, path, loader, float(s), num) for s in sigmas]
    return np.stack(rows), clean


def run_search(x_train, y_train, x_val, y_val, seed, *, sigma=1.5, chips=30, init_points=3, n_iter=16,
               epochs=20, batch_size=256, max_lr=0.01, weight_decay=1e-4, grad_clip=0.1,
               epoch_validation=True, verbose=0):
    """step_LeNet + bbf_LeNet. Returns a dict with every trial, the best one and its state_dict."""
    from bayes_opt import BayesianOptimization

    torch.manual_seed(seed)
    train_dl, valid_dl = loaders(x_train, y_train, x_val, y_val, batch_size)
    trials = []
    best = {"score": -1.0}
    with tempfile.TemporaryDirectory() as d:

        def bbf_LeNet(p1, p2, p3, p4, p5):
            start = time.perf_counter()
            model = train((p1, p2, p3, p4, p5), train_dl, valid_dl, epochs, max_lr, weight_decay, grad_clip,
                          epoch_validation)
            trained = time.perf_counter()
            path = os.path.join(d, "LeNet-{}-{}-{}-{}-{}.pth".format(p1, p2, p3, p4, p5))
            torch.save(model.state_dict(), path)
            accu = float(np.sum(drift_accuracies(model, path, valid_dl, sigma, chips)) / chips)
            end = time.perf_counter()
            clean = evaluate(model, valid_dl)["val_acc"]
            trials.append({
                "params": [p1, p2, p3, p4, p5], "score": accu, "clean_val": clean,
                "train_s": trained - start, "score_s": end - trained, "total_s": end - start,
            })
            if accu > best["score"]:
                best.update(score=accu, params=[p1, p2, p3, p4, p5],
                            state={k: v.clone() for k, v in model.state_dict().items()})
            if verbose:
                print(f"  torch trial {len(trials)}: {np.round([p1, p2, p3, p4, p5], 3).tolist()} -> {accu:.4f} "
                      f"({end - start:.1f} s)", flush=True)
            return accu

        optimizer = BayesianOptimization(f=bbf_LeNet, pbounds=PBOUNDS, verbose=0, random_state=seed)
        optimizer.probe(params=dict(PROBE), lazy=True)
        start = time.perf_counter()
        optimizer.maximize(init_points=init_points, n_iter=n_iter)
        wall = time.perf_counter() - start
    return {"trials": trials, "best": best, "wall_s": wall, "bayes_opt_version": BAYES_OPT_VERSION}


def load_best(best):
    model = LeNet_Bayes(*best["params"])
    model.load_state_dict(best["state"])
    return model
