"""What a stage counts: scalar counters by name, and, kept apart by type, histograms and counted
texts.

    stats["records_in"] += 1                           a scalar counter
    stats.histograms["sentence_chars"][64] += 1        a histogram: name -> {lower edge: count}
    stats.texts["unknown_token"]["😀"] += 1            counted strings: name -> {text: count}

Stats add up across buckets and workers like counters (``add``). The scalars are what Beam's
metrics show while a job runs; histograms and texts travel with the stats to the manifest
(``histograms``, ``texts``) and the report, never into Beam's metrics (one metric per bucket or
per character flooded a runner's console: 80 of an 8-document run's 106).
"""
import collections


class Stats(collections.Counter):
    """Scalar counters (the Counter itself), with ``histograms`` and ``texts`` beside them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.histograms = collections.defaultdict(collections.Counter)
        self.texts = collections.defaultdict(collections.Counter)

    def add(self, other) -> "Stats":
        """Adds ``other`` (Stats, or plain counters) into these; returns them."""
        self.update(other)
        for name, histogram in getattr(other, "histograms", {}).items():
            self.histograms[name].update(histogram)
        for name, texts in getattr(other, "texts", {}).items():
            self.texts[name].update(texts)
        return self

    def count_histogram(self, name: str, edges_and_counts) -> None:
        for edge, count in edges_and_counts:
            self.histograms[name][int(edge)] += int(count)

    def histograms_json(self) -> dict:
        """{name: {lower edge as text: count}}, edges in order (JSON keys are text)."""
        return {name: {str(edge): count for edge, count in sorted(histogram.items()) if count}
                for name, histogram in sorted(self.histograms.items()) if any(histogram.values())}

    def texts_json(self) -> dict:
        """{name: {text: count}}, most counted first."""
        return {name: dict(sorted(((text, count) for text, count in texts.items() if count),
                                  key=lambda item: (-item[1], item[0])))
                for name, texts in sorted(self.texts.items()) if any(texts.values())}

    def of_phase(self, own: str, every: str) -> "Stats":
        """The stats as a phase sees them: the counters and histograms named ``own`` + NAME (a
        phase's, ``phase.128.``) as NAME, those of other phases (``every`` + ...) left out."""
        view = Stats()
        for name, value in self.items():
            if name.startswith(own):
                view[name[len(own):]] = value
            elif not name.startswith(every):
                view[name] = value
        for name, histogram in self.histograms.items():
            if name.startswith(own):
                view.histograms[name[len(own):]] = histogram
            elif not name.startswith(every):
                view.histograms[name] = histogram
        view.texts.update(self.texts)
        return view

    def __reduce__(self):
        # Counter pickles itself as a plain dict: Beam moves stats between stages by pickle.
        return _restore, (dict(self), {k: dict(v) for k, v in self.histograms.items()},
                          {k: dict(v) for k, v in self.texts.items()})


def _restore(counters: dict, histograms: dict, texts: dict) -> Stats:
    stats = Stats(counters)
    for name, histogram in histograms.items():
        stats.histograms[name].update(histogram)
    for name, counted in texts.items():
        stats.texts[name].update(counted)
    return stats


def histogram_rows(histograms: dict, name: str) -> list:
    """[(lower edge, count)] of one of a manifest's ``histograms``, by edge."""
    return sorted((int(edge), count) for edge, count in (histograms.get(name) or {}).items())
