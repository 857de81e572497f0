"""One torch.distributed rank (gloo, CPU) reading its share of a stream: run as a separate process
by tests/test_torch.py. Prints the instance ids this rank read, per epoch, as JSON."""
import json
import sys

import torch
import torch.distributed

import wwm_torch


def as_list(rows):
    return rows


def main(manifest: str, rank: int, world_size: int, address: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=address, rank=rank, world_size=world_size)
    stream = wwm_torch.load_instances(manifest, streaming=True, seed=5)  # the rank comes from torch.distributed
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2, collate_fn=as_list)
    epochs = []
    for epoch in range(2):
        stream.set_epoch(epoch)
        epochs.append([row["instance_id"] for batch in loader for row in batch])
    counts = [None] * world_size
    torch.distributed.all_gather_object(counts, len(epochs[0]))
    torch.distributed.destroy_process_group()
    print(json.dumps({"rank": rank, "epochs": epochs, "counts": counts}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
