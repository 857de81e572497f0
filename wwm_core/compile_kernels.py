"""``python -m wwm_core.compile_kernels``: compiles every kernel of ``wwm_core.kernels`` into
numba's on-disk cache, as the set-up script and the deploy image do, so that no run pays the
compile (measured: docs/performance.md, "Compiled row loops")."""
import numpy as np

from wwm_core.config import Phase
from wwm_core.instances import SpecialIds, TokenPool, bucket_pair_plans, make_batch
from wwm_core.masking import SimilarWords
from wwm_core.near_dedup import signatures
from wwm_core.records import ExampleEncoder, schema


def compile_all() -> None:
    """Every kernel, for the argument types the pipeline passes, by making a few instances of each
    kind (token ids are uint16 where the vocabulary allows, else int32)."""
    documents = [[3, 4, 2], [5, 1], [2, 2, 2]]
    tokens = sum(map(sum, documents))
    phase = Phase(max_seq_length=16, max_predictions_per_seq=3)
    special = SpecialIds(cls=1, sep=2, mask=3, vocab_size=100)
    for dtype in (np.uint16, np.int32):
        pool = TokenPool(ids=np.arange(tokens).astype(dtype) + 10, group_start=np.arange(tokens) % 2 == 0,
                         doc_offsets=np.cumsum([0] + [sum(d) for d in documents]))
        for task in ("nsp", "sop"):
            plans = bucket_pair_plans(documents, [1, 2, 3], dupe_factor=2, phase=phase, short_seq_prob=0.5, task=task)
            similar = SimilarWords.from_token_ids([((10, 11), [(12, 13)])])
            similar.candidates_of((10, 11))
            for masking in ("static", "dynamic"):
                batch = make_batch(plans, pool, special=special, phase=phase, masked_lm_prob=0.15, masking=masking,
                                   ngram_weights=(0.4, 0.3, 0.2, 0.1), replacement="macbert", similar=similar)
                encoder = ExampleEncoder(schema(masking), max_seq_length=16, max_predictions_per_seq=3, vocab_size=100)
                encoder.frames(batch)
    signatures([["近重复检测的分片哈希"]])


if __name__ == "__main__":
    compile_all()
