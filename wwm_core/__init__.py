"""Pure logic of whole-word-masking data preparation: no Apache Beam imports here.

Everything in this package is a plain function or a small immutable object that takes its
inputs explicitly (a vocabulary, a random generator, a configuration), so the Beam pipelines in
``pipelines/`` only adapt these functions to PCollections.
"""
