"""The learned essay scorer: trained per assignment on the teacher's confirmed grades.

It needs no language model, so it also grades in offline mode, and it gives a calibrated
confidence that orders the teacher's review queue.

How a score is made, per criterion of the rubric:

1. Features. Three views of every essay, computed once per essay and shared by criteria:
   - lexical: TF-IDF over word uni- and bigrams plus linguistic features (length,
     vocabulary, sentence statistics, punctuation and capitalisation habits, a
     spelling-ish rate of words that are rare in the assignment's own essays, and how
     common the essay's words are in English at large, from ``wordfreq``: unknown words
     are mostly misspellings, rare real ones a wider vocabulary);
   - semantic: what all-MiniLM-L6-v2 makes of the essay's wording, plus the same
     linguistic features. The model reads at most 256 word pieces, so a long essay is
     split at sentence ends into chunks of at most ``CHUNK_WORDS`` words and the chunks'
     vectors are averaged (chunk-and-average). The vector used here is the mean token
     state of every transformer layer, averaged over the layers (``essay_vectors``): the
     sentence embedding alone is trained to ignore how a thing is said, which is half of
     what a rubric grades.
   - embedding: the sentence embedding (re-normalised mean of the chunks'), for the
     nearest-neighbour model.
2. Models: a ridge regression on the lexical view and a kernel ridge (RBF) on the
   semantic view, both multi-output so one fit serves every criterion, each choosing its
   regularisation (and the RBF its width) by exact leave-one-out error on the training
   essays (``_LooKernelRidge``); and the mean score of the ``NEIGHBOURS`` training essays
   nearest by cosine of their embeddings. A non-negative linear stack per criterion,
   fitted on out-of-fold predictions, blends the three models' estimates of every
   criterion (analytic criteria inform one another).
3. Rounding. The blended value is cut into the rubric's levels with thresholds chosen to
   maximise quadratic weighted kappa on out-of-fold predictions of the *training* essays
   (so the thresholds never see the essays they will grade), then clipped to [min, max].
   Kappa-optimal thresholds spread the scores, which under-scores any learner group that
   writes shorter or plainer essays on average; so they are pulled back towards plain
   rounding (in steps of 1/``FAIRNESS_SHARE_STEPS``) until the drift of machine minus
   human along the scale stays within ``FAIRNESS_DRIFT_LIMIT`` human SDs
   (``_fair_thresholds``). This needs no group labels.
4. Confidence: the probability that the rounded score equals the teacher's. A logistic
   regression is fitted on the same out-of-fold predictions, from the distance between the
   blended value and the nearest threshold (in rubric steps) and the distance to the
   nearest end of the scale, to whether the rounded score was exactly the teacher's. Its
   output is therefore calibrated on essays the models had not seen.

A fitted scorer pickles to bytes (``to_bytes`` / ``from_bytes``) so the product can store
it next to the assignment; it holds no reference to the embedding model.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import joblib
import numpy as np
from scipy import linalg, sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from ai.embedding import embed_texts_with_layers

# Criterion lives in a light module so grading.models need not load scikit-learn; it is
# re-exported here because stored scorers pickled it under this path.
from grading.criteria import Criterion

# all-MiniLM-L6-v2 truncates at 256 word pieces; 180 words stays under it for most prose.
CHUNK_WORDS = 180
# Folds inside the training essays for the out-of-fold predictions that fit the blend,
# the thresholds and the confidence.
INNER_FOLDS = 5
# Below this many training essays the inner folds are too small to learn thresholds.
MIN_TRAINING_ESSAYS = 10
SCORER_FORMAT = 1
# Bump when essay_vectors changes what it makes of an essay: vectors stored before are then
# made again (see essay_reader).
ESSAY_VECTORS_FORMAT = 1

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z']+")
# Regularisation grids. Each fit picks its own values by exact leave-one-out error on its
# training essays (``_LooKernelRidge``), so no value is tuned on the essays it will grade.
LEXICAL_ALPHAS = (1.0, 3.0, 10.0, 30.0)
SEMANTIC_ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
SEMANTIC_GAMMAS = (0.003, 0.01, 0.03, 0.1, 0.3)
# Training essays whose scores the nearest-neighbour model averages.
NEIGHBOURS = 20
# Largest drift of machine minus human scores along the scale (in human SDs) that the
# rounding may introduce; see _fair_thresholds.
FAIRNESS_DRIFT_LIMIT = 0.10
# How finely _fair_thresholds steps from the kappa-optimal cut points back to plain
# rounding: the first step within the limit keeps as much of the kappa gain as it allows.
FAIRNESS_SHARE_STEPS = 20


@dataclass(frozen=True)
class ScorePrediction:
    score: float
    confidence: float
    estimate: float  # the blended value before rounding, in score units


def essay_chunks(text: str, *, chunk_words: int = CHUNK_WORDS) -> list[str]:
    """Split an essay at sentence ends into pieces of at most ``chunk_words`` words."""
    chunks: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        while len(words) > chunk_words:
            if current:
                chunks.append(" ".join(current))
                current = []
            chunks.append(" ".join(words[:chunk_words]))
            words = words[chunk_words:]
        if current and len(current) + len(words) > chunk_words:
            chunks.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        chunks.append(" ".join(current))
    return chunks or [""]


def essay_vectors(texts: Sequence[str]) -> np.ndarray:
    """One row per essay: its sentence embedding (the re-normalised mean of its chunks'
    embeddings, unit length) followed by its layer-averaged token states (the mean of its
    chunks'), each as wide as the embedding model's vectors."""
    chunks: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        pieces = essay_chunks(text)
        chunks.extend(pieces)
        owners.extend([index] * len(pieces))
    sentences, layers = embed_texts_with_layers(chunks)
    owner_rows = np.asarray(owners)
    sentence_means = _chunk_mean(sentences, owner_rows, len(texts))
    norms = np.linalg.norm(sentence_means, axis=1, keepdims=True)
    return np.hstack(
        [
            sentence_means / np.maximum(norms, 1e-12),
            _chunk_mean(layers, owner_rows, len(texts)),
        ]
    ).astype(np.float32)


def essay_reader() -> str:
    """Names what :func:`essay_vectors` reads essays with (the embedding model, its width,
    the chunking and the vector layout): a vector stored under another name is stale."""
    from django.conf import settings

    identity = (
        f"{settings.EMBEDDING_MODEL}|{settings.EMBEDDING_DIMENSIONS}|{CHUNK_WORDS}|"
        f"{ESSAY_VECTORS_FORMAT}"
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _chunk_mean(chunk_vectors: np.ndarray, owners: np.ndarray, essay_count: int) -> np.ndarray:
    """The mean of each essay's chunk vectors (``owners[i]`` is chunk i's essay)."""
    sums = np.zeros((essay_count, chunk_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, owners, chunk_vectors)
    counts = np.bincount(owners, minlength=essay_count)[:, None]
    return sums / np.maximum(counts, 1)


def linguistic_features(texts: Sequence[str]) -> np.ndarray:
    """Surface statistics of each essay, one row per essay (no corpus needed)."""
    rows = []
    for text in texts:
        words = _WORD.findall(text)
        word_count = len(words)
        lowered = [word.lower() for word in words]
        sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
        sentence_lengths = np.array([len(_WORD.findall(s)) for s in sentences] or [0])
        word_lengths = np.array([len(word) for word in words] or [0])
        per_word = max(word_count, 1)
        unique = len(set(lowered))
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        rows.append(
            [
                math.log1p(word_count),
                math.log1p(len(text)),
                math.log1p(unique),
                unique / per_word,
                unique / math.sqrt(per_word),  # Guiraud's index: less length-bound than TTR
                word_lengths.mean(),
                word_lengths.std(),
                float(np.mean(word_lengths >= 7)),
                math.log1p(len(sentences)),
                sentence_lengths.mean(),
                sentence_lengths.std(),
                float(np.max(sentence_lengths)),
                len(paragraphs),
                text.count(",") / per_word,
                (text.count("!") + text.count("?")) / per_word,
                text.count("'") / per_word,
                (text.count(";") + text.count(":")) / per_word,
                sum(1 for s in sentences if s.lstrip()[:1].islower()) / max(len(sentences), 1),
                sum(1 for word in words if word == "i") / per_word,
                sum(1 for word in words if word.isupper() and len(word) > 1) / per_word,
                len(re.findall(r"\s[,.]", text)) / per_word,  # space before punctuation
                len(re.findall(r"[,.][A-Za-z]", text)) / per_word,  # no space after it
            ]
        )
    return np.asarray(rows, dtype=float)


@lru_cache(maxsize=200_000)
def _zipf_frequency(word: str) -> float:
    """How common a word is in English: log10 of its uses per billion words, 0 if unknown."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def word_frequency_features(texts: Sequence[str]) -> np.ndarray:
    """How common each essay's words are in English at large (wordfreq's Zipf scale, 0 for
    a word it has never seen): unknown words are mostly misspellings, rare real words a
    wider vocabulary. One row per essay."""
    rows = []
    for text in texts:
        words = [word.lower().strip("'") for word in _WORD.findall(text)]
        words = [word for word in words if word]
        by_word = {word: _zipf_frequency(word) for word in words}
        frequencies = np.array([by_word[word] for word in words] or [0.0])
        longer = np.array([by_word[word] for word in words if len(word) > 3] or [0.0])
        distinct = np.array(list(by_word.values()) or [0.0])
        rows.append(
            [
                frequencies.mean(),
                longer.mean(),
                float(np.percentile(longer, 10)),
                distinct.mean(),
                float(np.mean(frequencies == 0)),  # unknown: mostly misspellings
                math.log1p(float(np.sum(frequencies == 0))),
                float(np.mean(frequencies < 2)),
                float(np.mean(frequencies < 3)),
                float(np.mean((frequencies >= 1) & (frequencies < 4))),  # rare but real
                float(np.mean(distinct < 3.5)),
                float(np.mean(distinct < 4.5)),
            ]
        )
    return np.asarray(rows, dtype=float)


