"""The real network's training run: deterministic, its lag products and its
gradient SNR right against brute force, and bad configurations refused.

The references are computed independently of the module's bookkeeping: the
lag products from every step's normalised gradient kept whole and multiplied
in numpy, the SNR from one backward pass per training image.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from optstats import network  # noqa: E402

SMALL = network.Config(steps=40, warmup=4, decay_start=30, window=(10, 24), lags=3, width=8, heads=2,
                       lr=1e-2, wd=0.5, snapshots=(6, 40))


def test_run_is_deterministic_and_complete():
    a, b = network.train(SMALL), network.train(SMALL)
    for f in a.fields:
        np.testing.assert_array_equal(a.fields[f], b.fields[f])
        assert a.fields[f].shape == (SMALL.steps, len(a.names))
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.lag_products, b.lag_products)
    assert set(a.snapshots) == {6, 40}
    assert a.lag_products.shape == (14, len(a.names), SMALL.lags + 5)
    # decay on the tensors with two or more axes only
    shapes = dict((n, p.shape) for n, p in network.model(SMALL).named_parameters())
    assert [len(shapes[n]) >= 2 for n in a.names] == list(a.decayed)
    assert np.all(np.isfinite(a.fields["update_rms"]))


def test_lag_products_against_kept_gradients():
    run = network.train(SMALL)
    trainer = network.Trainer(SMALL)
    beta1, beta2 = SMALL.betas
    h, u = {}, {}
    for t in range(1, SMALL.steps + 1):
        trainer.step(t)
        # h and u kept whole, in numpy, from torch's state as its AdamW step uses it
        parts = []
        for p in trainer.model.parameters():
            state = trainer.optimizer.state[p]
            v = state["exp_avg_sq"].numpy().astype(np.float64).ravel()
            d = np.sqrt(v / (1 - beta2**t)) + SMALL.eps
            m = state["exp_avg"].numpy().astype(np.float64).ravel()
            parts.append((p.grad.numpy().astype(np.float64).ravel() / d, m / (1 - beta1**t) / d))
        h[t] = np.concatenate([a for a, _ in parts])
        u[t] = np.concatenate([b for _, b in parts])
    edges = np.cumsum((0,) + run.sizes)
    beta3 = 1 - SMALL.lr * SMALL.wd
    start, stop = SMALL.window
    for t in range(start + 1, stop + 1):
        row = run.lag_products[t - start - 1]
        for j in range(len(run.names)):
            seg = slice(edges[j], edges[j + 1])

            def dot(k, x=h):
                return x[t][seg] @ x[t - k][seg]

            want = [dot(0)] + [dot(k) for k in range(1, SMALL.lags + 1)]
            past = range(1, t - SMALL.warmup)  # the EMAs start after the warm-up
            want += [sum(beta1**k * dot(k) for k in past), sum(beta3**k * dot(k) for k in past)]
            want += [dot(0, u), sum(beta3**k * dot(k, u) for k in past)]
            np.testing.assert_allclose(row[j], want, rtol=1e-10, atol=1e-14)


def test_gradient_snr_against_one_backward_per_image():
    run = network.train(SMALL)
    state = run.snapshots[6]
    got = network.gradient_snr(state, SMALL, batch_size=8)
    x, y, _, _ = network.digits(SMALL.seed)
    net = network.model(SMALL)
    net.load_state_dict(state)
    grads = []
    for xi, yi in zip(x, y):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(xi[None]), yi[None]).backward()
        grads.append({n: p.grad.detach().double().flatten().clone() for n, p in net.named_parameters()})
    for name in got:
        g = torch.stack([d[name] for d in grads]).numpy()
        mean = g.mean(0)
        variance = g.var(0).sum()  # population variance: minibatches drawn with replacement
        assert got[name] == pytest.approx(mean @ mean / (variance / 8), rel=1e-6)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1e-3}, "lr"),
        ({"wd": -1.0}, "wd"),
        ({"betas": (1.0, 0.95)}, r"betas\[0\]"),
        ({"betas": (0.9, -0.1)}, r"betas\[1\]"),
        ({"lr": 0.5, "wd": 2.0}, "lr \\* wd"),
        ({"window": (30, 20)}, "window"),
        ({"window": (5, 20)}, "window"),
        ({"window": (10, 41)}, "window"),
        ({"snapshots": (0,)}, "snapshots"),
        ({"decay_start": 40}, "decay_start"),
        ({"width": 9}, "width"),
    ],
)
def test_bad_config(change, match):
    fields = {**SMALL.__dict__, **change}
    with pytest.raises(ValueError, match=match):
        config = network.Config(**fields)
        network.model(config)


def test_train_many_is_the_serial_loop():
    import dataclasses

    configs = [dataclasses.replace(SMALL, seed=s) for s in (0, 1)]
    side_by_side = network.train_many(configs, processes=2)
    for config, run in zip(configs, side_by_side):
        alone = network.train(config)
        np.testing.assert_array_equal(run.loss, alone.loss)
        np.testing.assert_array_equal(run.fields["weight_rms"], alone.fields["weight_rms"])
    assert not np.array_equal(side_by_side[0].loss, side_by_side[1].loss)
    with pytest.raises(ValueError, match="processes"):
        network.train_many(configs, processes=0)
