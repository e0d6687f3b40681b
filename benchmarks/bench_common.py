"""What the benchmarks' subprocess cases share: a ViT-B/32-sized CLIP with random weights (the stand-in
for the real one: same shapes, same cost, a word tokenizer over a few words) and a device meter (time
synchronisation and peak memory)."""
from __future__ import annotations

import torch

WORDS = "a photo sketch of the".split()


def random_vit_b32(device: torch.device | str = "cpu", words: list[str] = WORDS, seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    from nada.guidance.clip import ClipModel, ImagePreprocessing
    from nada.guidance.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(list(words), model_max_length=77)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
        projection_dim=512)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(cfg).eval()
    return ClipModel(model, tok, ImagePreprocessing.default(224), name="random-ViT-B/32").to(device)


class Meter:
    """Synchronise and read peak memory on a device (CUDA: max allocated; CPU: the process's peak RSS)."""

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self.kind = "cuda max allocated" if self.cuda else "process peak RSS (includes CLIP and generator weights)"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak_mib(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
