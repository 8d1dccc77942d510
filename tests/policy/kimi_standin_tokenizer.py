"""A stand-in for Kimi-Audio's custom tokenizer (remote code in its checkpoint folder), with the interface kimia_infer
uses: a `special_tokens` name -> id table, encode(text, bos=, eos=), decode(ids) and pad_id. Word-level over a small
vocabulary. kimi_tiny.py copies this file into a tiny checkpoint folder, and AutoTokenizer loads it from there with
trust_remote_code, as it loads Kimi-Audio's own."""

import json

from transformers import PreTrainedTokenizer


class KimiStandInTokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "standin_vocab.json"}
    model_input_names = ["input_ids"]

    def __init__(self, vocab_file, **kwargs):
        with open(vocab_file) as f:
            table = json.load(f)
        self.vocab_file = vocab_file
        self.special_tokens = dict(table["special"])
        self._ids = {w: i for i, w in enumerate(table["words"])}
        self._ids.update(self.special_tokens)
        self._names = {i: t for t, i in self._ids.items()}
        self.pad_id = self.special_tokens["<|im_kimia_text_blank|>"]
        super().__init__(**kwargs)

    @property
    def vocab_size(self):
        return len(self._ids)

    def get_vocab(self):
        return dict(self._ids)

    def _tokenize(self, text, **kwargs):
        return text.split()

    def _convert_token_to_id(self, token):
        return self._ids[token]

    def _convert_id_to_token(self, index):
        return self._names[index]

    def encode(self, text, bos=False, eos=False, **kwargs):
        return [self._ids[w] for w in text.split()]

    def decode(self, ids, **kwargs):
        return " ".join(self._names[int(i)] for i in ids)

    def save_vocabulary(self, save_directory, filename_prefix=None):
        return (self.vocab_file,)
