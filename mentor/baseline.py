"""Kept so `from mentor.baseline import train_tfidf` still works: the baselines live in mentor.baselines."""

from mentor.baselines import BaselineStudent, train_tfidf

TfidfStudent = BaselineStudent  # the old name of the fitted TF-IDF baseline

__all__ = ["BaselineStudent", "TfidfStudent", "train_tfidf"]
