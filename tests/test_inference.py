"""freshrec.inference: predictions independent of batching and row order, one embedding per distinct text, padding,
the device."""

import numpy as np
import pytest
import torch

from freshrec.errors import ModelError
from freshrec.inference import TokenizedTexts, cuda_requested, embed_texts, encode, encode_chunk, pick_device, predict
from freshrec.model import build_model, load_tokenizer

from helpers import config, examples





def test_predictions_do_not_depend_on_batching_or_row_order():
    cfg = config("full")
    model, tok = build_model(cfg).eval(), load_tokenizer("tiny")
    data = examples(50, 4)
    whole = predict(model, tok, cfg, data)
    assert whole.shape == (50,) and ((whole > 0) & (whole < 1)).all()
    np.testing.assert_allclose(predict(model, tok, cfg, data, batch_size=7), whole, rtol=1e-5, atol=1e-6)
    shuffled = data.sample(frac=1, random_state=0)
    np.testing.assert_allclose(predict(model, tok, cfg, shuffled), whole[shuffled.index.to_numpy()], rtol=1e-5,
                               atol=1e-6)
    assert predict(model, tok, cfg, data.iloc[0:0]).shape == (0,)


def test_each_distinct_text_is_tokenized_and_embedded_once_and_batches_pad_to_their_longest():
    tok = load_tokenizer("tiny")
    texts = ["a football guide", "pasta", "a football guide", "a much longer review of a guitar and its sound"]
    tokens = TokenizedTexts(tok, texts, max_len=8)
    assert len(tokens.unique) == 3 and tokens.unique[tokens.index].tolist() == texts
    lengths = [len(tokens.ids[i]) for i in range(3)]
    ids, mask = tokens.batch(np.arange(3), torch.device("cpu"))
    assert max(lengths) == 8 and ids.shape == (3, 8) and mask.sum(dim=1).tolist() == lengths  # truncated, padded
    embeddings = embed_texts(build_model(config("full")).eval(), tok, texts, 8, torch.device("cpu"))
    assert embeddings.shape[0] == 4 and np.array_equal(embeddings[0], embeddings[2])
    assert not np.array_equal(embeddings[0], embeddings[1])


def test_texts_are_encoded_in_chunks_of_similar_length_with_the_same_embeddings_in_the_asked_order():
    tok = load_tokenizer("tiny")
    rng = np.random.default_rng(0)
    words = ["football", "pasta", "guitar", "review", "the", "best", "marathon", "recipe"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 40, size=90)]
    tokens = TokenizedTexts(tok, texts, max_len=48)
    model = build_model(config("full")).eval()
    cpu = torch.device("cpu")
    widths = []
    embed = model.embed

    def recording(ids, mask):
        widths.append(ids.shape)
        return embed(ids, mask)

    model.embed = recording
    positions = rng.permutation(len(tokens.unique))
    with torch.no_grad():
        got = encode(model, tokens, positions, cpu)
        alone = torch.cat([embed(*tokens.batch(np.array([p]), cpu)) for p in positions])
    torch.testing.assert_close(got, alone, rtol=1e-4, atol=1e-5)  # padding changes nothing, order kept
    chunk = encode_chunk(cpu)
    ordered = np.sort(tokens.lengths[positions])
    assert sum(r * w for r, w in widths) == sum(len(ordered[lo:lo + chunk]) * ordered[lo:lo + chunk].max()
                                                for lo in range(0, len(ordered), chunk))  # the least padding
    assert len(widths) == -(-len(positions) // chunk)
    model.train()
    encode(model, tokens, positions[:5], cpu).sum().backward()  # training encodes the same way, with gradients
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_the_device_is_a_gpu_only_when_there_is_one_and_cuda_without_one_is_a_clear_error():
    threads = torch.get_num_threads()
    try:
        assert not cuda_requested("cpu") and pick_device("cpu").type == "cpu"
        if torch.cuda.is_available():
            assert cuda_requested("auto") and pick_device("auto").type == "cuda"
        else:
            assert not cuda_requested("auto") and pick_device("auto").type == "cpu"
            with pytest.raises(ModelError, match="FRESHREC_DEVICE is 'cuda' but PyTorch sees no GPU"):
                pick_device("cuda")
    finally:
        torch.set_num_threads(threads)
