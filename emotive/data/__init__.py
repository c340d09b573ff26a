"""Corpora, dataset builders and input pipelines, one subpackage by job:

    speech/     the embedded emotional speech corpus (eSpeak NG, voices, emotions, texts)
    motion/     the embedded motion corpus planted on a speech corpus
    builders/   TFDS builders of every dataset (`emotive data build`) and their plumbing
    pipelines/  grain input pipelines of every task
"""
