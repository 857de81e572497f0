"""Counters summed across the pipeline, and the records-in = out + filtered + dead-lettered check."""
import collections

import apache_beam as beam
from apache_beam.metrics import Metrics

# The tags of every stage's side outputs: bad records, and Counters of what happened.
DEAD_LETTER = "dead_letter"
STATS = "stats"
NAMESPACE = "wwm"


def count(stats: collections.Counter) -> None:
    """Reports a stage's counts as Beam metrics too (the manifest sums the STATS outputs)."""
    for name, value in stats.items():
        Metrics.counter(NAMESPACE, name).inc(value)


class SumCounters(beam.CombineFn):
    def create_accumulator(self):
        return collections.Counter()

    def add_input(self, accumulator, counter):
        accumulator.update(counter)
        return accumulator

    def merge_accumulators(self, accumulators):
        total = collections.Counter()
        for accumulator in accumulators:
            total.update(accumulator)
        return total

    def extract_output(self, accumulator):
        return dict(sorted(accumulator.items()))


def accounting(counters: dict) -> dict:
    """records in = out + filtered + dead-lettered, from the counters."""
    filtered = sum(v for k, v in counters.items() if k.startswith("documents_filtered."))
    dead = sum(v for k, v in counters.items() if k.startswith("dead_lettered."))
    records_in, out = counters.get("records_in", 0), counters.get("documents_out", 0)
    return {"records_in": records_in, "out": out, "filtered": filtered, "dead_lettered": dead,
            "balanced": records_in == out + filtered + dead}
