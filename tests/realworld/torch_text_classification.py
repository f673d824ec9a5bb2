"""Text classification with an EmbeddingBag, in the shape of the PyTorch tutorial.

Adapted in shape from the PyTorch tutorial "Text classification with the
torchtext library" (pytorch/tutorials, ``beginner_source/
text_sentiment_ngrams_tutorial.py``): a tokenizer, a vocabulary built by
iterating the data, a ``collate_batch`` that tokenizes each line, looks up
the ids and builds the offsets, a ``DataLoader(batch_size=64, shuffle=True,
collate_fn=collate_batch)`` and an ``nn.EmbeddingBag`` model trained for a
few epochs, on unigrams and bigrams (the tutorial's ``ngrams=2``). Our own
code without torchtext, on a synthetic corpus of random words. The
training step is the bottleneck, as in the tutorial on a CPU: the
EmbeddingBag's dense gradient spans a vocabulary of some 50,000 n-grams,
many times the cost of the tokenizing collate.
"""

from __future__ import annotations

import argparse
import random
import re
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

#: Normalisation in the manner of torchtext's ``basic_english``: each rule a regex pass.
_RULES = tuple((re.compile(pattern), replacement) for pattern, replacement in (
    (r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "), (r",", " , "),
    (r"\(", " ( "), (r"\)", " ) "), (r"\!", " ! "), (r"\?", " ? "), (r"\;", " "),
    (r"\:", " "), (r"\s+", " "),
))


def basic_english(line: str) -> list[str]:
    """Lower-cased words and punctuation marks, split after the normalising passes."""
    line = line.lower()
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def synthetic_corpus(lines: int, words: int, classes: int, seed: int = 0) -> list[tuple[int, str]]:
    """(label, text) pairs; each class favours its own part of the vocabulary."""
    rng = random.Random(seed)
    vocabulary = [f"w{index}" for index in range(2000)]
    corpus = []
    for _ in range(lines):
        label = rng.randrange(classes)
        favoured = vocabulary[label * 400:(label + 1) * 400]
        text = " ".join(rng.choice(favoured if rng.random() < 0.6 else vocabulary)
                        for _ in range(words))
        corpus.append((label, text.capitalize() + "."))
    return corpus


def with_bigrams(tokens: list[str]) -> list[str]:
    """The tokens followed by each pair of neighbours, as the tutorial's ``ngrams=2`` adds."""
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def build_vocab(corpus: list[tuple[int, str]]) -> dict[str, int]:
    """Token -> id, in order of first appearance; id 0 is the unknown token."""
    vocab = {"<unk>": 0}
    for _, text in corpus:
        for token in with_bigrams(basic_english(text)):
            vocab.setdefault(token, len(vocab))
    return vocab


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, num_class: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim)
        self.fc = nn.Linear(embed_dim, num_class)

    def forward(self, text: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(text, offsets))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=960)
    parser.add_argument("--words", type=int, default=50)
    args = parser.parse_args()

    classes = 4
    corpus = synthetic_corpus(args.lines, args.words, classes)
    vocab = build_vocab(corpus)

    def collate_batch(batch):
        labels, ids, offsets = [], [], [0]
        for label, text in batch:
            labels.append(label)
            tokens = torch.tensor([vocab.get(t, 0) for t in with_bigrams(basic_english(text))],
                                  dtype=torch.int64)
            ids.append(tokens)
            offsets.append(tokens.size(0))
        offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
        return torch.tensor(labels, dtype=torch.int64), torch.cat(ids), offsets

    dataloader = DataLoader(corpus, batch_size=64, shuffle=True, collate_fn=collate_batch)
    model = TextClassificationModel(len(vocab), 32, classes)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        correct = 0
        for label, text, offsets in dataloader:
            optimizer.zero_grad()
            predicted = model(text, offsets)
            criterion(predicted, label).backward()
            optimizer.step()
            correct += int((predicted.argmax(1) == label).sum())
        print(f"epoch {epoch} accuracy {correct / len(corpus):.3f}")
    seconds = time.perf_counter() - start
    print(f"THROUGHPUT {args.epochs * len(dataloader) / seconds:.3f}")  # batches/s, all epochs


if __name__ == "__main__":
    main()
