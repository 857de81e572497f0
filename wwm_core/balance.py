"""Balanced shards: the records of every shard, in order, cut into files whose record counts
differ by at most one, so each host of a TPU pod reads an equal share."""


def balanced_pieces(counts, num_files: int) -> list:
    """For each output file, the (source, first, end) record ranges it is made of: output file f
    holds records [f * T // F, (f + 1) * T // F) of the sources' records taken in order, where T
    is their total and F ``num_files``. A pure function of the counts: the same shards give the
    same files on any runner."""
    total = sum(counts)
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + count)
    pieces = []
    source = 0
    for file in range(num_files):
        first, end = file * total // num_files, (file + 1) * total // num_files
        file_pieces = []
        while first < end:
            while starts[source + 1] <= first:
                source += 1
            piece_end = min(end, starts[source + 1])
            file_pieces.append((source, first - starts[source], piece_end - starts[source]))
            first = piece_end
        pieces.append(file_pieces)
    return pieces
