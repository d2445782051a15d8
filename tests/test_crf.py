"""The CRF against brute-force enumeration of every tag path, on small random inputs."""

import functools
import itertools

import keras
import numpy as np
import pytest
from keras import ops

from seqlab.crf import CRF
from seqlab.crf.constraints import allowed_transitions
from seqlab.testing import compiled_modes, in_mode, loss_and_grads, native_mode, shape_modes

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_crf(k, seed, **kwargs):
    """A CRF with random weights. Plain graph loops unless `xla` is given: the "xla" mode compiles the whole
    function, and tests/test_training_options.py checks the default XLA functions inside a graph."""
    rng = np.random.default_rng(seed)
    kwargs.setdefault("xla", False)
    crf = CRF(k, **kwargs)
    crf.build()
    for w in crf.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    return crf


def random_batch(b, t, k, lengths, seed):
    rng = np.random.default_rng(seed + 1)
    emissions = rng.normal(size=(b, t, k)).astype("float32")
    mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
    return emissions, mask


def enumerate_paths(crf, emissions, length, legal=None):
    """All (path, score) of one sentence, by the definition of the CRF score."""
    tr, st, en = (keras.ops.convert_to_numpy(w) for w in (crf.transitions, crf.start_transitions, crf.end_transitions))
    k = crf.num_tags
    out = []
    for path in itertools.product(range(k), repeat=length):
        if legal is not None and not legal(path):
            continue
        s = st[path[0]] + en[path[-1]] + sum(emissions[t, path[t]] for t in range(length))
        s += sum(tr[path[t - 1], path[t]] for t in range(1, length))
        out.append((path, float(s)))
    return out


def logsumexp(xs):
    xs = np.asarray(xs, dtype=np.float64)
    return float(xs.max() + np.log(np.exp(xs - xs.max()).sum()))


LENGTHS = [5, 3, 1, 4]


@pytest.fixture(scope="module")
def case():
    crf = random_crf(4, seed=0)
    emissions, mask = random_batch(4, 5, 4, LENGTHS, seed=0)
    return crf, emissions, mask


def test_log_partition_and_nll_match_enumeration(case):
    crf, emissions, mask = case
    rng = np.random.default_rng(3)
    tags = rng.integers(0, 4, size=(4, 5)).astype("int32")
    log_z = ops.convert_to_numpy(crf.log_partition(emissions, mask))
    llh = ops.convert_to_numpy(crf.log_likelihood(emissions, tags, mask))
    for b, length in enumerate(LENGTHS):
        paths = enumerate_paths(crf, emissions[b], length)
        z = logsumexp([s for _, s in paths])
        gold = dict(paths)[tuple(tags[b, :length])]
        assert log_z[b] == pytest.approx(z, abs=1e-4)
        assert llh[b] == pytest.approx(gold - z, abs=1e-4)
        assert llh[b] < 0


def test_viterbi_is_the_best_enumerated_path(case):
    crf, emissions, mask = case
    paths, scores = (ops.convert_to_numpy(x) for x in crf.viterbi(emissions, mask))
    for b, length in enumerate(LENGTHS):
        best_path, best_score = max(enumerate_paths(crf, emissions[b], length), key=lambda p: p[1])
        assert tuple(paths[b, :length]) == best_path
        assert scores[b] == pytest.approx(best_score, abs=1e-4)
        assert (paths[b, length:] == crf.pad_value).all()


def test_viterbi_differs_from_argmax_when_transitions_matter():
    crf = CRF(2)
    crf.build()
    crf.transitions.assign(np.array([[0.0, -10.0], [-10.0, 0.0]], "float32"))  # switching costs a lot
    crf.start_transitions.assign(np.zeros(2, "float32"))
    crf.end_transitions.assign(np.zeros(2, "float32"))
    emissions = np.array([[[2.0, 0.0], [0.0, 1.0], [2.0, 0.0]]], "float32")
    assert ops.convert_to_numpy(crf.decode(emissions)).tolist() == [[0, 0, 0]]
    assert np.argmax(emissions, -1).tolist() == [[0, 1, 0]]


def test_marginals_sum_to_one_and_match_enumeration(case):
    crf, emissions, mask = case
    marg = ops.convert_to_numpy(crf.marginals(emissions, mask))
    for b, length in enumerate(LENGTHS):
        paths = enumerate_paths(crf, emissions[b], length)
        z = logsumexp([s for _, s in paths])
        expected = np.zeros((length, 4))
        for path, s in paths:
            expected[np.arange(length), path] += np.exp(s - z)
        np.testing.assert_allclose(marg[b, :length], expected, atol=1e-5)
        np.testing.assert_allclose(marg[b, :length].sum(-1), 1.0, atol=1e-5)
        assert (marg[b, length:] == 0).all()


