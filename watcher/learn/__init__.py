"""Topics that learn from the analyst's labels: labels -> a per-topic model -> held-back and possible matches.

features.py  the named features of an article (words, word pairs, character pieces, the rule's own clauses)
model.py     TopicModel (plain numbers), scoring and the decision per article (pure; no learner needed)
train.py     training and cross-validation: the one module that imports scikit-learn
evaluate.py  precision, recall and F1 of rules alone, rules plus model, and cross-validated
retrain.py   labels in the store -> trained models in the store, when the labels changed

docs/rules.md ("Topics that learn from labels") describes the behaviour and the settings.
"""

from .model import DEFAULT_HOLD_BELOW, DEFAULT_POSSIBLE_ABOVE, TopicModel, apply_models, judge_article

__all__ = ["DEFAULT_HOLD_BELOW", "DEFAULT_POSSIBLE_ABOVE", "TopicModel", "apply_models", "judge_article"]