class _RareWordRate:
    """Share of an essay's words that are rare in the training essays: a spelling signal
    that needs no dictionary and adapts to the assignment's topic words."""

    def fit(self, texts: Sequence[str]) -> _RareWordRate:
        self._known = CountVectorizer(lowercase=True, token_pattern=_WORD.pattern, min_df=3)
        self._known.fit(texts)
        self._analyzer = self._known.build_analyzer()
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        vocabulary = self._known.vocabulary_
        rates = []
        for text in texts:
            tokens = self._analyzer(text)
            unknown = sum(1 for token in tokens if token not in vocabulary)
            rates.append([unknown / max(len(tokens), 1), math.log1p(unknown)])
        return np.asarray(rates, dtype=float)


class _FeatureViews:
    """Fits the unsupervised parts (TF-IDF, rare-word counts, scaling) on training essays
    and turns any essays and their ``essay_vectors`` into the lexical (sparse), semantic
    (dense) and embedding views.

    Scorers stored before the word frequencies and the layer-averaged vectors were read
    lack ``reads_word_frequency`` and ``_layer_scaler``; they keep their own features.
    """

    def fit(self, texts: Sequence[str], vectors: np.ndarray) -> _FeatureViews:
        self._tfidf = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, max_features=40_000, sublinear_tf=True
        )
        self._tfidf.fit(texts)
        self._rare = _RareWordRate().fit(texts)
        self.reads_word_frequency = True
        self._scaler = StandardScaler().fit(self._surface(texts))
        self._layer_scaler = StandardScaler().fit(_split_vectors(vectors)[1])
        return self

    def _surface(self, texts: Sequence[str]) -> np.ndarray:
        parts = [linguistic_features(texts), self._rare.transform(texts)]
        if getattr(self, "reads_word_frequency", False):
            parts.append(word_frequency_features(texts))
        return np.hstack(parts)

    def transform(self, texts: Sequence[str], vectors: np.ndarray) -> tuple:
        embeddings, layers = _split_vectors(vectors)
        surface = np.clip(self._scaler.transform(self._surface(texts)), -5, 5)
        lexical = sparse.hstack([self._tfidf.transform(texts), sparse.csr_matrix(surface)])
        layer_scaler = getattr(self, "_layer_scaler", None)
        if layer_scaler is None:
            wording = embeddings
        else:
            wording = layer_scaler.transform(layers) / math.sqrt(layers.shape[1])
        # Both blocks have a squared length of about 1, so neither swamps the RBF kernel.
        semantic = np.hstack([wording, surface / math.sqrt(surface.shape[1])])
        return lexical.tocsr(), semantic, embeddings