def test_nbest_order_and_scores_match_enumeration(case):
    crf, emissions, mask = case
    k = 6
    paths, scores = (ops.convert_to_numpy(x) for x in crf.nbest(emissions, k, mask))
    assert paths.shape == (4, k, 5) and scores.shape == (4, k)
    for b, length in enumerate(LENGTHS):
        ranked = sorted(enumerate_paths(crf, emissions[b], length), key=lambda p: -p[1])
        n_real = min(k, len(ranked))
        np.testing.assert_allclose(scores[b, :n_real], [s for _, s in ranked[:n_real]], atol=1e-4)
        for r in range(n_real):
            assert dict(ranked)[tuple(paths[b, r, :length])] == pytest.approx(scores[b, r], abs=1e-4)
        assert len({tuple(p[:length]) for p in paths[b, :n_real]}) == n_real  # no path twice
        assert np.isneginf(scores[b, n_real:]).all()  # length 1 has only 4 paths
        assert tuple(paths[b, 0, :length]) == ranked[0][0]


def test_padding_changes_nothing(case):
    crf, emissions, mask = case
    rng = np.random.default_rng(9)
    tags = rng.integers(0, 4, size=(4, 5)).astype("int32")
    padded_em = np.concatenate([emissions, rng.normal(size=(4, 3, 4)).astype("float32") * 50], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((4, 3), bool)], axis=1)
    padded_tags = np.concatenate([tags, rng.integers(0, 4, size=(4, 3)).astype("int32")], axis=1)
    a = ops.convert_to_numpy(crf.log_likelihood(emissions, tags, mask))
    b = ops.convert_to_numpy(crf.log_likelihood(padded_em, padded_tags, padded_mask))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(crf.decode(emissions, mask)), ops.convert_to_numpy(crf.decode(padded_em, padded_mask))[:, :5]
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(crf.marginals(emissions, mask)),
        ops.convert_to_numpy(crf.marginals(padded_em, padded_mask))[:, :5], atol=1e-6,
    )


def iob2_legal(path):
    for i, tag in enumerate(LABELS[p] for p in path):
        if tag.startswith("I-"):
            prev = LABELS[path[i - 1]] if i else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                return False
    return True


def test_constraints_forbid_illegal_paths():
    crf = random_crf(5, seed=4, labels=LABELS, constraints="iob2")
    lengths = [4, 2, 1]
    emissions, mask = random_batch(3, 4, 5, lengths, seed=4)
    emissions[:, :, 2] += 5.0  # make I-PER tempting everywhere, including at the start
    outputs = in_mode(lambda e, t, m: (crf.log_partition(e, m), crf.decode(e, m), *crf.nbest(e, 8, m), crf.marginals(e, m)),
                      native_mode(), 5)(emissions, np.zeros(mask.shape, "int32"), mask)
    log_z, paths, nbest, nscores, marg = (ops.convert_to_numpy(x) for x in outputs)
    for b, length in enumerate(lengths):
        legal = enumerate_paths(crf, emissions[b], length, legal=iob2_legal)
        assert log_z[b] == pytest.approx(logsumexp([s for _, s in legal]), abs=1e-4)
        assert iob2_legal(paths[b, :length])
        assert tuple(paths[b, :length]) == max(legal, key=lambda p: p[1])[0]
        for r in range(8):
            if np.isfinite(nscores[b, r]):
                assert iob2_legal(nbest[b, r, :length])
        assert marg[b, 0, 2] == 0.0 and marg[b, 0, 4] == 0.0  # no mass on I- at the start


def test_allowed_transitions_bioes():
    labels = ["O", "B-X", "I-X", "E-X", "S-X"]
    trans, start, end = allowed_transitions(labels, "bioes")
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert trans[1, 2] and trans[1, 3] and not trans[1, 0] and not trans[0, 2] and trans[3, 0] and trans[4, 1]


