"""A word-level tokenizer in Hugging Face format, for small CLIP models built locally.

Real CLIP checkpoints ship their own BPE tokenizer; the built-in world and the tests use
this one. It is saved with ``save_pretrained`` and loaded back by ``AutoTokenizer`` like
any hub tokenizer, so ``nada.load_clip`` needs no special case for it.
"""
from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def build_word_tokenizer(words: Iterable[str], model_max_length: int = 16) -> PreTrainedTokenizerFast:
    """Tokenizer over ``words`` (lower-cased, split on whitespace and punctuation).

    Ids: 0 pad, 1 unk, 2 bos, 3 eos, then the words in sorted order. Every sequence is
    wrapped as ``<bos> ... <eos>``; CLIP's text tower pools at the eos token.
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in sorted({w.lower() for w in words}):
        if w not in vocab:
            vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("removed")])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
    )
    return fast