def _split_vectors(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``essay_vectors`` rows as (sentence embeddings, layer-averaged token states)."""
    width = vectors.shape[1] // 2
    return vectors[:, :width], vectors[:, width:]


class _LooKernelRidge:
    """Kernel ridge regression with an unpenalised intercept whose regularisation is chosen
    by exact leave-one-out error on the training essays.

    One eigendecomposition of the centred kernel per ``gamma`` gives the leave-one-out
    residuals of every ``alpha`` in closed form, so choosing costs little more than one fit
    (a cross-validated grid search would refit per value and per fold). ``gamma`` is shared
    by the targets (it needs its own kernel); ``alpha`` is chosen per target (criterion).
    ``kernel`` is ``"linear"`` (ridge regression, also on sparse input) or ``"rbf"``.
    """

    def __init__(
        self, kernel: str, *, alphas: Sequence[float], gammas: Sequence[float] = (1.0,)
    ) -> None:
        self.kernel = kernel
        self.alphas = tuple(alphas)
        self.gammas = tuple(gammas) if kernel == "rbf" else (1.0,)

    def _kernel(self, rows, columns, gamma: float) -> np.ndarray:
        product = rows @ columns.T
        product = product.toarray() if sparse.issparse(product) else np.asarray(product)
        if self.kernel == "linear":
            return product
        row_norms = np.einsum("ij,ij->i", rows, rows)  # the RBF view is dense
        column_norms = np.einsum("ij,ij->i", columns, columns)
        distances = row_norms[:, None] + column_norms[None, :] - 2 * product
        return np.exp(-gamma * np.maximum(distances, 0.0))

    def fit(self, features, targets: np.ndarray) -> _LooKernelRidge:
        targets = np.asarray(targets, dtype=float).reshape(features.shape[0], -1)
        target_mean = targets.mean(axis=0)
        centred_targets = targets - target_mean
        alphas = np.asarray(self.alphas)
        best_error = math.inf
        for gamma in self.gammas:
            kernel = self._kernel(features, features, gamma)
            column_means, grand_mean = kernel.mean(axis=0), kernel.mean()
            centred = kernel - column_means[None, :] - column_means[:, None] + grand_mean
            eigenvalues, eigenvectors = linalg.eigh(centred, driver="evd")
            eigenvalues = np.maximum(eigenvalues, 0.0)
            projected = eigenvectors.T @ centred_targets
            errors = _leave_one_out_errors(
                eigenvalues, eigenvectors, projected, centred_targets, alphas
            )
            if errors.min(axis=0).sum() < best_error:
                best_error = errors.min(axis=0).sum()
                self.gamma_ = gamma
                self.alpha_ = alphas[errors.argmin(axis=0)]
                dual = eigenvectors @ (projected / (eigenvalues[:, None] + self.alpha_[None, :]))
                # The dual weights sum to zero (the centred kernel annihilates a constant),
                # so centring a new essay's kernel row reduces to this intercept.
                self._intercept = target_mean - column_means @ dual
        if self.kernel == "linear":
            # Keep the primal weights, not the training essays.
            self._coef = np.asarray(features.T @ dual)
        else:
            self._features, self._dual = features, dual
        return self

    def predict(self, features) -> np.ndarray:
        if self.kernel == "linear":
            return np.asarray(features @ self._coef) + self._intercept
        return self._kernel(features, self._features, self.gamma_) @ self._dual + self._intercept


class _NeighbourMean:
    """The mean score of the ``k`` training essays whose embeddings are most similar by
    cosine (the embeddings are unit vectors): close to how a teacher grades by comparing
    with essays already marked."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, embeddings: np.ndarray, targets: np.ndarray) -> _NeighbourMean:
        self._embeddings = embeddings
        self._targets = np.asarray(targets, dtype=float).reshape(len(embeddings), -1)
        return self

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        k = min(self.k, len(self._embeddings))
        similarity = embeddings @ self._embeddings.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        return self._targets[nearest].mean(axis=1)


def _leave_one_out_errors(
    eigenvalues: np.ndarray,
    eigenvectors: np.ndarray,
    projected: np.ndarray,
    targets: np.ndarray,
    alphas: np.ndarray,
) -> np.ndarray:
    """Mean squared leave-one-out residual per (alpha, target) of a kernel ridge with an
    intercept, from the eigendecomposition of the centred kernel: the residual of essay i
    refitted without it is its in-sample residual / (1 - leverage_i)."""
    squared = eigenvectors * eigenvectors
    errors = np.empty((len(alphas), targets.shape[1]))
    for row, alpha in enumerate(alphas):
        shrink = eigenvalues / (eigenvalues + alpha)
        fitted = eigenvectors @ (shrink[:, None] * projected)
        leverage = 1.0 / len(targets) + squared @ shrink
        residuals = (targets - fitted) / np.maximum(1.0 - leverage, 1e-6)[:, None]
        errors[row] = np.mean(residuals**2, axis=0)
    return errors


def _base_models(semantic_gammas: Sequence[float] = SEMANTIC_GAMMAS) -> list:
    return [
        _LooKernelRidge("linear", alphas=LEXICAL_ALPHAS),
        _LooKernelRidge("rbf", alphas=SEMANTIC_ALPHAS, gammas=semantic_gammas),
        _NeighbourMean(NEIGHBOURS),
    ]


def _fit_base(
    views: tuple, targets: np.ndarray, semantic_gammas: Sequence[float] = SEMANTIC_GAMMAS
) -> list:
    return [
        model.fit(view, targets)
        for model, view in zip(_base_models(semantic_gammas), views, strict=True)
    ]


def _predict_base(models: list, views: tuple) -> np.ndarray:
    """Shape (essays, criteria, models)."""
    predictions = [
        model.predict(view).reshape(view.shape[0], -1)
        for model, view in zip(models, views, strict=True)
    ]
    return np.stack(predictions, axis=2)


def _qwk_of_confusion(confusion: np.ndarray) -> float:
    """Quadratic weighted kappa from a confusion matrix. The threshold search evaluates it
    thousands of times, where sklearn's input checking would dominate; a test pins it to
    ``cohen_kappa_score``."""
    size = confusion.shape[0]
    weights = np.subtract.outer(np.arange(size), np.arange(size)) ** 2
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    disagreement = (weights * expected).sum()
    if disagreement == 0:
        return 1.0
    return float(1.0 - (weights * confusion).sum() / disagreement)


def _cut(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(thresholds), values)


def _fit_thresholds(estimates: np.ndarray, levels: np.ndarray, level_count: int) -> np.ndarray:
    """Cut points (in level units) that maximise QWK of the out-of-fold estimates.

    Coordinate search: each cut point in turn moves to the best of a grid between its
    neighbours, for a few passes. Starting from plain rounding, it never ends worse.
    """
    thresholds = np.arange(level_count - 1) + 0.5
    if level_count < 3:
        return thresholds

    def score(candidate: np.ndarray) -> float:
        confusion = np.zeros((level_count, level_count))
        np.add.at(confusion, (levels, _cut(estimates, candidate)), 1)
        return _qwk_of_confusion(confusion)

    best = score(thresholds)
    for _ in range(3):
        for index in range(level_count - 1):
            low = thresholds[index - 1] if index > 0 else thresholds[index] - 1.0
            high = thresholds[index + 1] if index < level_count - 2 else thresholds[index] + 1.0
            for value in np.linspace(low, high, 17)[1:-1]:
                candidate = thresholds.copy()
                candidate[index] = value
                candidate_score = score(candidate)
                if candidate_score > best + 1e-9:
                    best, thresholds = candidate_score, candidate
    return thresholds


def _score_bias(estimates: np.ndarray, levels: np.ndarray, thresholds: np.ndarray) -> float:
    """How far the rounded scores drift from the teacher's along the estimate: the linear
    trend of (machine - human) at the 10th and 90th percentile of the estimates, in human
    standard deviations (the larger of the two)."""
    spread = levels.std()
    if spread == 0:
        return 0.0
    residual = _cut(estimates, thresholds) - levels
    trend = LinearRegression().fit(estimates[:, None], residual)
    ends = trend.predict(np.percentile(estimates, [10, 90])[:, None])
    return float(np.max(np.abs(ends)) / spread)


def _fair_thresholds(estimates: np.ndarray, levels: np.ndarray, searched: np.ndarray) -> np.ndarray:
    """Pull the kappa-optimal cut points back towards plain rounding until the scores no
    longer drift from the teacher's along the estimate.

    Kappa rewards spreading the scores: cut points that push weak essays lower and strong
    ones higher than the regression's (unbiased) estimate. Any learner group that writes
    differently on average (shorter, fewer rare words) then sits on one side of that
    spread and is systematically under- or over-scored. Keeping the drift at the ends of
    the scale within ``FAIRNESS_DRIFT_LIMIT`` bounds that bias without knowing the groups.
    """
    plain = np.arange(len(searched)) + 0.5
    for share in np.linspace(1.0, 0.0, FAIRNESS_SHARE_STEPS + 1)[:-1]:
        thresholds = plain + share * (searched - plain)
        if _score_bias(estimates, levels, thresholds) <= FAIRNESS_DRIFT_LIMIT:
            return thresholds
    return plain


def _confidence_inputs(estimates: np.ndarray, thresholds: np.ndarray, top: int) -> np.ndarray:
    margin = np.min(np.abs(estimates[:, None] - thresholds[None, :]), axis=1)
    edge = np.minimum(np.abs(estimates), np.abs(top - estimates))
    return np.column_stack([np.minimum(margin, 2.0), np.minimum(edge, 3.0)])


@dataclass
class _CriterionModel:
    criterion: Criterion
    blend: LinearRegression
    thresholds: np.ndarray
    confidence: LogisticRegression | float


class EssayScorer:
    """A fitted scorer for one assignment: one prediction per criterion of its rubric."""

    def __init__(self, criteria: Sequence[Criterion]) -> None:
        if not criteria:
            raise ValueError("A scorer needs at least one criterion.")
        self.criteria = list(criteria)
        self.format = SCORER_FORMAT
        self.training_size = 0
        self._views: _FeatureViews | None = None
        self._models: list = []
        self._criterion_models: list[_CriterionModel] = []

    def fit(
        self,
        texts: Sequence[str],
        scores: Mapping[str, Sequence[float] | np.ndarray],
        *,
        vectors: np.ndarray | None = None,
        random_state: int = 0,
    ) -> EssayScorer:
        """Train on teacher-confirmed scores (``scores[criterion.name][i]`` for text i).

        ``vectors`` (from :func:`essay_vectors`) may be passed when the caller has them
        already, as cross-validation does; they are computed otherwise.
        """
        texts = list(texts)
        if len(texts) < MIN_TRAINING_ESSAYS:
            raise ValueError(f"A scorer needs at least {MIN_TRAINING_ESSAYS} scored essays.")
        if vectors is None:
            vectors = essay_vectors(texts)
        levels = np.column_stack(
            [criterion.to_levels(scores[criterion.name]) for criterion in self.criteria]
        ).astype(float)

        # The unsupervised parts (vocabulary, IDF, scaling) see all training essays; no
        # score leaks through them into the out-of-fold estimates below.
        self._views = _FeatureViews().fit(texts, vectors)
        views = self._views.transform(texts, vectors)
        self._models = _fit_base(views, levels)
        # The kernel width chosen on all training essays serves the inner folds too, which
        # halves their cost; their ridge penalties are still chosen per fold.
        semantic_gammas = (self._models[1].gamma_,)

        # Out-of-fold estimates of the training essays: the ground on which the blend,
        # the thresholds and the confidence are fitted.
        out_of_fold = np.zeros((len(texts), len(self.criteria), len(self._models)))
        folds = KFold(n_splits=INNER_FOLDS, shuffle=True, random_state=random_state)
        for train, held_out in folds.split(texts):
            models = _fit_base(tuple(view[train] for view in views), levels[train], semantic_gammas)
            out_of_fold[held_out] = _predict_base(models, tuple(view[held_out] for view in views))

        stacked = out_of_fold.reshape(len(texts), -1)
        self._criterion_models = []
        for column, criterion in enumerate(self.criteria):
            truth = levels[:, column].astype(int)
            # Each criterion's blend reads every criterion's estimates: analytic criteria
            # (grammar, vocabulary, ...) inform one another.
            blend = LinearRegression(positive=True).fit(stacked, truth)
            estimates = blend.predict(stacked)
            thresholds = _fair_thresholds(
                estimates, truth, _fit_thresholds(estimates, truth, criterion.level_count)
            )
            hits = _cut(estimates, thresholds) == truth
            inputs = _confidence_inputs(estimates, thresholds, criterion.level_count - 1)
            confidence: LogisticRegression | float
            if hits.all() or not hits.any():
                confidence = float(hits.mean())
            else:
                confidence = LogisticRegression().fit(inputs, hits)
            self._criterion_models.append(_CriterionModel(criterion, blend, thresholds, confidence))

        self.training_size = len(texts)
        return self

    def predict(
        self, texts: Sequence[str], *, vectors: np.ndarray | None = None
    ) -> list[dict[str, ScorePrediction]]:
        """One ``{criterion name: ScorePrediction}`` per essay."""
        if self._views is None:
            raise RuntimeError("The scorer has not been fitted.")
        texts = list(texts)
        if not texts:
            return []
        if vectors is None:
            vectors = essay_vectors(texts)
        views = self._views.transform(texts, vectors)
        # Scorers stored before the neighbour model was added have only the first two.
        base = _predict_base(self._models, views[: len(self._models)])
        results: list[dict[str, ScorePrediction]] = [{} for _ in texts]
        for column, fitted in enumerate(self._criterion_models):
            criterion = fitted.criterion
            inputs = base.reshape(len(texts), -1)
            if fitted.blend.n_features_in_ != inputs.shape[1]:
                inputs = base[:, column, :]  # a scorer stored when blends were per criterion
            estimates = fitted.blend.predict(inputs)
            levels = _cut(estimates, fitted.thresholds)
            if isinstance(fitted.confidence, float):
                confidence = np.full(len(texts), fitted.confidence)
            else:
                inputs = _confidence_inputs(estimates, fitted.thresholds, criterion.level_count - 1)
                confidence = fitted.confidence.predict_proba(inputs)[:, 1]
            scores = criterion.from_levels(levels)
            estimate_scores = criterion.min + estimates * criterion.step
            for row in range(len(texts)):
                results[row][criterion.name] = ScorePrediction(
                    score=float(scores[row]),
                    confidence=float(np.clip(confidence[row], 0.0, 1.0)),
                    estimate=float(estimate_scores[row]),
                )
        return results

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EssayScorer:
        """Load a scorer stored by :meth:`to_bytes`. Only load bytes this product wrote:
        unpickling runs code, so scorers must never come from users."""
        scorer = joblib.load(io.BytesIO(data))  # noqa: S301 - bytes come from our own table
        if not isinstance(scorer, cls) or scorer.format != SCORER_FORMAT:
            raise ValueError("These bytes are not a scorer this version can load.")
        return scorer


def scorer_fit(
    *,
    criteria: Sequence[Criterion],
    texts: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    vectors: np.ndarray | None = None,
) -> EssayScorer:
    return EssayScorer(criteria).fit(texts, scores, vectors=vectors)