def test_all_padding_rows_and_length_one_are_finite_with_finite_gradients():
    crf = random_crf(3, seed=5)
    emissions = np.random.default_rng(5).normal(size=(3, 4, 3)).astype("float32")
    mask = np.array([[False] * 4, [True, False, False, False], [True] * 4])
    tags = np.zeros((3, 4), "int32")
    loss, grads = loss_and_grads(lambda e: -ops.sum(crf.log_likelihood(e, tags, mask)), emissions, crf, native_mode())
    assert np.isfinite(loss) and len(grads) == 4
    assert all(np.isfinite(g).all() for g in grads)
    llh, paths = in_mode(lambda e, t, m: (crf.log_likelihood(e, t, m), crf.decode(e, m)), native_mode(), 3)(emissions, tags, mask)
    assert ops.convert_to_numpy(llh)[0] == 0.0
    assert (ops.convert_to_numpy(paths)[0] == crf.pad_value).all()


def test_half_precision_emissions_are_computed_in_float32(case):
    crf, emissions, mask = case
    tags = np.zeros((4, 5), "int32")
    full = ops.convert_to_numpy(crf.log_likelihood(emissions, tags, mask))
    for dtype in ("float16", "bfloat16"):
        half = crf.log_likelihood(ops.cast(emissions, dtype), tags, mask)
        assert keras.backend.standardize_dtype(half.dtype) == "float32"
        np.testing.assert_allclose(ops.convert_to_numpy(half), full, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("mode", compiled_modes()[1:])
def test_compiled_matches_eager(case, mode):
    crf, emissions, mask = case
    tags = np.ones((4, 5), "int32")
    eager = [ops.convert_to_numpy(x) for x in (crf.log_likelihood(emissions, tags, mask), crf.decode(emissions, mask))]
    got = in_mode(lambda e, t, m: (crf.log_likelihood(e, t, m), crf.decode(e, m)), mode, 4)(emissions, tags, mask)
    np.testing.assert_allclose(ops.convert_to_numpy(got[0]), eager[0], atol=1e-5)
    np.testing.assert_array_equal(ops.convert_to_numpy(got[1]), eager[1])
    loss = lambda e: ops.sum(crf.log_likelihood(e, tags, mask))  # noqa: E731
    eager_loss, eager_grads = loss_and_grads(loss, emissions, crf)
    compiled_loss, compiled_grads = loss_and_grads(loss, emissions, crf, mode)
    assert compiled_loss == pytest.approx(eager_loss, abs=1e-4)
    for a, b in zip(compiled_grads, eager_grads):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_shapes_give_clear_errors():
    crf = CRF(3)
    with pytest.raises(ValueError, match=r"emissions have 4 tags, the layer has 3"):
        crf.decode(np.zeros((1, 2, 4), "float32"))
    with pytest.raises(ValueError, match="need the tag names"):
        CRF(3, constraints="iob2")
    left_padded = np.array([[False, True, True], [True, True, False]])
    with pytest.raises(ValueError, match=r"rows \[0\] have a real token after padding"):
        crf.decode(np.zeros((2, 3, 3), "float32"), left_padded)


def test_save_and_reload_without_custom_objects(tmp_path):
    inputs = keras.Input((None, 5))
    crf = CRF(5, labels=LABELS, constraints="iob2", name="crf")
    model = keras.Model(inputs, crf(keras.layers.Dense(5)(inputs)))
    emissions, mask = random_batch(2, 4, 5, [4, 2], seed=7)
    path = tmp_path / "crf.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    again = reloaded.get_layer("crf")
    assert again.constraints == "iob2" and list(again.labels) == LABELS
    for name in ("transitions", "start_transitions", "end_transitions"):
        np.testing.assert_array_equal(ops.convert_to_numpy(getattr(crf, name)), ops.convert_to_numpy(getattr(again, name)))
    np.testing.assert_array_equal(ops.convert_to_numpy(crf.decode(emissions, mask)), ops.convert_to_numpy(again.decode(emissions, mask)))


def test_log_likelihood_matches_pytorch_crf(case):
    torch = pytest.importorskip("torch")
    torchcrf = pytest.importorskip("torchcrf")
    crf, emissions, mask = case
    ref = torchcrf.CRF(4, batch_first=True)
    with torch.no_grad():
        ref.transitions.copy_(torch.tensor(ops.convert_to_numpy(crf.transitions)))
        ref.start_transitions.copy_(torch.tensor(ops.convert_to_numpy(crf.start_transitions)))
        ref.end_transitions.copy_(torch.tensor(ops.convert_to_numpy(crf.end_transitions)))
    tags = np.random.default_rng(11).integers(0, 4, size=(4, 5))
    expected = ref(torch.tensor(emissions), torch.tensor(tags), torch.tensor(mask), reduction="none").detach().numpy()
    got = ops.convert_to_numpy(crf.log_likelihood(emissions, tags, mask))
    np.testing.assert_allclose(got, expected, atol=1e-4)


# ---------------------------------------------------------------- every batch shape, every execution mode
# Batches whose longest sentence has 1 token (the recursion over time then has no step), rows of
# length 0 beside real ones, all-empty batches and T = 0, checked against enumeration in eager
# mode, under tf.function with unknown batch and time dimensions (as the compiled decoder traces
# it) and under XLA.
SHAPES = {
    "T=1": (1, [1, 1, 1]),
    "T=1 with empty rows": (1, [0, 1, 0]),
    "T=1 all empty": (1, [0, 0]),
    "T=0": (0, [0, 0]),
    "lengths 0..T": (4, [0, 1, 2, 3, 4]),
    "T=2 with empty rows": (2, [2, 0, 1]),
}


def _all_outputs(crf, nbest_k):
    def run(e, t, m):
        llh = crf.log_likelihood(e, t, m)
        paths, scores = crf.viterbi(e, m)
        marg = crf.marginals(e, m)
        npaths, nscores = crf.nbest(e, nbest_k, m)
        return llh, paths, scores, marg, npaths, nscores

    return run


@functools.cache
def all_outputs_in(mode: str, k: int = 3, nbest_k: int = 4):
    """(crf, its outputs as one function run in `mode`), built once per mode: the graph modes trace with unknown
    batch and time dimensions, so every shape below runs through the same traced function (as the tagger's
    decoder does), and tracing the four recursions once instead of once per shape saves ~30 s."""
    crf = random_crf(k, seed=21)
    return crf, in_mode(_all_outputs(crf, nbest_k), mode, k)


@pytest.mark.parametrize("mode", shape_modes())
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_batch_shape_matches_enumeration(shape, mode):
    t, lengths = SHAPES[shape]
    k, b, nbest_k = 3, len(lengths), 4
    crf, run = all_outputs_in(mode, k, nbest_k)
    emissions, mask = random_batch(b, t, k, lengths, seed=21)
    tags = np.random.default_rng(22).integers(0, k, size=(b, t)).astype("int32")
    outs = run(emissions, tags, mask)
    llh, paths, scores, marg, npaths, nscores = (ops.convert_to_numpy(x) for x in outs)
    assert paths.shape == (b, t) and marg.shape == (b, t, k) and npaths.shape == (b, nbest_k, t)
    for row, length in enumerate(lengths):
        if length == 0:
            assert llh[row] == 0.0 and scores[row] == 0.0
            assert (paths[row] == crf.pad_value).all() and (marg[row] == 0).all()
            assert (npaths[row] == crf.pad_value).all()
            continue
        enumerated = enumerate_paths(crf, emissions[row], length)
        z = logsumexp([s for _, s in enumerated])
        assert llh[row] == pytest.approx(dict(enumerated)[tuple(tags[row, :length])] - z, abs=1e-4)
        best_path, best_score = max(enumerated, key=lambda p: p[1])
        assert tuple(paths[row, :length]) == best_path and scores[row] == pytest.approx(best_score, abs=1e-4)
        assert (paths[row, length:] == crf.pad_value).all()
        expected = np.zeros((length, k))
        for path, s in enumerated:
            expected[np.arange(length), path] += np.exp(s - z)
        np.testing.assert_allclose(marg[row, :length], expected, atol=1e-5)
        ranked = sorted(enumerated, key=lambda p: -p[1])[:nbest_k]
        np.testing.assert_allclose(nscores[row, : len(ranked)], [s for _, s in ranked], atol=1e-4)
        assert [tuple(p[:length]) for p in npaths[row, : len(ranked)]][0] == ranked[0][0]


@pytest.mark.parametrize("mode", compiled_modes()[-1:])
def test_length_one_batch_trains_with_finite_gradients_compiled(mode):
    crf = random_crf(3, seed=23, labels=["O", "B-X", "I-X"], constraints="iob2")
    emissions = np.random.default_rng(23).normal(size=(3, 1, 3)).astype("float32")
    mask = np.array([[True], [False], [True]])
    tags = np.array([[1], [0], [0]], "int32")
    loss, grads = loss_and_grads(lambda e: -ops.sum(crf.log_likelihood(e, tags, mask)), emissions, crf, mode)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)
