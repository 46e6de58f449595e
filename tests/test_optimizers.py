"""`TorchAdam` + `OneCycle` train exactly as torch.optim.Adam under OneCycleLR (the authors' recipe)."""

import numpy as np
import pytest

import keras

from bayesft_keras.tuning.recipe import TorchAdam
from bayesft_keras.tuning.schedules import OneCycle
from bayesft_keras.tuning.schedules import OneCycleMomentum

torch = pytest.importorskip("torch")


def _torch_run(w0, b0, x, y, steps, lr, l2, clip):
    layer = torch.nn.Linear(w0.shape[0], w0.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w0.T))
        layer.bias.copy_(torch.tensor(b0))
    opt = torch.optim.Adam(layer.parameters(), lr, weight_decay=l2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    xt, yt = torch.tensor(x), torch.tensor(y, dtype=torch.long)
    for step in range(steps):
        loss = torch.nn.functional.cross_entropy(layer(xt[step::steps]), yt[step::steps])
        loss.backward()
        torch.nn.utils.clip_grad_value_(layer.parameters(), clip)
        opt.step()
        opt.zero_grad()
        sched.step()
    return layer.weight.detach().numpy().T, layer.bias.detach().numpy()


def _keras_run(w0, b0, x, y, steps, lr, l2, clip):
    schedule = OneCycle(lr, steps)
    optimizer = TorchAdam(schedule, beta_1=schedule.momentum(), l2=l2, clipvalue=clip)
    layer = keras.layers.Dense(w0.shape[1])
    layer.build((None, w0.shape[0]))
    layer.set_weights([w0, b0])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    import tensorflow as tf

    for step in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[step::steps], layer(x[step::steps]))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply(grads, layer.trainable_variables)
    return [np.asarray(v) for v in layer.get_weights()]


def test_matches_torch_adam_with_one_cycle_clipping_and_coupled_l2():
    rng = np.random.default_rng(0)
    w0 = rng.uniform(-0.3, 0.3, (12, 5)).astype("float32")
    b0 = rng.uniform(-0.3, 0.3, 5).astype("float32")
    x = rng.standard_normal((400, 12)).astype("float32")
    y = rng.integers(0, 5, 400)
    # lr 0.01, clip 0.1 and L2 1e-4 are the paper's LeNet-5 recipe; a large L2 too, to see it act.
    for l2 in (1e-4, 0.05):
        expected = _torch_run(w0, b0, x, y, 40, 0.01, l2, 0.1)
        got = _keras_run(w0, b0, x, y, 40, 0.01, l2, 0.1)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, atol=2e-6)
        moved = np.abs(expected[0] - w0).max()
        assert moved > 0.05  # 40 steps at lr ~0.01 move weights by far more than the tolerance


def test_decoupled_keras_adam_would_differ():
    """The check above can fail: Keras's decoupled decay and uncycled beta_1 land elsewhere."""
    rng = np.random.default_rng(0)
    w0 = rng.uniform(-0.3, 0.3, (12, 5)).astype("float32")
    b0 = np.zeros(5, "float32")
    x = rng.standard_normal((400, 12)).astype("float32")
    y = rng.integers(0, 5, 400)
    expected = _torch_run(w0, b0, x, y, 40, 0.01, 0.05, 0.1)
    got = _keras_run(w0, b0, x, y, 40, 0.01, 0.0, 0.1)  # no L2: the update differs measurably
    assert np.abs(got[0] - expected[0]).max() > 1e-4


def test_momentum_schedule_follows_torch_one_cycle():
    steps = 50
    layer = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(layer.parameters(), 0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.01, total_steps=steps)
    momentum = OneCycle(0.01, steps).momentum()
    for step in range(steps):
        assert float(momentum(step)) == pytest.approx(opt.param_groups[0]["betas"][0], abs=1e-6)
        opt.step()
        sched.step()


def test_serialization_and_bad_arguments():
    optimizer = TorchAdam(OneCycle(0.01, 100), beta_1=OneCycleMomentum(100), l2=1e-4, clipvalue=0.1)
    again = TorchAdam.from_config(optimizer.get_config())
    assert again.l2 == 1e-4 and again.clipvalue == 0.1
    assert isinstance(again.beta_1, OneCycleMomentum) and again.beta_1.total_steps == 100
    with pytest.raises(ValueError, match=r"`l2` must be a finite number >= 0. Received: l2=-1"):
        TorchAdam(l2=-1)
    with pytest.raises(ValueError, match=r"pass `l2`, not `weight_decay`"):
        TorchAdam(weight_decay=1e-4)
    with pytest.raises(ValueError, match=r"`beta_1` must be a number in \[0, 1\)"):
        TorchAdam(beta_1=1.5)
